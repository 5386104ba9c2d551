"""Detection time per turn of a growing chat, with and without the engine's per-text cache.

A chat request carries the whole conversation, so turn n re-sends turns 1..n-1. This replays a
conversation of N user turns (sentences from a domain's training examples, a few per turn) through
one policy's DetectionEngine the way the gateway calls it (every slot of the request in one batch) and
prints the median time per turn, and the whole conversation's total, with the cache off and on.

    .venv/bin/python bench/conversation.py --domain medical --turns 12
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway import load_settings  # noqa: E402
from gateway.runtime import Runtime  # noqa: E402
from rewriters.detect import DetectionEngine  # noqa: E402

TRAINING = Path(__file__).resolve().parents[1] / "policies" / "training"


def conversation(examples: Path, turns: int, per_turn: int) -> list[str]:
    lines = [json.loads(line)["text"] for line in examples.read_text(encoding="utf-8").splitlines() if line.strip()]
    english = [t for t in lines if t.isascii()] or lines
    return [" ".join(english[i * per_turn : (i + 1) * per_turn]) for i in range(turns)]


def replay(engine: DetectionEngine, messages: list[str]) -> list[float]:
    times = []
    for n in range(1, len(messages) + 1):
        started = time.perf_counter()
        engine.detect(messages[:n])
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--domain", default="medical")
    ap.add_argument("--turns", type=int, default=12)
    ap.add_argument("--per-turn", type=int, default=3, help="example sentences per user turn")
    ap.add_argument("--examples", type=Path, default=TRAINING / "medical.jsonl", help="JSONL whose texts are the turns")
    args = ap.parse_args()
    messages = conversation(args.examples, args.turns, args.per_turn)
    with tempfile.TemporaryDirectory() as tmp:
        runtime = Runtime.build(load_settings(None, data_dir=tmp))
        detectors = runtime.engines[args.domain].detectors
        policy = runtime.policies[args.domain]
        print(f"policy {args.domain}: {len(messages)} turns, {sum(map(len, messages)):,} characters in all")
        for label, size in (("cache off", 0), ("cache on", 4096)):
            engine = DetectionEngine(detectors, policy.protects, cache_size=size)
            engine.detect(["warm-up text with aspirin for Alice in Berlin"])
            times = replay(engine, messages)
            print(
                f"  {label:<9}  median per turn {1000 * statistics.median(times):7.1f} ms, "
                f"last turn {1000 * times[-1]:7.1f} ms, whole conversation {sum(times):6.2f} s"
            )
        runtime.audit.close()


if __name__ == "__main__":
    main()
