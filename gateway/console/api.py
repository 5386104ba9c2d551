"""The console's JSON API under `/admin/api/...`: the page's only data source, usable by scripts too
(admin token in `Authorization: Bearer` or `X-Privgate-Admin-Token`, or the console's session cookie)."""

from __future__ import annotations

import json
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from gateway.admin import runtime_of
from gateway.console import charts, queries
from gateway.console.playground import chat_body, preview
from gateway.console.policy_view import describe, validate
from gateway.console.session import require_console
from gateway.errors import BadRequest, NotFound

router = APIRouter(prefix="/admin/api", dependencies=[Depends(require_console)], include_in_schema=False)


class PlaygroundIn(BaseModel):
    """Either `text` (sent as one user message) or `body` (a whole chat-completions request, as JSON text)."""

    text: str | None = Field(None, max_length=200_000)
    body: str | None = Field(None, max_length=1_000_000)
    domain: str | None = None
    tenant: str = Field("default", min_length=1, max_length=128)


class PolicyIn(BaseModel):
    text: str = Field(max_length=1_000_000)
    filename: str | None = Field(None, max_length=200)


@router.get("/overview")
async def overview(request: Request) -> dict[str, Any]:
    """What the page needs to draw its menus: domains, tenants, totals."""
    runtime = runtime_of(request)
    counts = await anyio.to_thread.run_sync(runtime.audit.counts)
    tenants = sorted({"default", *(t.tenant for t in runtime.settings.tenants)})
    return {
        "domains": sorted(runtime.policies),
        "default_domain": runtime.settings.default_domain,
        "tenants": tenants,
        "totals": counts,
    }


@router.post("/playground")
async def playground(request: Request, given: PlaygroundIn) -> dict[str, Any]:
    """What the proxy would send for this text or body (its own pipeline, dry run; see playground.py)."""
    runtime = runtime_of(request)
    if given.body:
        try:
            body = json.loads(given.body)
        except json.JSONDecodeError as exc:  # position only: never quote the input
            raise BadRequest(f"body is not valid JSON (line {exc.lineno}, column {exc.colno})") from exc
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object (a chat-completions request)")
    elif given.text:
        body = chat_body(given.text)
    else:
        raise BadRequest("give a text or a chat-completions body")
    domain = (given.domain or runtime.settings.default_domain).strip().lower()
    engine = runtime.engines.get(domain)
    if engine is not None and engine.detectors:  # detection is CPU-bound: keep the event loop free
        return await anyio.to_thread.run_sync(preview, runtime, body, domain, given.tenant)
    return preview(runtime, body, domain, given.tenant)


@router.get("/requests")
async def requests(
    request: Request,
    tenant: str | None = None,
    domain: str | None = None,
    label: str | None = None,
    backend: str | None = None,
    leaks: bool = False,
    limit: int = 50,
    before: int | None = None,
) -> dict[str, Any]:
    """Recent audit records, newest first, filtered; page with `before` = the last id seen."""
    where = queries.RequestFilter(tenant or None, domain or None, label or None, backend or None, leaks, before)
    store = runtime_of(request).audit
    rows = await anyio.to_thread.run_sync(queries.list_requests, store, where, min(max(limit, 1), 500))
    return {"object": "list", "data": rows}


@router.get("/requests/facets")
async def request_facets(request: Request) -> dict[str, list[str]]:
    return await anyio.to_thread.run_sync(queries.facets, runtime_of(request).audit)


@router.get("/requests/{request_id}")
async def request_detail(request: Request, request_id: str) -> dict[str, Any]:
    record = await anyio.to_thread.run_sync(queries.detail, runtime_of(request).audit, request_id)
    if record is None:
        raise NotFound("no audit record with this request id")
    return record


@router.get("/charts")
async def chart_data(request: Request, hours: int = 24) -> dict[str, Any]:
    """Per-bucket requests, spans per label and leaks; overhead percentiles; DP budgets."""
    runtime = runtime_of(request)
    data = await anyio.to_thread.run_sync(queries.chart_data, runtime.audit, min(max(hours, 1), 24 * 90))
    data["budgets"] = await anyio.to_thread.run_sync(queries.budgets, runtime)
    return data


@router.get("/charts/{name}.svg")
async def chart_svg(request: Request, name: str, hours: int = 24) -> Response:
    """The same data drawn as SVG on the server (no script or library in the page)."""
    data = await chart_data(request, hours)
    ticks = [b[11:16] if hours <= 48 else b[5:10] for b in data["buckets"]]
    if name == "requests":
        svg = charts.bars("Requests", ticks, {"requests": data["requests"]})
    elif name == "spans":
        svg = charts.bars("Spans per label", ticks, data["spans_by_label"])
    elif name == "leaks":
        series, colors = {"leaks": data["leaks"]}, {"leaks": charts.LEAK}
        svg = charts.bars("Leaks found by the outbound scan", ticks, series, colors, empty="no leaks in this period")
    elif name == "overhead":
        stats = {"overhead": data["overhead_ms"], "upstream": data["upstream_ms"]}
        svg = charts.percentile_bars("Gateway overhead and upstream time (percentiles)", stats)
    elif name == "budget":
        rows = [(b["tenant"], b["spent"], b["limit"]) for b in data["budgets"]]
        svg = charts.meters("DP budget spent this window (ε) per tenant", rows, " ε")
    else:
        raise NotFound("no such chart (requests, spans, leaks, overhead, budget)")
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@router.get("/policies")
async def policies(request: Request) -> dict[str, Any]:
    loaded = runtime_of(request).policies
    return {"object": "list", "data": [describe(p) for _, p in sorted(loaded.items())]}


@router.post("/policies/validate")
async def policy_validate(request: Request, given: PolicyIn) -> dict[str, Any]:
    """The same checks and messages as `privgate policy check FILE`."""
    policy_dir = runtime_of(request).settings.policy_dir
    return await anyio.to_thread.run_sync(validate, given.text, given.filename, policy_dir)


@router.get("/budget")
async def budget_all(request: Request) -> dict[str, Any]:
    return {"object": "list", "data": await anyio.to_thread.run_sync(queries.budgets, runtime_of(request))}


@router.get("/budget/{tenant}")
async def budget_tenant(request: Request, tenant: str) -> dict[str, Any]:
    runtime = runtime_of(request)
    spent = await anyio.to_thread.run_sync(runtime.budgets.spent, tenant)
    return {"object": "privgate.budget", "tenant": tenant, "spent": spent}
