"""Secure inference benchmark: plaintext vs plain CrypTen MPC vs Ditto-style MPC on all-MiniLM-L6-v2.

For sequence lengths 16/32/64: latency per request (median), communication rounds and bytes per party
(CrypTen's own counters; party 0 includes its traffic with the dealer), and for each mode the mean cosine
of the MPC embedding to the plaintext model's, plus paraphrase-retrieval accuracy@1. A mode written
`plain+fm` / `ditto-fm` forces fixed weight masks (fixed_mask.py) on / off, to separate the protocol's share
of the saving from the approximations'. `--ablate N` prints only the plaintext approximation ablation.
With `--head` (a head from `privgate secure train-head`) and `--head-examples`, each MPC mode also classifies
the examples that training held out, under MPC, and the accuracy and agreement with plaintext are printed.

    .venv/bin/python bench/mpc.py --modes plain,ditto --checkpoint ditto.safetensors --reps 5 --sentences 100
    .venv/bin/python bench/mpc.py --ablate 200 --checkpoint ditto.safetensors
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from secure_infer.mpc.classifier import head_logits_plain, load_head  # noqa: E402
from secure_infer.mpc.cluster import ClusterJob, PartyCluster, RequestResult  # noqa: E402
from secure_infer.mpc.corpus import default_corpus  # noqa: E402
from secure_infer.mpc.distill import embed_plain  # noqa: E402
from secure_infer.mpc.reference import DITTO, EXACT, MPCFORMER_QUAD, PLAIN_MPC, Approx, encode, pad_ids  # noqa: E402
from secure_infer.mpc.tokenize import TextTokenizer  # noqa: E402
from secure_infer.mpc.train_head import read_examples, split_examples  # noqa: E402
from secure_infer.mpc.weights import EncoderSpec, load_weights, model_dir  # noqa: E402

State = dict[str, torch.Tensor]

PAIRS = [  # (query, its paraphrase): retrieval must find the paraphrase among all paraphrases
    ("How do I reset my password?", "What are the steps to change a forgotten password?"),
    ("The patient has a high fever and a cough.", "The sick man is coughing and running a temperature."),
    ("Where is the nearest train station?", "How far is it to the closest railway station?"),
    ("The invoice is thirty days overdue.", "Payment of the bill is a month late."),
    ("She signed the contract yesterday.", "The agreement was signed by her the day before."),
    ("Can I bring my dog on the plane?", "Are pets allowed in the aircraft cabin?"),
    ("The stock market fell sharply today.", "Share prices dropped steeply this afternoon."),
    ("Please cancel my subscription.", "I want to stop my monthly plan."),
    ("What time does the pharmacy open?", "When does the drugstore start business in the morning?"),
    ("He was diagnosed with diabetes last year.", "Last year doctors found that he has diabetes."),
    ("The court adjourned until Monday.", "The hearing was postponed to the start of next week."),
    ("How much does shipping to Canada cost?", "What is the delivery price for orders sent to Canada?"),
    ("My laptop battery drains very quickly.", "The battery of my notebook runs out fast."),
    ("The museum is closed for renovation.", "Repairs mean the gallery is shut to visitors."),
    ("Interest rates will rise next month.", "Borrowing costs are going up in a few weeks."),
    ("Take two tablets after each meal.", "Swallow a pair of pills once you have eaten."),
    ("The flight was delayed by three hours.", "Our plane took off three hours late."),
    ("Who won the football match last night?", "Which team was victorious in yesterday evening's soccer game?"),
    ("The tenant has not paid the rent.", "The renter owes the landlord money for the flat."),
    ("I would like to book a table for four.", "Can I reserve dinner for a party of four people?"),
]
LONG = " ".join(
    "The committee reviewed the quarterly report on patient admissions, staffing levels, budget overruns and the "
    "planned renovation of the north wing before the annual audit in the spring".split()
    * 4
)


def _mpc_embed(cluster: PartyCluster, ids: list[list[int]], batch: int) -> torch.Tensor:
    rows = [cluster.run(ids[i : i + batch], timeout_s=3600).embeddings for i in range(0, len(ids), batch)]
    return torch.nn.functional.normalize(torch.cat(rows), dim=-1)


def _start(label: str, args: argparse.Namespace, directory: Path) -> PartyCluster:
    """`<mode>` runs MpcConfig's defaults; `<mode>+fm` / `<mode>-fm` forces fixed weight masks on / off."""
    mode, sign = label.removesuffix("fm").rstrip("+-"), label[-3:]
    fixed = True if sign == "+fm" else False if sign == "-fm" else None
    job = ClusterJob(
        directory,
        mode=mode,
        checkpoint=args.checkpoint if mode == "ditto" else None,
        precision_bits=16 if mode == "plain" else 14,  # MpcConfig's defaults
        threads=args.threads,
        fixed_masks=fixed,
        classifier=args.head,
    )
    cluster = PartyCluster(job)
    cluster.start()
    return cluster


