"""The playground: what the proxy would send for a body, through the proxy's own `protect` pipeline.

It is the dry-run path without the HTTP hop: the same adapter, detection engine, rewriter, policy,
tenant key and leak scan as `POST /v1/chat/completions` with `X-Privgate-Dry-Run: 1`, so the
rewritten body is byte for byte what the proxy would forward. Two differences, both on purpose: a
preview spends no DP budget (it only checks the tenant still has it), and it writes no audit record.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from gateway.budget import BudgetLedger, window_key
from gateway.errors import GatewayError, PolicyRefused, UnknownDomain
from gateway.pipeline import protect
from gateway.protocols import ADAPTERS
from gateway.runtime import Runtime
from policies.schema import DpConfig

ENDPOINT = "/v1/chat/completions"


@dataclass
class PreviewBudget:
    """A `Budget` that answers like the tenant's real one would, without taking anything."""

    ledger: BudgetLedger
    tenant: str
    dp: DpConfig
    asked: float = 0.0

    def spend(self, epsilon: float) -> bool:
        self.asked += epsilon
        spent = self.ledger.spent(self.tenant).get(window_key(self.dp.window), 0.0)
        return spent + epsilon <= self.dp.budget


def chat_body(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}


SPAN_FIELDS = ("slot", "start", "end", "label", "detector", "score", "action", "epsilon")


def _span_dicts(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Offsets, label, detector, score, action: the page highlights with these (no value hash needed)."""
    return [{k: s[k] for k in SPAN_FIELDS} for s in spans]


def preview(runtime: Runtime, body: dict[str, Any], domain: str, tenant: str) -> dict[str, Any]:
    """Run the proxy's pipeline on `body` (a chat-completions request) and report what would leave."""
    policy = runtime.policies.get(domain)
    if policy is None:
        raise UnknownDomain(f"unknown domain {domain!r}; known domains: {', '.join(sorted(runtime.policies))}")
    adapter = ADAPTERS[ENDPOINT]
    originals = adapter.extract(copy.deepcopy(body)).texts()
    extraction = adapter.extract(body)
    engine = runtime.engines[domain]
    budget = PreviewBudget(runtime.budgets, tenant, policy.dp)
    report: dict[str, Any] = {
        "object": "privgate.playground",
        "domain": domain,
        "tenant": tenant,
        "policy_version": policy.version,
        "slots": [{"index": i, "text": t} for i, t in enumerate(originals)],
        "question_slots": extraction.question_slots,
    }
    try:
        protected = protect(body, extraction, engine, runtime.rewriter, policy, tenant, runtime.secret, budget)
    except GatewayError as exc:  # a `block` label, a spent budget, a failed detector: the proxy refuses too
        spans = engine.detect(originals) if isinstance(exc, PolicyRefused) else []
        found = [
            dict(zip(SPAN_FIELDS, (i, s.start, s.end, s.label, s.detector, round(s.score, 3), None, None), strict=True))
            | {"action": policy.action_for(s.label).value}
            for i, slot in enumerate(spans)
            for s in slot
        ]
        refused = {"status": exc.status, "code": exc.code, "message": exc.message}
        return {
            **report,
            **refused,
            "outcome": "refused",
            "spans": found,
            "leaks": [],
            "body": None,
            "round_trip": None,
            "epsilon": budget.asked,
        }
    report.update(spans=_span_dicts(protected.span_report()), leaks=protected.leaks, epsilon=budget.asked, body=body)
    if protected.leaks and policy.protect:
        labels = ", ".join(sorted({leak["label"] for leak in protected.leaks}))
        message = f"a protected value ({labels}) sits in a field privgate cannot rewrite; not sent"
        refused = {"status": 403, "code": PolicyRefused.code, "message": message}
        return {**report, **refused, "outcome": "refused", "body": None, "round_trip": None}
    report.update(outcome="forwarded", status=200, code=None, message=None)
    report["round_trip"] = round_trip(adapter, extraction, protected.session.restorer())
    return report


def round_trip(adapter: Any, extraction: Any, restorer: Any) -> dict[str, str]:
    """A sample answer, as the built-in echo model would give it (the user's turn, as the cloud saw it),
    then restored by the adapter's own `restore_json`, as the proxy restores a real answer."""
    sent = extraction.texts()
    slots = extraction.question_slots or list(range(len(sent)))
    cloud = "\n".join(sent[i] for i in slots)
    answer = {
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": cloud}, "finish_reason": "stop"}],
    }
    restored = adapter.restore_json(answer, restorer)
    return {"cloud_answer": cloud, "restored_answer": restored["choices"][0]["message"]["content"]}
