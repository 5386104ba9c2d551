"""Admin endpoints (audit queries, loaded policies) behind a separate admin token, stored hashed."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import anyio
from fastapi import APIRouter, Depends, Request

from gateway.audit import AuditRow
from gateway.errors import NotFound, Unauthorized
from gateway.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def admin_hash(request: Request, off: str = "admin endpoints are off") -> str:
    """The admin token's SHA-256; a 404 (saying `off`) while no admin token is configured."""
    expected = runtime_of(request).settings.admin_token_sha256
    if expected is None:
        raise NotFound(f"{off} (set PRIVGATE_ADMIN_TOKEN_SHA256)")
    return expected


def token_matches(request: Request, token: str) -> bool:
    given = hashlib.sha256(token.encode()).hexdigest()
    return bool(token) and hmac.compare_digest(given, admin_hash(request))


def require_admin(request: Request) -> None:
    admin_hash(request)
    auth = request.headers.get("authorization", "")
    token = request.headers.get("x-privgate-admin-token") or (
        auth[7:].strip() if auth.lower().startswith("bearer ") else ""
    )
    if not token_matches(request, token):
        raise Unauthorized("a valid admin token is required")


def row_dict(row: AuditRow) -> dict[str, Any]:
    record = {c.name: getattr(row, c.name) for c in AuditRow.__table__.columns}
    record["created_at"] = row.created_at.isoformat()
    return record


router = APIRouter(prefix="/admin", dependencies=[Depends(require_admin)], include_in_schema=False)


@router.get("/audit")
async def audit(request: Request, limit: int = 50, leaks: bool = False, tenant: str | None = None) -> dict[str, Any]:
    """Recent audit records, newest first."""
    store = runtime_of(request).audit
    rows = await anyio.to_thread.run_sync(
        lambda: store.recent(min(max(limit, 1), 1000), leaks_only=leaks, tenant=tenant)
    )
    return {"object": "list", "data": [row_dict(r) for r in rows]}


@router.get("/budget/{tenant}")
async def budget(request: Request, tenant: str) -> dict[str, Any]:
    """ε a tenant spent in each window on record."""
    ledger = runtime_of(request).budgets
    spent = await anyio.to_thread.run_sync(ledger.spent, tenant)
    return {"object": "privgate.budget", "tenant": tenant, "spent": spent}


@router.get("/policies")
async def policies(request: Request) -> dict[str, Any]:
    loaded = runtime_of(request).policies
    return {
        "object": "list",
        "data": [
            {
                "domain": n,
                "version": p.version,
                "protect": p.protect,
                "passthrough": p.passthrough,
                "default_action": p.default_action.value,
                "actions": {k: v.value for k, v in p.actions.items()},
            }
            for n, p in sorted(loaded.items())
        ],
    }