def _mpc_classify(cluster: PartyCluster, ids: list[list[int]], batch: int) -> list[str]:
    logits = torch.cat(
        [cluster.run(ids[i : i + batch], timeout_s=3600, op="classify").output for i in range(0, len(ids), batch)]
    )
    assert cluster.labels is not None
    return [cluster.labels[int(i)] for i in logits.argmax(-1)]


def _head_set(args: argparse.Namespace, directory: Path) -> tuple[list[list[int]], list[str], list[str]] | None:
    """The held-out examples of the head's training split (ids, gold labels) and the plaintext head's labels."""
    if args.head is None:
        return None
    texts, labels = read_examples(args.head_examples, args.head_lang)
    _, test = split_examples(texts, labels, 0.2, 0)  # train-head's defaults: the examples it did not train on
    test = test[: args.head_limit]
    ids = TextTokenizer(directory, 64).ids([texts[i] for i in test])
    spec, state = load_weights(directory)
    head, head_state = load_head(args.head)
    tensor, mask = pad_ids(ids)
    with torch.no_grad():
        _, hidden = encode(state, spec, tensor, mask, EXACT)
        plain = head_logits_plain(head, head_state, hidden[-1], mask).argmax(-1)
    return ids, [labels[i] for i in test], [head.labels[int(i)] for i in plain]


def _retrieval(emb: torch.Tensor) -> float:
    n = len(PAIRS)
    queries, docs = emb[:n], emb[n : 2 * n]
    return float(((queries @ docs.T).argmax(1) == torch.arange(n)).float().mean())


ABLATIONS = {  # one approximation at a time, in plaintext torch: which one costs the cosine
    "sigmoid GeLU (plain MPC)": PLAIN_MPC,
    "quadratic GeLU only": Approx(gelu="quad"),
    "2Quad softmax only": Approx(softmax="2quad"),
    "ditto: sigmoid GeLU + 2Quad": DITTO,
    "MPCFormer: quad GeLU + 2Quad": MPCFORMER_QUAD,
}


