"""DAMPER benchmark: the privacy–utility frontier of mask, pseudonym, and the exponential mechanism over the
vocabulary, the base rewriter's candidates and the aligned rewriter's candidates.

Held-out texts per domain come from the training generator with another seed (unseen sentences, the same
kind of terms); `--meddocan N` adds Spanish clinical notes from ../shared/data with their condition,
medication and procedure spans found by the medical prototypes. One private span per text is rewritten.

Privacy
- recover@1: an attacker who sees the rewritten span and knows the label's value space (every value of
  that label in the domain's training set and the held-out texts) guesses the nearest value by MiniLM
  cosine; the share of originals guessed exactly.
- near-private: the share of rewritten spans the domain's prototypes would still flag in the text.
Utility
- text-sim: cosine of the rewritten text to the original (MiniLM).
- answer-sim: SmolLM2 answers "what matters most for this person?" on the rewritten text; the
  replacement is restored in the answer; cosine to its answer on the original text (first --answers texts).
Cost
- ms/span: the rewriter's added time per span (one batched generate per 8 spans), on this CPU.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/damper.py [--domains medical,finance,legal] [--texts 40]
        [--answers 8] [--meddocan 0] [--epsilons 1,2,4,8] [--artifacts policies/artifacts/damper]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from policies.training.generate import generate  # noqa: E402
from rewriters.damper.align import default_judge  # noqa: E402
from rewriters.damper.artifact import DamperArtifact  # noqa: E402
from rewriters.damper.candidates import DamperCandidates  # noqa: E402
from rewriters.damper.model import load_base  # noqa: E402
from rewriters.damper.pairs import read_rows, span_items  # noqa: E402
from rewriters.damper.prompt import SpanItem  # noqa: E402
from rewriters.damper.rewriter import SpanRewriter  # noqa: E402
from rewriters.damper.scoring import PrototypeJudge  # noqa: E402
from rewriters.dp import draw  # noqa: E402
from rewriters.embedding import Embedder, load_embedder  # noqa: E402
from rewriters.surrogates import SurrogateFactory  # noqa: E402

QUESTION = "In one sentence, what matters most for this person?"
BATCH = 8


def held_out(domain: str, count: int, labels: Sequence[str]) -> list[SpanItem]:
    """The first private span of unseen generated texts (seed 99; the shipped set uses seed 0)."""
    items = []
    for row in generate(domain, count * 4, seed=99):
        spans = [s for s in row["spans"] if s["label"] in labels]  # type: ignore[union-attr]
        if spans:
            items.append(SpanItem(str(row["text"]), spans[0]["start"], spans[0]["end"], spans[0]["label"]))
        if len(items) == count:
            break
    return items


def meddocan(path: Path, count: int, judge: PrototypeJudge) -> list[SpanItem]:
    """Spanish clinical notes: the first span the medical prototypes find in each."""
    items = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            text = json.loads(line)["text"][:600]
            found = judge.detector.detect([text])[0]
            if found:
                items.append(SpanItem(text, found[0].start, found[0].end, found[0].label))
            if len(items) == count:
                break
    return items


def rewritten(item: SpanItem, replacement: str) -> str:
    return item.text[: item.start] + replacement + item.text[item.end :]


def answers(model: Any, tokenizer: Any, texts: Sequence[str]) -> list[str]:
    """Greedy SmolLM2 answers, batched."""
    out: list[str] = []
    for i in range(0, len(texts), 16):
        chats = [[{"role": "user", "content": f"{t}\n\n{QUESTION}"}] for t in texts[i : i + 16]]
        prompts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            ids = model.generate(**encoded, do_sample=False, max_new_tokens=24, pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(ids[:, encoded["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


class Scorer:
    """The privacy and utility figures of one list of replacements."""

    def __init__(self, items: list[SpanItem], space: list[str], judge: PrototypeJudge, embedder: Embedder,
                 lm: tuple[Any, Any], n_answers: int) -> None:  # fmt: skip
        self.items, self.space, self.judge, self.embedder, self.lm = items, space, judge, embedder, lm
        self.space_vectors = embedder.embed(space)
        self.originals = embedder.embed([i.text for i in items])
        self.n_answers = min(n_answers, len(items))
        self.reference = answers(*lm, [i.text for i in items[: self.n_answers]]) if self.n_answers else []
        self.reference_vectors = embedder.embed(self.reference) if self.reference else None

    def score(self, replacements: list[str]) -> dict[str, float]:
        guesses = np.argmax(self.embedder.embed(replacements) @ self.space_vectors.T, axis=1)
        recovered = [self.space[g].casefold() == i.value.casefold() for g, i in zip(guesses, self.items, strict=True)]
        texts = [rewritten(i, r) for i, r in zip(self.items, replacements, strict=True)]
        near = self.judge.proximity(texts, [(i.start, i.start + len(r)) for i, r in zip(self.items, replacements,
                                                                                        strict=True)])  # fmt: skip
        sims = np.sum(self.embedder.embed(texts) * self.originals, axis=1)
        row = {"recover@1": float(np.mean(recovered)), "near-private": float(np.mean(near >= 1.0)),
               "text-sim": float(np.mean(sims))}  # fmt: skip
        if self.n_answers and self.reference_vectors is not None:
            got = answers(*self.lm, texts[: self.n_answers])
            restored = [
                a.replace(r, i.value) if r else a for a, r, i in zip(got, replacements, self.items, strict=False)
            ]
            row["answer-sim"] = float(np.mean(np.sum(self.embedder.embed(restored) * self.reference_vectors, axis=1)))
        return row


def candidate_sets(
    source: DamperCandidates, items: list[SpanItem]
) -> tuple[list[tuple[list[str], list[float]]], float]:
    """Candidate sets in batches of BATCH spans, and the milliseconds per span it took."""
    started, sets = time.perf_counter(), []
    for i in range(0, len(items), BATCH):
        sets += source.candidate_sets(items[i : i + BATCH])
    return sets, (time.perf_counter() - started) * 1000 / max(1, len(items))


def run_domain(title: str, domain: str, items: list[SpanItem], args: argparse.Namespace, base: tuple[Any, Any],
               embedder: Embedder, judge: PrototypeJudge) -> None:  # fmt: skip
    artifact_dir = Path(args.artifacts) / domain
    artifact = DamperArtifact.load(artifact_dir) if (artifact_dir / "meta.json").exists() else None
    training = span_items(read_rows(ROOT / "policies" / "training" / f"{domain}.jsonl"), judge.detector.model.labels)
    space = sorted({i.value for i in [*training, *items]})
    scorer = Scorer(items, space, judge, embedder, base, args.answers)
    vocabulary = artifact.vocabulary if artifact else {}
    labels = judge.detector.model.labels
    rows: list[tuple[str, str, dict[str, float], float | None]] = []
    rows.append(("mask", "—", scorer.score([f"[{i.label}_1]" for i in items]), None))
    factory = SurrogateFactory(b"bench-secret-0123456789abcdef012")
    rows.append(("pseudonym", "—", scorer.score([factory.make("bench", i.label, i.value) for i in items]), None))
    sources: list[tuple[str, DamperCandidates | None]] = [("EM vocabulary", None)]
    sources.append(("EM base rewriter", DamperCandidates(SpanRewriter(*base), vocabulary, labels, embedder, args.k)))
    if artifact is not None:
        aligned = artifact.open_rewriter()
        sources.append(("EM aligned rewriter", DamperCandidates(aligned, vocabulary, labels, embedder, args.k)))
    for name, source in sources:
        ms: float | None = None
        if source is None:
            if not any(vocabulary.get(i.label) for i in items):
                continue
            sets = DamperCandidates(SpanRewriter(*base), vocabulary, labels, embedder).vocabulary_only(items)
        else:
            sets, ms = candidate_sets(source, items)
        for epsilon in args.epsilons:
            picks = [draw(c, u, epsilon) if c else f"[{i.label}_1]" for (c, u), i in zip(sets, items, strict=True)]
            rows.append((name, f"{epsilon:g}", scorer.score(picks), ms))
    print(f"\n## {title}: {len(items)} held-out spans, value space {len(space)}, "
          f"vocabulary {sum(len(v) for v in vocabulary.values())} phrases"
          + ("" if artifact else " (no aligned artifact: run privgate damper align)"))  # fmt: skip
    keys = ["recover@1", "near-private", "text-sim", "answer-sim"]
    print("| method | ε | " + " | ".join(keys) + " | ms/span |\n|---|---|" + "---|" * (len(keys) + 1))
    for name, eps, row, ms in rows:
        cells = [f"{row[k]:.3f}" if k in row else "—" for k in keys]
        print(f"| {name} | {eps} | " + " | ".join(cells) + f" | {ms:.0f} |" if ms is not None else
              f"| {name} | {eps} | " + " | ".join(cells) + " | — |")  # fmt: skip
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domains", default="medical,finance,legal")
    parser.add_argument("--texts", type=int, default=40)
    parser.add_argument("--answers", type=int, default=8)
    parser.add_argument("--meddocan", type=int, default=0)
    parser.add_argument("--epsilons", type=lambda s: [float(x) for x in s.split(",")], default=[1.0, 2.0, 4.0, 8.0])
    parser.add_argument("--artifacts", default=str(ROOT / "policies" / "artifacts" / "damper"))
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    embedder = load_embedder("all-MiniLM-L6-v2")
    base = load_base()
    for domain in args.domains.split(","):
        judge = default_judge(ROOT / "policies" / "artifacts" / domain)
        run_domain(
            domain, domain, held_out(domain, args.texts, judge.detector.model.labels), args, base, embedder, judge
        )
        if domain == "medical" and args.meddocan:
            items = meddocan(ROOT.parent / "shared" / "data" / "meddocan_dev.jsonl", args.meddocan, judge)
            run_domain("medical, MEDDOCAN (es)", "medical", items, args, base, embedder, judge)


if __name__ == "__main__":
    main()
