"""The one pipeline every wire format goes through: detect → rewrite → leak scan."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from gateway.errors import DetectionFailed, PolicyRefused
from gateway.protocols.base import Extraction
from policies import Action, Policy
from rewriters.detect import DetectionEngine
from rewriters.detectors.base import DetectorError
from rewriters.restore import json_escape
from rewriters.rewrite import PolicyBlocked, Rewriter, RewriteSession, value_hash


@dataclass
class Protected:
    session: RewriteSession
    leaks: list[dict[str, Any]]

    def span_report(self) -> list[dict[str, Any]]:
        return [
            {
                "slot": r.slot,
                "start": r.start,
                "end": r.end,
                "label": r.label,
                "detector": r.detector,
                "score": round(r.score, 3),
                "action": r.action.value,
                "value_hash": r.value_hash,
            }
            for r in self.session.records
        ]


def protect(
    body: dict[str, Any],
    extraction: Extraction,
    engine: DetectionEngine,
    rewriter: Rewriter,
    policy: Policy,
    tenant: str,
    secret: bytes,
) -> Protected:
    """Rewrite `body` in place. Runs in a worker thread: detection is CPU-bound.

    Any failure of detection or rewriting on a protected domain refuses the request (fail closed).
    """
    texts = extraction.texts()
    try:
        spans = engine.detect(texts)
        rewritten, session = rewriter.rewrite(texts, spans, policy, tenant)
        extraction.apply(rewritten)
    except PolicyBlocked as exc:
        raise PolicyRefused(str(exc)) from exc
    except (DetectorError, Exception) as exc:
        if policy.protect:
            raise DetectionFailed(f"sensitive-data detection failed ({type(exc).__name__}); request not sent") from exc
        raise
    return Protected(session, scan_leaks(body, session, secret))


def scan_leaks(body: dict[str, Any], session: RewriteSession, secret: bytes) -> list[dict[str, Any]]:
    """Outbound check: a value we protected must not appear anywhere in what leaves the machine.

    It catches values sitting in fields no adapter rewrites (metadata, tool descriptions, names).
    """
    values = [
        v for v, label in session.protected_values.items() if session.policy.action_for(label) is not Action.ALLOW
    ]
    if not values:
        return []
    outbound = json.dumps(body, ensure_ascii=False)
    forms = {form: value for value in values for form in (value, json_escape(value))}
    alternation = "|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True))
    regex = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")
    found = {forms[m.group()] for m in regex.finditer(outbound)}
    return [{"label": session.protected_values[v], "value_hash": value_hash(secret, v)} for v in sorted(found)]
