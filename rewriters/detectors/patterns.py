"""Regex patterns and deny-lists from the policy: secrets, record numbers, a domain's own terms.

Kept apart from Presidio's recognizers because a pattern here may name a capture group as the
span (`password=(\\S+)` flags only the value), which Presidio's `PatternRecognizer` cannot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from policies.schema import DenyListConfig, PatternConfig
from rewriters.spans import Span


@dataclass(frozen=True)
class _Compiled:
    name: str
    label: str
    regex: re.Pattern[str]
    group: int
    score: float


class PatternDetector:
    name = "pattern"

    def __init__(self, patterns: Sequence[PatternConfig], deny_lists: Sequence[DenyListConfig] = ()) -> None:
        compiled = [
            _Compiled(p.name, p.label, re.compile(p.regex, re.IGNORECASE if p.ignore_case else 0), p.group, p.score)
            for p in patterns
        ]
        for i, deny in enumerate(deny_lists):
            terms = sorted({v for v in deny.values if v.strip()}, key=len, reverse=True)
            alternation = "|".join(re.escape(t) for t in terms)
            regex = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE if deny.ignore_case else 0)
            compiled.append(_Compiled(f"deny_list_{i}", deny.label, regex, 0, 1.0))
        self._patterns = compiled

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        return [self._detect_one(text) for text in texts]

    def _detect_one(self, text: str) -> list[Span]:
        spans = []
        for p in self._patterns:
            for match in p.regex.finditer(text):
                start, end = match.span(p.group)
                value = text[start:end]
                # trim whitespace and trailing punctuation a greedy pattern may have swallowed
                stripped = value.rstrip(" \t\r\n.,;:'\")")
                end -= len(value) - len(stripped)
                start += len(stripped) - len(stripped.lstrip())
                if start < end:
                    spans.append(Span(start, end, p.label, p.score, f"{self.name}:{p.name}"))
        return spans
