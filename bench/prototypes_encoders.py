"""Which token states make the better learnt detector: MiniLM (today's artifacts) or multilingual e5.

    .venv/bin/python bench/prototypes_encoders.py minilm-int8 e5-traced [e5-int8 e5-fp32] [--domain medical]

e5-traced is the encoder the multilingual artifacts use (int8, traced, 128-token windows, first 8 of
e5's 12 layers); e5-int8 and e5-fp32 read the last layer over the whole text, eagerly.

Each encoder trains a prototype model on the domain's examples with whole values held out
(`split_by_terms`, 25%), then detects on the held-out examples; printed per language: overlap
precision, recall and F1 against the labelled spans, and detection time per 1k characters.
"""

from __future__ import annotations

import argparse
import collections
import json
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewriters import e5_states
from rewriters.detectors.prototypes import PrototypeDetector, TokenPoolEncoder, _pool_window, encoder_for
from rewriters.embedding import load_embedder
from rewriters.prototypes_train import TrainConfig, read_examples, split_by_terms, train

ROOT = Path(__file__).resolve().parents[1]


class E5Encoder:
    """Span vectors pooled from e5 token states, as TokenPoolEncoder pools MiniLM's."""

    kind = "e5_token_pool"
    dim = 768
    context_tokens = 12

    def __init__(self, int8: bool) -> None:
        model, self.tokenizer = e5_states.load()
        if int8:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model = model
        self.name = "multilingual-e5-small" + ("-int8" if int8 else "")

    def fingerprint(self) -> str:
        return "bench"

    def encode(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[Any]:
        out = []
        for text, text_spans in zip(texts, spans, strict=True):
            vectors = np.zeros((len(text_spans), self.dim), np.float32)
            if text_spans:
                states, offsets = e5_states.token_states(self.model, self.tokenizer, text)
                bounds = np.asarray(text_spans, dtype=np.int64).reshape(-1, 2)
                read = np.zeros(len(bounds), bool)
                _pool_window(states, offsets, offsets[:, 0] >= 0, bounds, read, vectors, self.context_tokens)
            out.append(vectors)
        return out


def overlaps(a: tuple[int, int], b: tuple[int, int, str]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("encoders", nargs="+", choices=["minilm-int8", "e5-int8", "e5-fp32", "e5-traced"])
    ap.add_argument("--domain", default="medical")
    args = ap.parse_args()
    torch.set_num_threads(1)
    path = ROOT / "policies" / "training" / f"{args.domain}.jsonl"
    examples = read_examples(path)
    with path.open(encoding="utf-8") as lines:
        language = {r["text"]: r.get("lang", "?") for r in map(json.loads, lines)}
    test, pool = split_by_terms(examples, 0.25, 11)
    print(
        f"{len(test)} held-out examples, {len(pool)} to train on:",
        dict(collections.Counter(language[e.text] for e in test)),
    )
    make = {
        "minilm-int8": lambda: TokenPoolEncoder(load_embedder("all-MiniLM-L6-v2")),
        "e5-int8": lambda: E5Encoder(int8=True),
        "e5-fp32": lambda: E5Encoder(int8=False),
        "e5-traced": lambda: encoder_for(load_embedder("multilingual-e5-small")),
    }
    for name in args.encoders:
        encoder: Any = make[name]()
        started = time.perf_counter()
        model, _ = train(pool, encoder, TrainConfig(seed=0), domain=args.domain)
        detector = PrototypeDetector(model, encoder)
        trained = time.perf_counter() - started
        counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        seconds = chars = 0.0
        for ex in test:
            t = time.perf_counter()
            found = [(s.start, s.end) for s in detector.detect([ex.text])[0]]
            seconds, chars = seconds + time.perf_counter() - t, chars + len(ex.text)
            for key in (language[ex.text], "all"):
                c = counts[key]
                c["gold"] += len(ex.spans)
                c["pred"] += len(found)
                c["found"] += sum(any(overlaps(p, g) for p in found) for g in ex.spans)
                c["right"] += sum(any(overlaps(p, g) for g in ex.spans) for p in found)
        print(f"== {name}: trained in {trained:.0f} s; detection {1e6 * seconds / chars:.1f} ms per 1k chars")
        for key in ["all", "en", "de", "es", "fr", "it", "zh"]:
            c = counts[key]
            p, r = c["right"] / max(c["pred"], 1), c["found"] / max(c["gold"], 1)
            f1 = 2 * p * r / max(p + r, 1e-9)
            print(f"  {key:4} gold {c['gold']:4}  P {100 * p:5.1f}  R {100 * r:5.1f}  F1 {100 * f1:5.1f}")


if __name__ == "__main__":
    main()