def _ablate(spec: EncoderSpec, state: State, ids: list[list[int]], distilled: State | None) -> None:
    """Mean cosine to the exact plaintext model of each approximation, on the original (and distilled) weights."""
    tensor, mask = pad_ids(ids)

    def emb(weights: State, approx: Approx) -> torch.Tensor:
        with torch.no_grad():
            return torch.nn.functional.normalize(encode(weights, spec, tensor, mask, approx)[0], dim=-1)

    exact = emb(state, EXACT)
    print(f"ablation over {len(ids)} sentences: mean cosine to the exact plaintext model")
    for name, approx in ABLATIONS.items():
        row = f"  {name:<32}{float((emb(state, approx) * exact).sum(-1).mean()):>8.4f}"
        if distilled is not None:
            row += f"   distilled: {float((emb(distilled, approx) * exact).sum(-1).mean()):.4f}"
        print(row, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--modes", default="plain,ditto")
    ap.add_argument("--checkpoint", type=Path, default=None, help="distilled weights for the ditto mode")
    ap.add_argument("--lengths", default="16,32,64")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sentences", type=int, default=100, help="for the cosine; at least the 40 retrieval texts")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--ablate", type=int, default=0, help="only the plaintext ablation, on this many sentences")
    ap.add_argument("--head", type=Path, default=None, help="a classification head (privgate secure train-head)")
    ap.add_argument("--head-examples", type=Path, nargs="+", default=[], help="the JSONL files it was trained on")
    ap.add_argument("--head-lang", default=None, help="the --lang it was trained with")
    ap.add_argument("--head-limit", type=int, default=48, help="held-out examples classified under MPC")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    lengths = [int(x) for x in args.lengths.split(",")]
    directory = model_dir("all-MiniLM-L6-v2")
    spec, state = load_weights(directory)
    if args.ablate:
        tuned = load_weights(directory, args.checkpoint)[1] if args.checkpoint is not None else None
        _ablate(spec, state, TextTokenizer(directory, 64).ids(default_corpus(args.ablate, seed=7)), tuned)
        return
    texts = [q for q, _ in PAIRS] + [p for _, p in PAIRS]
    texts += default_corpus(max(0, args.sentences - len(texts)), seed=99)
    tok = TextTokenizer(directory, 128)
    ids = tok.ids(texts)
    long_ids = tok.ids([LONG])[0]
    plain_emb = embed_plain(state, spec, ids, ditto=False)
    rows: list[tuple[str, int, float, list[int], list[int]]] = []
    for n in lengths:
        sample = [long_ids[: n - 1] + [long_ids[-1]]]
        times = []
        for _ in range(args.reps):
            started = time.perf_counter()
            embed_plain(state, spec, sample, ditto=False)
            times.append(time.perf_counter() - started)
        rows.append(("plaintext", n, statistics.median(times), [0, 0], [0, 0]))
    quality = {"plaintext": (1.0, _retrieval(plain_emb))}
    fidelity = {"plaintext": 1.0}
    head_set = _head_set(args, directory)
    classified: dict[str, list[str]] = {"plaintext": head_set[2]} if head_set is not None else {}
    clusters: dict[str, PartyCluster] = {}
    try:
        for label in args.modes.split(","):
            clusters[label] = _start(label, args, directory)
        # latency: the modes take turns, request by request, so load from elsewhere on the machine falls on
        # all of them alike and their ratio stays meaningful
        runs: dict[tuple[str, int], list[RequestResult]] = {}
        for n in lengths:
            sample = [long_ids[: n - 1] + [long_ids[-1]]]
            for _ in range(args.reps):
                for label, cluster in clusters.items():
                    runs.setdefault((label, n), []).append(cluster.run(sample, timeout_s=3600))
            for label in clusters:
                results = runs[(label, n)]
                latency = statistics.median(r.seconds for r in results)
                rows.append((label, n, latency, results[-1].rounds, results[-1].bytes))
                print(f"  {label} L={n}: {latency:.2f} s", file=sys.stderr, flush=True)
        short = [row[:64] for row in ids]
        for label, cluster in clusters.items():
            emb = _mpc_embed(cluster, short, args.batch)
            if head_set is not None:
                classified[label] = _mpc_classify(cluster, head_set[0], args.batch)
            cluster.close()
            cos = float((emb * embed_plain(state, spec, short, ditto=False)).sum(-1).mean())
            # fidelity of MPC to the plaintext model it evaluates (the distilled one for ditto)
            ditto = cluster.job.mode == "ditto"
            _, own_state = load_weights(directory, cluster.job.checkpoint)
            fidelity[label] = float((emb * embed_plain(own_state, spec, short, ditto=ditto)).sum(-1).mean())
            quality[label] = (cos, _retrieval(emb))
    finally:
        for cluster in clusters.values():
            cluster.close()
    print(f"all-MiniLM-L6-v2, 2 parties + TTP dealer (CrypTen, gloo over loopback), torch threads {args.threads}")
    print(f"reps per latency: {args.reps} (median); cosine over {len(texts)} sentences; retrieval: {len(PAIRS)} pairs")
    print(f"{'mode':<10}{'seq':>5}{'latency s':>11}{'rounds p0/p1':>16}{'MB p0/p1':>20}")
    for mode, n, lat, rounds, nbytes in rows:
        mb = f"{nbytes[0] / 1e6:.1f}/{nbytes[1] / 1e6:.1f}"
        print(f"{mode:<10}{n:>5}{lat:>11.3f}{f'{rounds[0]}/{rounds[1]}':>16}{mb:>20}")
    by_key = {(mode, n): (lat, nbytes) for mode, n, lat, _, nbytes in rows}
    for n in lengths:
        if ("plain", n) in by_key and ("ditto", n) in by_key:
            (p_lat, p_bytes), (d_lat, d_bytes) = by_key[("plain", n)], by_key[("ditto", n)]
            print(
                f"  L={n}: ditto is {p_lat / d_lat:.2f}x faster, sends {p_bytes[0] / d_bytes[0]:.2f}x / "
                f"{p_bytes[1] / d_bytes[1]:.2f}x less (party 0 / 1)"
            )
    print(f"{'mode':<10}{'cosine to plaintext':>22}{'retrieval@1':>14}{'cosine to own plaintext model':>31}")
    for mode, (cos, acc) in quality.items():
        print(f"{mode:<10}{cos:>22.4f}{acc:>14.2f}{fidelity[mode]:>31.4f}")
    if head_set is not None:
        print(f"classification of {len(head_set[1])} held-out examples with {args.head.name} (labels revealed only)")
        print(f"{'mode':<10}{'accuracy':>10}{'same label as plaintext':>26}")
        for mode, got in classified.items():
            accuracy = sum(a == b for a, b in zip(got, head_set[1], strict=True)) / len(got)
            agree = sum(a == b for a, b in zip(got, head_set[2], strict=True)) / len(got)
            wrong = [i for i, (a, b) in enumerate(zip(got, head_set[1], strict=True)) if a != b]
            print(f"{mode:<10}{accuracy:>10.3f}{agree:>26.3f}   wrong: {wrong}")
    if "ditto" in quality and args.checkpoint is None:
        print("note: ditto ran without a distilled checkpoint (privgate secure distill)")


if __name__ == "__main__":
    main()
