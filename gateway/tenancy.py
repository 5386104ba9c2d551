"""Who is calling, and under which domain's policy."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.datastructures import Headers

from gateway.errors import Unauthorized, UnknownDomain
from gateway.runtime import Runtime
from gateway.settings import TenantKey
from policies import Policy

DOMAIN_HEADER = "x-privgate-domain"


@dataclass(frozen=True)
class CallContext:
    tenant: str
    domain: str
    policy: Policy
    key: TenantKey | None  # the tenant's settings (limits), when the caller's key maps to one


def client_api_key(headers: Headers) -> str | None:
    """A gateway key (X-Privgate-Key) if given, else the vendor key the client sends anyway."""
    if headers.get("x-privgate-key"):
        return headers["x-privgate-key"]
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return headers.get("x-api-key") or None


def resolve(headers: Headers, runtime: Runtime) -> CallContext:
    """Tenant from the caller's key (by its hash); domain from header, tenant, or default."""
    key = client_api_key(headers)
    mapped = runtime.tenants.get(TenantKey.hash_key(key)) if key else None
    if mapped is None and runtime.settings.require_key:
        raise Unauthorized("this gateway requires a known API key (X-Privgate-Key or the vendor key)")
    tenant = mapped.tenant if mapped else "default"
    requested = headers.get(DOMAIN_HEADER)
    if mapped and mapped.domain and (mapped.lock_domain or not requested):
        domain = mapped.domain
    else:
        domain = (requested or runtime.settings.default_domain).strip().lower()
    policy = runtime.policies.get(domain)
    if policy is None:
        raise UnknownDomain(f"unknown domain {domain!r}; known domains: {', '.join(sorted(runtime.policies))}")
    return CallContext(tenant, domain, policy, mapped)
