"""TEE split inference benchmark: split vs whole-model latency, wire bytes, attestation time, and inversion risk.

Run: .venv/bin/python bench/tee.py [--ks 1,2,4,8] [--lengths 64,256] [--new-tokens 8]

Client and enclave run on this machine over loopback, each on one CPU thread (as is the whole-model baseline),
with SmolLM2-135M-Instruct for chat and all-MiniLM-L6-v2 for embeddings, both from their PyPI packages.
The attestation is signed by a development root of trust made for this run in a temporary directory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from secure_infer.tee.attestation import generate_dev_root  # noqa: E402
from secure_infer.tee.client import EnclaveLink  # noqa: E402
from secure_infer.tee.config import TeeConfig  # noqa: E402
from secure_infer.tee.models import MINILM, SMOLLM2, Loaded, client_slice, enclave_slice, load  # noqa: E402
from secure_infer.tee.runner import SplitRunner  # noqa: E402
from secure_infer.tee.split import encoder_client  # noqa: E402

TEXT = (
    "Patient Maria Lopez, born 12 March 1961, was admitted to St. Anne's hospital with chest pain. "
    "Her insurance number is 4471-2209 and her daughter Ana can be reached at the clinic in Valencia. "
)


def prompt_ids(tokenizer: object, length: int) -> list[int]:
    ids: list[int] = tokenizer(TEXT * 40)["input_ids"]  # type: ignore[operator]
    return ids[:length]


@torch.no_grad()
def local_generation(model: Any, ids: list[int], n: int) -> tuple[float, float, list[int]]:
    """Whole model here with its KV cache: time to first token and seconds per further token (greedy)."""
    from transformers import DynamicCache

    started = time.perf_counter()
    cache = DynamicCache(config=model.config)
    logits = model(input_ids=torch.tensor([ids]), cache=cache, use_cache=True).logits
    token = int(logits[0, -1].argmax())
    ttft = time.perf_counter() - started
    out = [token]
    for _ in range(n - 1):
        logits = model(input_ids=torch.tensor([[token]]), cache=cache, use_cache=True).logits
        token = int(logits[0, -1].argmax())
        out.append(token)
    return ttft, (time.perf_counter() - started - ttft) / max(n - 1, 1), out


def _states(loaded: Loaded, k: int, ids: torch.Tensor) -> torch.Tensor:
    client = client_slice(loaded, k)
    if loaded.kind == "decoder":
        hidden: torch.Tensor = client(input_ids=ids, use_cache=False).last_hidden_state
        return hidden
    return encoder_client(client, ids, torch.ones_like(ids))


@torch.no_grad()
def inversion(loaded: Loaded, k: int, ids: list[int]) -> tuple[float, float]:
    """Share of input tokens an eavesdropper recovers from *plaintext* layer-k states of `ids`.

    Nearest: the input embedding closest (cosine) to each state. Learnt: a ridge-regression map from states to
    input embeddings, fitted on random token sequences through the public base model, then nearest embedding.
    """
    table = loaded.model.get_input_embeddings().weight
    table_n = F.normalize(table, dim=-1)
    target = torch.tensor(ids)
    hidden = _states(loaded, k, target[None])[0]
    nearest = float(((F.normalize(hidden, dim=-1) @ table_n.T).argmax(-1) == target).float().mean())
    gen = torch.Generator().manual_seed(0)
    train_ids = torch.randint(0, table.shape[0], (8, 128), generator=gen)
    h = _states(loaded, k, train_ids).reshape(-1, hidden.shape[-1]).double()
    e = table[train_ids].reshape(-1, table.shape[1]).double()
    mean_h, mean_e = h.mean(0), e.mean(0)
    hc = h - mean_h
    w = torch.linalg.solve(hc.T @ hc + 1e-2 * torch.eye(hc.shape[1], dtype=hc.dtype), hc.T @ (e - mean_e))
    mapped = ((hidden.double() - mean_h) @ w + mean_e).float()
    learnt = float(((F.normalize(mapped, dim=-1) @ table_n.T).argmax(-1) == target).float().mean())
    return nearest, learnt


def bench_chat(args: argparse.Namespace, root: Path) -> None:
    loaded = load(SMOLLM2)
    tok = loaded.tokenizer
    whole = enclave_slice(loaded, 0)  # the whole model, built the same way as the slices (same kernels)
    n = args.new_tokens
    print(f"\n## chat: {SMOLLM2}, {loaded.model.config.num_hidden_layers} layers, greedy, {n} new tokens per run")
    print(f"(few tokens to keep the run short on 2 shared cores; best of {args.repeats} interleaved runs each)\n")
    header = "| k | prompt | TTFT local ms | TTFT split ms | ratio | ms/token local | ms/token split | ratio |"
    print(header + " bytes/request | bytes/token | same tokens | handshake ms | inversion nearest / learnt |")
    print("|" + "---|" * 13)
    for k in args.ks:
        cfg = TeeConfig(model=SMOLLM2, split_layers=k, dev_root_key=str(root))
        runner = SplitRunner(cfg, loaded)
        try:
            link = runner.link
            link.connect()
            handshakes = []
            for _ in range(3):  # re-attestation on an open enclave: connect, nonce, report, verify, key agreement
                link.drop()
                started = time.perf_counter()
                link.connect()
                handshakes.append(time.perf_counter() - started)
            for length in args.lengths:
                ids = prompt_ids(tok, length)
                rows, local = [], []
                for _ in range(args.repeats):  # interleaved with the whole-model runs, so both see the same load
                    local.append(local_generation(whole, ids, n))
                    timings: dict[str, float] = {}
                    start_bytes = link.traffic.sent + link.traffic.received
                    marks: list[int] = []

                    def mark(_token: int, marks: list[int] = marks, link: EnclaveLink = link) -> bool:
                        marks.append(link.traffic.sent + link.traffic.received)
                        return True

                    out = runner.generate(ids, n, timings=timings, on_token=mark)
                    prefill_bytes = marks[0] - start_bytes  # the prompt's activations and the first token
                    token_bytes = (marks[-1] - marks[0]) / max(len(marks) - 1, 1)  # one round trip per new token
                    per_token = (timings["total_s"] - timings["ttft_s"]) / max(n - 1, 1)
                    rows.append((timings["ttft_s"], per_token, out, prefill_bytes, token_bytes))
                ttft, per_token = min(r[0] for r in rows), min(r[1] for r in rows)
                lt, lp, ltoks = min(r[0] for r in local), min(r[1] for r in local), local[0][2]
                nearest, learnt = inversion(loaded, k, ids)
                handshake = 1000 * statistics.median(handshakes)
                print(
                    f"| {k} | {length} | {1000 * lt:.0f} | {1000 * ttft:.0f} | {ttft / lt:.2f}x | {1000 * lp:.1f} | "
                    f"{1000 * per_token:.1f} | {per_token / lp:.2f}x | {rows[0][3]:,} | {rows[0][4]:,.0f} | "
                    f"{rows[0][2] == ltoks} | {handshake:.1f} | {nearest:.0%} / {learnt:.0%} |"
                )
        finally:
            runner.close()


def bench_embed(args: argparse.Namespace, root: Path) -> None:
    loaded = load(MINILM)
    batch = loaded.tokenizer([TEXT * 3], truncation=True, max_length=64, padding="max_length", return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    text = loaded.tokenizer.decode(ids[0], skip_special_tokens=True)
    print(f"\n## embeddings: {MINILM}, one text of {int(mask.sum())} tokens, best of {args.repeats * 10} runs\n")

    def whole() -> float:
        """The whole model here, from text (tokenisation included, as in the split path) to the unit vector."""
        started = time.perf_counter()
        batch = loaded.tokenizer([text], padding=True, truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            states = loaded.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            weights = batch["attention_mask"].unsqueeze(-1)
            F.normalize((states.last_hidden_state * weights).sum(1) / weights.sum(1), dim=1)
        return time.perf_counter() - started

    print("| k | local ms | split ms | ratio | bytes/request | inversion nearest / learnt |")
    print("|---|---|---|---|---|---|")
    for k in args.embed_ks:
        runner = SplitRunner(TeeConfig(model=MINILM, split_layers=k, dev_root_key=str(root)), loaded)
        try:
            runner.embed([text])
            times, local_times, sent = [], [], runner.link.traffic.sent + runner.link.traffic.received
            for _ in range(args.repeats * 10):  # interleaved with the whole model, so both see the same load
                local_times.append(whole())
                started = time.perf_counter()
                runner.embed([text])
                times.append(time.perf_counter() - started)
            traffic = (runner.link.traffic.sent + runner.link.traffic.received - sent) / len(times)
            local, split = min(local_times), min(times)
            inv = inversion(loaded, k, ids[0].tolist())
            print(
                f"| {k} | {1000 * local:.1f} | {1000 * split:.1f} | {split / local:.2f}x | {traffic:,.0f} | "
                f"{inv[0]:.0%} / {inv[1]:.0%} |"
            )
        finally:
            runner.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="1,2,4,8", help="decoder layers on the client")
    parser.add_argument("--embed-ks", default="1,2,4", help="encoder layers on the client")
    parser.add_argument("--lengths", default="64,256", help="prompt lengths in tokens")
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-chat", action="store_true")
    parser.add_argument("--skip-embed", action="store_true")
    args = parser.parse_args()
    args.ks = [int(x) for x in args.ks.split(",")]
    args.embed_ks = [int(x) for x in args.embed_ks.split(",")]
    args.lengths = [int(x) for x in args.lengths.split(",")]
    torch.set_num_threads(1)
    print("# privgate TEE split inference (loopback, 1 CPU thread per side, development root of trust)")
    print("inversion = share of input tokens recovered from *plaintext* layer-k activations (see `inversion`)")
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_dev_root(Path(tmp) / "dev-root-of-trust.key")
        if not args.skip_embed:
            bench_embed(args, root)
        if not args.skip_chat:
            bench_chat(args, root)


if __name__ == "__main__":
    main()
