"""Prototype-guided preference pairs: the base rewriter's own samples, ranked by the judge, no human labels.

For each private span of a domain's training texts the base rewriter samples N answers; the judge scores
them (`scoring.py`); the best well-formed phrase becomes `chosen`, the worst answer (often a sentence that is
no phrase at all, or a copy of the original) becomes `rejected`. A span whose best and worst are closer than
`min_margin` gives no pair.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rewriters.damper.prompt import SpanItem, clean, messages
from rewriters.damper.rewriter import SpanRewriter
from rewriters.damper.scoring import INVALID, PrototypeJudge

_REJECTED_CHARS = 200


@dataclass(frozen=True)
class Pair:
    item: SpanItem
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float

    def to_dpo(self, sees_span: bool = True) -> dict[str, Any]:
        """trl's conversational preference format."""
        return {
            "prompt": messages(self.item, sees_span),
            "chosen": [{"role": "assistant", "content": self.chosen}],
            "rejected": [{"role": "assistant", "content": self.rejected}],
        }

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "item": asdict(self.item)}


def span_items(rows: Iterable[dict[str, Any]], labels: Sequence[str]) -> list[SpanItem]:
    """Every labelled span of the wanted labels, from the prototypes' training JSONL rows."""
    wanted = set(labels)
    return [
        SpanItem(row["text"], s["start"], s["end"], s["label"])
        for row in rows
        for s in row.get("spans", [])
        if s["label"] in wanted
    ]


def read_rows(path: Path | str) -> list[dict[str, Any]]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def best_and_worst(item: SpanItem, answers: Sequence[str], judge: PrototypeJudge) -> Pair | None:
    """The pair for one span's sampled answers, or None when they do not differ enough."""
    phrases = [clean(a) for a in answers]
    verdicts = judge.judge(item, phrases)
    scored: list[tuple[float, str]] = []
    for answer, phrase, verdict in zip(answers, phrases, verdicts, strict=True):
        if verdict is not None and phrase is not None:
            scored.append((verdict.score, phrase))
        elif answer.strip():
            scored.append((INVALID, answer.strip()[:_REJECTED_CHARS]))
    valid = [s for s in scored if s[0] > INVALID]
    if not valid or len(scored) < 2:
        return None
    chosen = max(valid)
    rejected = min(scored)
    if chosen[0] - rejected[0] < judge.config.min_margin or chosen[1] == rejected[1]:
        return None
    return Pair(item, chosen[1], rejected[1], round(chosen[0], 4), round(rejected[0], 4))


def build_pairs(
    items: Sequence[SpanItem],
    rewriter: SpanRewriter,
    judge: PrototypeJudge,
    samples: int = 6,
    batch: int = 8,
    limit: int | None = None,
    seed: int = 0,
    progress: Any = None,
) -> list[Pair]:
    """Pairs for up to `limit` spans (a seeded shuffle of `items`), sampled `batch` spans per generate call."""
    order = list(items)
    random.Random(seed).shuffle(order)
    if limit is not None:
        order = order[:limit]
    pairs = []
    for i in range(0, len(order), batch):
        chunk = order[i : i + batch]
        for item, answers in zip(chunk, rewriter.sample(chunk, samples), strict=True):
            pair = best_and_worst(item, answers, judge)
            if pair is not None:
                pairs.append(pair)
        if progress is not None:
            progress(min(i + batch, len(order)), len(order), len(pairs))
    return pairs
