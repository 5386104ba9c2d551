"""Console sessions: a signed, expiring, HttpOnly cookie that stands for the admin token.

The cookie holds a random session id, its expiry and an HMAC of both under a key derived from the
gateway secret and the admin token's hash: any replica sharing the secret accepts it, and rotating
the admin token ends every session. Logout revokes the id in this process and clears the cookie.
"""

from __future__ import annotations

import hmac
import secrets
import time
from urllib.parse import urlsplit

from fastapi import Request
from starlette.responses import Response

from gateway.admin import admin_hash, require_admin, runtime_of
from gateway.errors import GatewayError, Unauthorized

COOKIE = "privgate_console"
LIFETIME_S = 8 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Forbidden(GatewayError):
    """A cookie-authenticated write that did not come from the console's own origin."""

    status, openai_type, anthropic_type = 403, "permission_error", "permission_error"
    code = "privgate_console_forbidden"


def console_admin_hash(request: Request) -> str:
    return admin_hash(request, "the console is off")


def _key(request: Request) -> bytes:
    token_hash = console_admin_hash(request).encode()
    return hmac.new(runtime_of(request).secret, b"privgate-console\x00" + token_hash, "sha256").digest()


def _mac(request: Request, payload: str) -> str:
    return hmac.new(_key(request), payload.encode(), "sha256").hexdigest()


def _revoked(request: Request) -> dict[str, float]:
    """Logged-out session ids of this process, until they would have expired anyway."""
    state = request.app.state
    if not hasattr(state, "console_revoked"):
        state.console_revoked = {}
    revoked: dict[str, float] = state.console_revoked
    now = time.time()
    for sid in [s for s, until in revoked.items() if until < now]:
        del revoked[sid]
    return revoked


def _parse(request: Request) -> tuple[str, float] | None:
    """(session id, expiry) of a valid cookie, else None."""
    value = request.cookies.get(COOKIE, "")
    parts = value.split(".")
    if len(parts) != 3 or not parts[1].isdigit():
        return None
    sid, expires, mac = parts
    if not hmac.compare_digest(mac, _mac(request, f"{sid}.{expires}")):
        return None
    if int(expires) < time.time() or sid in _revoked(request):
        return None
    return sid, float(expires)


def has_session(request: Request) -> bool:
    return _parse(request) is not None


def start_session(request: Request, response: Response) -> None:
    sid, expires = secrets.token_urlsafe(18), int(time.time()) + LIFETIME_S
    response.set_cookie(
        COOKIE,
        f"{sid}.{expires}.{_mac(request, f'{sid}.{expires}')}",
        max_age=LIFETIME_S,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def end_session(request: Request, response: Response) -> None:
    parsed = _parse(request)
    if parsed is not None:
        _revoked(request)[parsed[0]] = parsed[1]
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")


def same_origin(request: Request) -> bool:
    """A write with the cookie must come from our own page (SameSite=Strict already; this is the second lock)."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    return urlsplit(origin).netloc == request.headers.get("host", "")


def require_console(request: Request) -> None:
    """The admin token in a header (scripts), or a console session cookie (the page)."""
    if request.headers.get("authorization") or request.headers.get("x-privgate-admin-token"):
        require_admin(request)
        return
    console_admin_hash(request)
    if not has_session(request):
        raise Unauthorized("log in to the console, or send the admin token")
    if request.method not in SAFE_METHODS and not same_origin(request):
        raise Forbidden("cross-origin request refused")
