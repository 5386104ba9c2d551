"""The page at `/console`: a login form until a session exists, then the single-page console.

The token travels only in the login form's POST body; it is never in a URL, a cookie or a log.
Pages and assets carry a strict Content-Security-Policy: only this origin's own files run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from gateway.admin import token_matches
from gateway.console.session import console_admin_hash, end_session, has_session, same_origin, start_session
from gateway.errors import NotFound, RateLimited

log = logging.getLogger("privgate.console")

STATIC = Path(__file__).parent / "static"
ASSETS = {"console.js": "text/javascript", "console.css": "text/css", "favicon.svg": "image/svg+xml"}
LOGIN_ATTEMPTS_PER_MINUTE = 10
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" makes a form POST send `Origin: null`
    "Cache-Control": "no-store",
}

router = APIRouter(prefix="/console", include_in_schema=False)


def _page(name: str, status: int = 200, **values: str) -> HTMLResponse:
    html = (STATIC / name).read_text(encoding="utf-8")
    for key, value in values.items():
        html = html.replace("{{" + key + "}}", value)
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


@router.get("")
async def console(request: Request) -> Response:
    console_admin_hash(request)  # 404 while admin endpoints are off
    if has_session(request):
        return _page("console.html")
    return _page("login.html", message="")


@router.post("/login")
async def login(request: Request) -> Response:
    console_admin_hash(request)
    client = request.client.host if request.client else "unknown"
    bucket = f"console-login:{client}"
    wait = request.app.state.limiter.take(bucket, LOGIN_ATTEMPTS_PER_MINUTE, spend=False)
    if wait is not None:
        raise RateLimited("too many failed console logins; wait a minute", wait)
    if not same_origin(request):
        return _page("login.html", 403, message='<p class="error">Cross-origin login refused.</p>')
    raw = await request.body()
    token = parse_qs(raw[:4096].decode("utf-8", "replace")).get("token", [""])[0]
    if not token_matches(request, token):
        request.app.state.limiter.take(bucket, LOGIN_ATTEMPTS_PER_MINUTE)  # only failures use up attempts
        log.warning("console: login refused (wrong admin token) from %s", client)
        return _page("login.html", 401, message='<p class="error">That is not the admin token.</p>')
    log.info("console: login from %s", client)
    response = RedirectResponse("/console", status_code=303, headers={"Cache-Control": "no-store"})
    start_session(request, response)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    response = RedirectResponse("/console", status_code=303, headers={"Cache-Control": "no-store"})
    end_session(request, response)
    return response


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    """The page's own script, style and icon, shipped in the package (no CDN, works offline)."""
    if name not in ASSETS:
        raise NotFound("no such console asset")
    headers = {k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"}
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers={**headers, "Cache-Control": "no-cache"})
