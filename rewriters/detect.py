"""Run a policy's detectors over a request's text slots and merge what they find."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from policies.schema import Policy
from rewriters.detectors.base import Detector, DetectorError
from rewriters.detectors.chinese import ChineseNameDetector
from rewriters.detectors.patterns import PatternDetector
from rewriters.detectors.presidio import AnalyzerCache, PresidioDetector
from rewriters.spans import Span, merge_spans


def build_detectors(policy: Policy, analyzers: AnalyzerCache) -> list[Detector]:
    config = policy.detectors
    detectors: list[Detector] = []
    if config.presidio.enabled:
        analyzer = analyzers.analyzer(config.presidio.models)
        detectors.append(PresidioDetector(analyzer, config.presidio, analyzers.guesser()))
    if config.chinese.enabled:
        detectors.append(ChineseNameDetector(config.chinese.score))
    if config.patterns or config.deny_lists:
        detectors.append(PatternDetector(config.patterns, config.deny_lists))
    return detectors


class DetectionEngine:
    """All of one policy's detectors; `detect` is the only entry point the gateway calls."""

    def __init__(self, detectors: Sequence[Detector], protects: Callable[[str], bool] | None = None) -> None:
        self.detectors = list(detectors)
        self._protects = protects  # the policy's "is this label rewritten?", for the merge rule

    @classmethod
    def for_policy(cls, policy: Policy, analyzers: AnalyzerCache) -> DetectionEngine:
        return cls(build_detectors(policy, analyzers), policy.protects)

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        found: list[list[Span]] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if not todo or not self.detectors:
            return found
        batch = [texts[i] for i in todo]
        for detector in self.detectors:
            try:
                per_text = detector.detect(batch)
            except DetectorError:
                raise
            except Exception as exc:  # any failure must stop the request, not let it through raw
                raise DetectorError(f"detector {detector.name!r} failed: {type(exc).__name__}") from exc
            for i, spans in zip(todo, per_text, strict=True):
                found[i].extend(spans)
        merged = [merge_spans(spans, self._protects) for spans in found]
        return propagate_values(texts, merged, self._protects)


def propagate_values(
    texts: Sequence[str], spans: list[list[Span]], protects: Callable[[str], bool] | None = None
) -> list[list[Span]]:
    """Flag every other occurrence of a detected value, in any slot.

    A name the NER caught in the user's message but missed in the system prompt or a tool result
    would otherwise leave the machine raw. Matching is exact and bounded by non-word characters.
    """
    labels: dict[str, Span] = {}
    for text, text_spans in zip(texts, spans, strict=True):
        for s in text_spans:
            value = text[s.start : s.end]
            if value.strip() and (value not in labels or s.score > labels[value].score):
                labels[value] = s
    if not labels:
        return spans
    alternation = "|".join(re.escape(v) for v in sorted(labels, key=len, reverse=True))
    regex = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
    result = []
    for text, text_spans in zip(texts, spans, strict=True):
        extra = [
            Span(m.start(), m.end(), labels[m.group()].label, labels[m.group()].score, "propagate")
            for m in regex.finditer(text)
            if not any(s.start < m.end() and m.start() < s.end for s in text_spans)
        ]
        result.append(merge_spans([*text_spans, *extra], protects) if extra else text_spans)
    return result
