"""The prototype-guided judge: how private and how useful is a candidate rewrite of a span?

DAMPER builds preference pairs without human labels by letting the learnt prototypes judge. For a span
`x` of label L in text `T` and a candidate `c` (T' is T with x replaced by c, T∖x is T with x removed), with
E the sentence embedder and every term in [0, 1]:

- proximity: c, embedded in T' by the domain's span encoder and projected by its head, against every
  private prototype; the highest similarity over that label's calibrated threshold, capped at 1.
- leak: the share of x's words (of 3+ letters; Han characters one by one) that c repeats.
- restored: how much of what x added to T the candidate gives back,
  (cos(E(T'), E(T)) − cos(E(T∖x), E(T))) / (1 − cos(E(T∖x), E(T))), clipped.
- on_category: cos(E(c), centroid of L's training spans): the meaning kept at the category level.
- utility = (restored + on_category) / 2
- score = utility − leak_weight × leak − proximity_weight × proximity. An answer that is no phrase scores −1.

Proximity weighs less than leak: a good generalisation ("a blood cancer") is still a condition, and the
prototypes say so; it must not lose to a string of noise that no prototype recognises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import regex

from rewriters.damper.prompt import SpanItem
from rewriters.detectors.prototypes import NOT_PRIVATE, PrototypeDetector
from rewriters.embedding import Embedder

INVALID = -1.0
_TOKENS = regex.compile(r"\p{Han}|[\w--\p{Han}]{3,}", regex.V1)


@dataclass(frozen=True)
class ScoringConfig:
    leak_weight: float = 1.0
    proximity_weight: float = 0.5
    min_margin: float = 0.15  # a pair whose chosen beats its rejected by less teaches nothing reliable

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Judged:
    candidate: str
    restored: float
    on_category: float
    proximity: float
    leak: float
    score: float

    @property
    def utility(self) -> float:
        return (self.restored + self.on_category) / 2


def leak(original: str, candidate: str) -> float:
    """Share of the original's identifying tokens that the candidate repeats."""
    tokens = {t.casefold() for t in _TOKENS.findall(original)}
    if not tokens:
        return 0.0
    found = {t.casefold() for t in _TOKENS.findall(candidate)}
    return len(tokens & found) / len(tokens)


class PrototypeJudge:
    """Scores candidate rewrites with a domain's prototype detector and a sentence embedder."""

    def __init__(
        self,
        detector: PrototypeDetector,
        embedder: Embedder,
        config: ScoringConfig | None = None,
        centroids: dict[str, np.ndarray] | None = None,
    ) -> None:
        self.detector, self.embedder = detector, embedder
        self.config = config or ScoringConfig()
        self.centroids = dict(centroids or {})
        model = detector.model
        private = np.array([label != NOT_PRIVATE for label in model.prototype_labels])
        self._private = model.prototypes[private]
        self._thresholds = np.array(
            [model.thresholds.get(label, 1.0) for label in model.prototype_labels], dtype=np.float32
        )[private]

    def proximity(self, texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Per (text, span): nearest private prototype's similarity over its label's threshold, in [0, 1]."""
        if not len(self._private):
            return np.zeros(len(texts), dtype=np.float32)
        features = self.detector.encoder.encode(texts, [[s] for s in spans])
        projected = self.detector.model.project(np.vstack(features))
        ratio = (projected @ self._private.T) / np.maximum(self._thresholds, 1e-6)
        return np.asarray(np.clip(ratio.max(axis=1), 0.0, 1.0), dtype=np.float32)

    def fit_centroids(self, items: Sequence[SpanItem]) -> None:
        """Each label's centroid: the normalised mean embedding of its training spans' values."""
        by_label: dict[str, list[str]] = {}
        for item in items:
            by_label.setdefault(item.label, []).append(item.value)
        for label, values in by_label.items():
            mean = self.embedder.embed(sorted(set(values))).mean(axis=0)
            self.centroids[label] = mean / max(float(np.linalg.norm(mean)), 1e-12)

    def judge(self, item: SpanItem, candidates: Sequence[str | None]) -> list[Judged | None]:
        """A verdict per candidate; None candidates (not a phrase) are judged `INVALID` by the caller."""
        valid = list(dict.fromkeys(c for c in candidates if c))
        if not valid:
            return [None] * len(candidates)
        texts = [item.text[: item.start] + c + item.text[item.end :] for c in valid]
        near = self.proximity(texts, [(item.start, item.start + len(c)) for c in valid])
        removed = " ".join((item.text[: item.start] + item.text[item.end :]).split())
        vectors = self.embedder.embed([item.text, removed, *texts, item.value, *valid])
        n = len(valid)
        original, without = vectors[0], vectors[1]
        rewritten, phrases, value = vectors[2 : 2 + n], vectors[3 + n :], vectors[2 + n]
        floor = float(without @ original)
        restored = np.clip((rewritten @ original - floor) / max(1.0 - floor, 1e-6), 0.0, 1.0)
        centroid = self.centroids.get(item.label, value)
        on_category = np.clip(phrases @ centroid, 0.0, 1.0)
        cfg = self.config
        verdicts: dict[str, Judged] = {}
        for c, r, o, p in zip(valid, restored, on_category, near, strict=True):
            lk = leak(item.value, c)
            score = (float(r) + float(o)) / 2 - cfg.leak_weight * lk - cfg.proximity_weight * float(p)
            verdicts[c] = Judged(c, float(r), float(o), float(p), lk, score)
        return [verdicts[c] if c else None for c in candidates]
