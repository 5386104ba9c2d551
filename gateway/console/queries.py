"""Read-only questions the console asks the audit store and the budget ledger. Never a raw value:
audit rows hold only labels, detectors, actions and keyed hashes."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.admin import row_dict
from gateway.audit import AuditRow, AuditStore
from gateway.budget import dp_budget, window_key
from gateway.runtime import Runtime
from policies.schema import Action

SCAN_CAP = 5000  # rows read at most to answer one filtered listing or one chart


@dataclass(frozen=True)
class RequestFilter:
    tenant: str | None = None
    domain: str | None = None
    label: str | None = None
    backend: str | None = None
    leaks_only: bool = False
    before_id: int | None = None  # paging: records older than this id


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite gives naive UTC datetimes


def summary(row: AuditRow) -> dict[str, Any]:
    labels = Counter(span.get("label", "?") for span in row.spans or [])
    return {
        "id": row.id,
        "request_id": row.request_id,
        "created_at": _utc(row.created_at).isoformat(),
        "tenant": row.tenant,
        "domain": row.domain,
        "policy_version": row.policy_version,
        "endpoint": row.endpoint,
        "model": row.model,
        "backend": row.backend,
        "streamed": row.streamed,
        "outcome": row.outcome,
        "status": row.status,
        "error": row.error,
        "n_spans": row.n_spans,
        "n_leaks": row.n_leaks,
        "labels": dict(sorted(labels.items())),
        "overhead_ms": round(row.overhead_ms, 2),
        "upstream_ms": None if row.upstream_ms is None else round(row.upstream_ms, 2),
    }


def list_requests(store: AuditStore, where: RequestFilter, limit: int) -> list[dict[str, Any]]:
    """Newest first; tenant, domain, backend, leaks in SQL, label (inside the JSON spans) in Python."""
    query = select(AuditRow).order_by(AuditRow.id.desc())
    if where.tenant:
        query = query.where(AuditRow.tenant == where.tenant)
    if where.domain:
        query = query.where(AuditRow.domain == where.domain)
    if where.backend:
        query = query.where(AuditRow.backend == where.backend)
    if where.leaks_only:
        query = query.where(AuditRow.n_leaks > 0)
    if where.before_id is not None:
        query = query.where(AuditRow.id < where.before_id)
    found: list[dict[str, Any]] = []
    with Session(store.engine) as session:
        for row in session.scalars(query.limit(SCAN_CAP if where.label else limit)):
            if where.label and not any(s.get("label") == where.label for s in row.spans or []):
                continue
            found.append(summary(row))
            if len(found) >= limit:
                break
    return found


def detail(store: AuditStore, request_id: str) -> dict[str, Any] | None:
    """One record in full, plus its spans grouped by label, detector and action."""
    with Session(store.engine) as session:
        row = session.scalars(select(AuditRow).where(AuditRow.request_id == request_id)).first()
        if row is None:
            return None
        record = {**row_dict(row), **summary(row)}
    groups = Counter((s.get("label"), s.get("detector"), s.get("action")) for s in record["spans"])
    record["by_label"] = [
        {"label": label, "detector": detector, "action": action, "count": n}
        for (label, detector, action), n in sorted(groups.items(), key=lambda item: str(item[0]))
    ]
    record.setdefault("ppvd_hits", record.get("ppvd") or [])  # shown once the audit store records PPVD hits
    return record


def facets(store: AuditStore) -> dict[str, list[str]]:
    """Values the Requests filters offer: tenants, domains, backends and labels seen recently."""
    with Session(store.engine) as session:
        rows = session.execute(
            select(AuditRow.tenant, AuditRow.domain, AuditRow.backend, AuditRow.spans)
            .order_by(AuditRow.id.desc())
            .limit(SCAN_CAP)
        ).all()
    return {
        "tenants": sorted({r.tenant for r in rows}),
        "domains": sorted({r.domain for r in rows}),
        "backends": sorted({r.backend for r in rows}),
        "labels": sorted({s.get("label", "?") for r in rows for s in r.spans or []}),
    }


def chart_data(store: AuditStore, hours: int, buckets: int = 24, now: datetime | None = None) -> dict[str, Any]:
    """Requests, spans per label and leaks per time bucket, and overhead percentiles, over the last `hours`."""
    end = now or datetime.now(UTC)
    start = end - timedelta(hours=hours)
    width = (end - start) / buckets
    since = start.replace(tzinfo=None) if store.engine.dialect.name == "sqlite" else start  # SQLite: naive UTC
    with Session(store.engine) as session:
        rows = session.execute(
            select(AuditRow.created_at, AuditRow.spans, AuditRow.n_leaks, AuditRow.overhead_ms, AuditRow.upstream_ms)
            .where(AuditRow.created_at >= since)
            .order_by(AuditRow.id.desc())
            .limit(SCAN_CAP)
        ).all()
    requests, leaks = [0] * buckets, [0] * buckets
    by_label: dict[str, list[int]] = {}
    overhead: list[float] = []
    upstream: list[float] = []
    for row in rows:
        index = min(buckets - 1, max(0, int((_utc(row.created_at) - start) / width)))
        requests[index] += 1
        leaks[index] += row.n_leaks
        for span in row.spans or []:
            by_label.setdefault(span.get("label", "?"), [0] * buckets)[index] += 1
        overhead.append(row.overhead_ms)
        if row.upstream_ms is not None:
            upstream.append(row.upstream_ms)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "bucket_s": width.total_seconds(),
        "buckets": [(start + width * i).isoformat() for i in range(buckets)],
        "requests": requests,
        "spans_by_label": dict(sorted(by_label.items())),
        "leaks": leaks,
        "overhead_ms": percentiles(overhead),
        "upstream_ms": percentiles(upstream),
        "sampled": len(rows),
    }


def percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p90": None, "p99": None, "max": None}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    p50, p90, p99 = cuts[49], cuts[89], cuts[98]
    rounded = {"p50": round(p50, 2), "p90": round(p90, 2), "p99": round(p99, 2), "max": round(max(values), 2)}
    return {"count": len(values), **rounded}


def budgets(runtime: Runtime) -> list[dict[str, Any]]:
    """ε each known tenant spent in its current window, against its policy's limit."""
    settings = runtime.settings
    domain_of = {t.tenant: t.domain for t in settings.tenants}
    with runtime.budgets.engine.connect() as connection:
        seen = {row[0] for row in connection.execute(select(dp_budget.c.tenant).distinct())}
    result = []
    for tenant in sorted({"default", *domain_of, *seen}):
        domain = domain_of.get(tenant) or settings.default_domain
        policy = runtime.policies.get(domain) or runtime.policies[settings.default_domain]
        window = window_key(policy.dp.window)
        spent = runtime.budgets.spent(tenant).get(window, 0.0)
        result.append(
            {
                "tenant": tenant,
                "domain": policy.name,
                "window": window,
                "spent": round(spent, 6),
                "limit": policy.dp.budget,
                "remaining": round(max(0.0, policy.dp.budget - spent), 6),
                "uses_dp": policy.default_action is Action.DP_REWRITE
                or any(a is Action.DP_REWRITE for a in policy.actions.values()),
            }
        )
    return result
