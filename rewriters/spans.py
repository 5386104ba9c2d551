"""The one span type every detector returns, and the one rule that merges overlaps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Span:
    """A sensitive stretch of one text slot: code-point offsets, end exclusive."""

    start: int
    end: int
    label: str
    score: float
    detector: str

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end:
            raise ValueError(f"empty or negative span {self.start}:{self.end}")

    @property
    def length(self) -> int:
        return self.end - self.start

    def overlaps(self, other: Span) -> bool:
        return self.start < other.end and other.start < self.end


def merge_spans(spans: Iterable[Span], protects: Callable[[str], bool] | None = None) -> list[Span]:
    """Resolve overlaps: the longest span wins, then the highest score; result sorted by start.

    One rule for every detector, so adding a detector never changes how the others combine.
    With `protects` (does the policy rewrite this label?), a protected span beats an allowed one
    whatever their lengths: an allowed URL must not swallow the API key inside it.
    """
    kept: list[Span] = []
    rank = protects or (lambda label: True)
    for span in sorted(spans, key=lambda s: (not rank(s.label), -s.length, -s.score, s.start)):
        if not any(span.overlaps(k) for k in kept):
            kept.append(span)
    return sorted(kept, key=lambda s: s.start)
