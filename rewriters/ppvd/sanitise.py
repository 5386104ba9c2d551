"""Stage 3's default sanitiser: a policy's own detection, with non-restorable replacements.

The gateway restores pseudonyms and numbered mask tags in answers, so a secure sentence must carry
neither: each protected span becomes its generalised form (a date → month and year) or an
unnumbered `[LABEL]` tag that no request's restorer knows.
"""

from __future__ import annotations

from collections.abc import Callable

from policies.schema import Action, Policy
from rewriters.detect import DetectionEngine
from rewriters.privqa import generalize


def policy_sanitiser(policy: Policy, engine: DetectionEngine) -> Callable[[list[str]], list[str]]:
    def sanitise(texts: list[str]) -> list[str]:
        out = []
        for text, spans in zip(texts, engine.detect(texts), strict=True):
            for span in sorted(spans, key=lambda s: s.start, reverse=True):  # back to front: offsets stay valid
                if policy.action_for(span.label) is Action.ALLOW:
                    continue
                value = text[span.start : span.end]
                coarse = generalize(span.label, value)
                replacement = coarse if coarse and coarse != value else f"[{span.label}]"
                text = text[: span.start] + replacement + text[span.end :]
            out.append(text)
        return out

    return sanitise
