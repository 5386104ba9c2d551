"""The one pipeline every wire format goes through: detect → rewrite → leak scan."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import DetectionFailed, GatewayError, PolicyRefused
from gateway.ppvd import screen_prompt
from gateway.protocols.base import Extraction
from policies import Action, Policy
from rewriters.detect import DetectionEngine
from rewriters.restore import json_escape
from rewriters.rewrite import Budget, BudgetExhausted, PolicyBlocked, Rewriter, RewriteSession, value_hash
from rewriters.text import any_of

if TYPE_CHECKING:
    from rewriters.ppvd import PpvdGuard


@dataclass
class Protected:
    session: RewriteSession
    leaks: list[dict[str, Any]]
    ppvd_hits: list[dict[str, Any]] = field(default_factory=list)  # prompts that pasted a high-risk record

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
                "epsilon": r.epsilon,
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
    budget: Budget | None = None,
    guard: PpvdGuard | None = None,
) -> Protected:
    """Rewrite `body` in place. Runs in a worker thread: detection is CPU-bound.

    Any failure of detection or rewriting on a protected domain refuses the request (fail closed).
    With a PPVD `guard` and `ppvd.on_request` set, a prompt that pastes a high-risk record is refused
    or carries the record's sanitised version before detection runs.
    """
    texts = extraction.texts()
    ppvd_hits: list[dict[str, Any]] = []
    try:
        if guard is not None and policy.ppvd is not None and policy.ppvd.on_request != "off":
            texts, ppvd_hits = screen_prompt(texts, guard, policy.ppvd.on_request)
        spans = engine.detect(texts)
        question = "\n".join(texts[i] for i in extraction.question_slots) if extraction.question_slots else None
        rewritten, session = rewriter.rewrite(texts, spans, policy, tenant, budget, question)
        extraction.apply(rewritten)
    except BudgetExhausted as exc:
        raise PolicyRefused(str(exc), code="privgate_dp_budget_exhausted") from exc
    except PolicyBlocked as exc:
        raise PolicyRefused(str(exc)) from exc
    except GatewayError:
        raise
    except Exception as exc:  # a DetectorError or any other failure: never forward raw
        if policy.protect:
            raise DetectionFailed(f"sensitive-data detection failed ({type(exc).__name__}); request not sent") from exc
        raise
    return Protected(session, scan_leaks(body, session, secret), ppvd_hits)


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
    regex = any_of(set(forms))
    ours = any_of({form for s in session.surrogates for form in (s, json_escape(s))})
    assert regex is not None
    # a value that only appears inside one of our own surrogates ("Amanda" in "Amanda Rush") is not a leak
    covered = [m.span() for m in ours.finditer(outbound)] if ours else []
    found = {
        forms[m.group()]
        for m in regex.finditer(outbound)
        if not any(start <= m.start() and m.end() <= end for start, end in covered)
    }
    return [{"label": session.protected_values[v], "value_hash": value_hash(secret, v)} for v in sorted(found)]
