"""The FastAPI app: routes, the request lifecycle, and the vendor-shaped error handler."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import httpx
from fastapi import FastAPI, Request
from httpx_sse import EventSource
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import logs
from gateway.admin import router as admin_router
from gateway.audit import AuditEntry
from gateway.budget import TenantBudget
from gateway.console import router as console_router
from gateway.errors import (
    BadRequest,
    BodyTooLarge,
    GatewayError,
    InternalError,
    NotFound,
    PolicyRefused,
    RateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    Vendor,
    error_response,
    stream_error_event,
)
from gateway.limits import RateLimiter
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.metrics import Metrics
from gateway.pipeline import Protected, protect
from gateway.ppvd import AnswerGuard, RecordInPrompt
from gateway.protocols import ADAPTERS
from gateway.protocols.base import Event
from gateway.runtime import Runtime
from gateway.secure import FACTS as BACKEND_FACTS
from gateway.settings import Settings, load_settings
from gateway.tenancy import CallContext, resolve
from gateway.upstream import Upstream, forward_request_headers, forward_response_headers

if TYPE_CHECKING:
    from rewriters.ppvd import PpvdGuard

T = TypeVar("T")
log = logging.getLogger("privgate")

REQUEST_ID = "X-Privgate-Request-Id"
OVERHEAD = "X-Privgate-Overhead-Ms"
DRY_RUN = "x-privgate-dry-run"


def vendor_of(request: Request) -> Vendor:
    if request.url.path.startswith("/v1/messages") or "anthropic-version" in request.headers:
        return Vendor.ANTHROPIC
    return Vendor.OPENAI


class RequestIdMiddleware:
    """Gives every request an id and every response the id and the gateway's overhead headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope.setdefault("state", {})
        scope["state"]["request_id"] = uuid.uuid4().hex
        scope["state"]["started"] = started
        logs.request_id.set(scope["state"]["request_id"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if REQUEST_ID.lower().encode() not in names:
                    headers.append((REQUEST_ID.encode(), scope["state"]["request_id"].encode()))
                if OVERHEAD.lower().encode() not in names:
                    elapsed = (time.perf_counter() - started) * 1000 - scope["state"].get("upstream_ms", 0.0)
                    headers.append((OVERHEAD.encode(), f"{elapsed:.2f}".encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(f"request body is larger than the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"request body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    try:
        body = json.loads(b"".join(chunks))
    except UnicodeDecodeError as exc:
        raise BadRequest("request body is not valid UTF-8 JSON") from exc
    except json.JSONDecodeError as exc:  # position only: the message must not quote the body
        raise BadRequest(f"request body is not valid JSON (line {exc.lineno}, column {exc.colno})") from exc
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def admit(request: Request, context: CallContext) -> int:
    """Apply the tenant's rate limit; returns the body-size limit that applies to it."""
    settings = request.app.state.runtime.settings
    key = context.key
    per_minute = key.requests_per_minute if key and key.requests_per_minute else settings.requests_per_minute
    if per_minute:
        wait = request.app.state.limiter.take(context.tenant, per_minute)
        if wait is not None:
            raise RateLimited(f"tenant rate limit of {per_minute} requests per minute reached", wait)
    return key.max_body_bytes if key and key.max_body_bytes else int(settings.max_body_bytes)


def retry_headers(error: GatewayError) -> dict[str, str]:
    return {"Retry-After": str(max(1, round(error.retry_after_s)))} if isinstance(error, RateLimited) else {}


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class ModelCall:
    """One request to a model endpoint, from the client's body to the client's answer."""

    def __init__(self, runtime: Runtime, request: Request, adapter: ModuleType) -> None:
        self.runtime = runtime
        self.request = request
        self.adapter = adapter
        self.vendor: Vendor = adapter.vendor
        self.started = request.scope["state"]["started"]
        self.request_id: str = request.scope["state"]["request_id"]
        self.entry: AuditEntry | None = None
        self.upstream: Upstream | None = None
        self.guard: PpvdGuard | None = None  # the domain's PPVD store, if its policy names one
        self.upstream_ms = 0.0
        self.detection_ms: float | None = None

    def headers(self, overhead_ms: float) -> dict[str, str]:
        return {REQUEST_ID: self.request_id, OVERHEAD: f"{overhead_ms:.2f}"}

    async def run(self) -> Response:
        try:
            return await self._run()
        except GatewayError as exc:
            return self._refuse(exc)
        except Exception as exc:  # a bug: answer in the vendor's shape, log the type only (a message may quote input)
            log.error("internal error: %s", type(exc).__name__)
            return self._refuse(InternalError("internal error; the request was not sent upstream"))

    def _refuse(self, exc: GatewayError) -> Response:
        if self.entry is not None:
            self.entry.outcome = "refused" if exc.status < 500 else "failed"
            self.entry.status, self.entry.error = exc.status, exc.code
            self._finish()
        log.info("refused: %s %s", exc.status, exc.code)
        return error_response(
            exc, self.vendor, {**self.headers(_ms(self.started) - self.upstream_ms), **retry_headers(exc)}
        )

    async def _run(self) -> Response:
        context = resolve(self.request.headers, self.runtime)
        self.entry = AuditEntry(
            self.request_id,
            context.tenant,
            context.domain,
            context.policy.version,
            self.request.url.path,
            backend=context.policy.backend,
        )
        body_limit = admit(self.request, context)
        self.upstream = self.runtime.upstream_for(context.domain, self.adapter.upstream)
        body = await read_json(self.request, body_limit)
        model = body.get("model")
        self.entry.model = model[:128] if isinstance(model, str) else None
        self.entry.streamed = body.get("stream") is True
        protected = await self._protect(body, context)
        if self.request.headers.get(DRY_RUN, "").lower() in ("1", "true", "yes"):
            return self._dry_run(body, context, protected)
        return await self._forward(body, protected)

    async def _protect(self, body: dict[str, Any], context: CallContext) -> Protected:
        assert self.entry is not None
        extraction = self.adapter.extract(body)
        runtime = self.runtime
        engine = runtime.engines[context.domain]
        budget = TenantBudget(runtime.budgets, context.tenant, context.policy.dp)
        self.guard = runtime.guards.get(context.domain)
        args = (body, extraction, engine, runtime.rewriter, context.policy, context.tenant, runtime.secret, budget)
        # detection is CPU-bound: a worker thread keeps the event loop free; with no detector, stay inline
        started = time.perf_counter()
        try:
            if engine.detectors or self.guard is not None:
                protected = await anyio.to_thread.run_sync(lambda: protect(*args, guard=self.guard))
            else:
                protected = protect(*args)
        except RecordInPrompt as exc:
            self.entry.ppvd_hits.extend(exc.hits)
            raise
        self.detection_ms = _ms(started)
        self.entry.spans, self.entry.leaks = protected.span_report(), protected.leaks
        self.entry.ppvd_hits.extend(protected.ppvd_hits)
        if protected.leaks and context.policy.protect:
            labels = ", ".join(sorted({leak["label"] for leak in protected.leaks}))
            raise PolicyRefused(f"a protected value ({labels}) sits in a field privgate cannot rewrite; not sent")
        return protected

    def _dry_run(self, body: dict[str, Any], context: CallContext, protected: Protected) -> Response:
        assert self.entry is not None and self.upstream is not None
        upstream = self.upstream
        self.entry.outcome, self.entry.status = "dry_run", 200
        self._finish()
        report = {
            "object": "privgate.dry_run",
            "request_id": self.request_id,
            "tenant": context.tenant,
            "domain": context.domain,
            "policy_version": context.policy.version,
            "upstream_url": upstream.url(self.request.url.path),
            "spans": protected.span_report(),
            "leaks": protected.leaks,
            "body": body,
        }
        return JSONResponse(report, headers=self.headers(_ms(self.started)))

    async def _forward(self, body: dict[str, Any], protected: Protected) -> Response:
        assert self.entry is not None and self.upstream is not None
        sent = time.perf_counter()
        response = await send_upstream(self.upstream, self.request, json.dumps(body, ensure_ascii=False).encode())
        self.entry.upstream_status = response.status_code
        self.entry.backend_facts = response.extensions.get(BACKEND_FACTS)  # filled by a stream's end
        restorer = protected.session.restorer()
        if self.guard is not None:  # memorised records in the answer become their sanitised versions
            restorer = restorer.with_filter(AnswerGuard(self.guard, self.entry.ppvd_hits))
        streamed = response.headers.get("content-type", "").startswith("text/event-stream")
        if not streamed:
            try:
                raw = await response.aread()
            except httpx.TimeoutException as exc:
                raise UpstreamTimeout("the upstream did not answer in time") from exc
            except httpx.HTTPError as exc:
                raise UpstreamUnavailable(f"the upstream connection failed ({type(exc).__name__})") from exc
            finally:
                await response.aclose()
            self.upstream_ms = _ms(sent)
            self.request.scope["state"]["upstream_ms"] = self.upstream_ms
            content = raw
            if "json" in response.headers.get("content-type", ""):
                try:
                    answer = json.loads(raw)
                except ValueError:
                    answer = None
                if answer is not None:
                    restored = await self._answer_work(self.adapter.restore_json, answer, restorer)
                    content = json.dumps(restored, ensure_ascii=False).encode()
            overhead = _ms(self.started) - self.upstream_ms
            self.entry.outcome, self.entry.status = "forwarded", response.status_code
            self.entry.upstream_ms = self.upstream_ms
            self._finish(overhead)
            return Response(
                content,
                status_code=response.status_code,
                headers={**forward_response_headers(response.headers), **self.headers(overhead)},
                media_type=response.headers.get("content-type"),
            )
        overhead_before = (sent - self.started) * 1000
        self.entry.outcome, self.entry.status = "forwarded", response.status_code
        return StreamingResponse(
            self._relay(response, self.adapter.StreamTap(restorer), sent, overhead_before),
            status_code=response.status_code,
            headers={**forward_response_headers(response.headers), **self.headers(overhead_before)},
            media_type="text/event-stream",
        )

    async def _relay(self, response: httpx.Response, tap: Any, sent: float, overhead_ms: float) -> AsyncIterator[bytes]:
        """Relay SSE events, restoring surrogates; a broken upstream stream ends in an error event."""
        assert self.entry is not None
        waiting = 0.0
        try:
            events = EventSource(response).aiter_sse()
            while True:
                before = time.perf_counter()
                try:
                    sse = await anext(events)
                except StopAsyncIteration:
                    break
                finally:
                    waiting += time.perf_counter() - before
                data: Any
                try:
                    data = json.loads(sse.data)
                except ValueError:
                    data = None
                name = sse.event if sse.event and sse.event != "message" else None
                for item in await self._answer_work(tap.feed, Event(name, data, sse.data)):
                    yield item.encode()
            for item in await self._answer_work(tap.flush):
                yield item.encode()
            if not tap.finished:
                raise UpstreamUnavailable("the upstream stream ended before its final event")
        except Exception as exc:  # whatever broke, the client gets an error event, never a hang or a trace
            error = (
                exc
                if isinstance(exc, GatewayError)
                else UpstreamTimeout("the upstream stream timed out")
                if isinstance(exc, httpx.TimeoutException)
                else UpstreamUnavailable(f"the upstream stream broke ({type(exc).__name__})")
                if isinstance(exc, httpx.HTTPError)
                else InternalError(f"the stream failed inside privgate ({type(exc).__name__})")
            )
            self.entry.outcome, self.entry.error = "failed", error.code
            log.warning("stream ended with %s", error.code)
            yield stream_error_event(error, self.vendor)
        finally:
            await response.aclose()
            self.upstream_ms = waiting * 1000
            self.entry.upstream_ms = _ms(sent)
            self._finish(overhead_ms + (_ms(sent) - self.upstream_ms))

    async def _answer_work(self, work: Callable[..., T], *args: Any) -> T:
        """Restoring an answer is cheap and stays inline; PPVD embeds its sentences, so then a worker thread."""
        return await anyio.to_thread.run_sync(work, *args) if self.guard is not None else work(*args)

    def _finish(self, overhead_ms: float | None = None) -> None:
        assert self.entry is not None
        self.entry.overhead_ms = overhead_ms if overhead_ms is not None else _ms(self.started) - self.upstream_ms
        self.runtime.audit.submit(self.entry)
        self.request.app.state.metrics.observe(self.entry, self.detection_ms)


async def send_upstream(upstream: Upstream, request: Request, content: bytes | None) -> httpx.Response:
    headers = forward_request_headers(request.headers)
    if content is not None:
        headers["content-type"] = "application/json"
    outgoing = upstream.client.build_request(
        request.method,
        upstream.url(request.url.path),
        headers=headers,
        content=content,
        params=request.query_params,
    )
    try:
        return await upstream.client.send(outgoing, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout("the upstream did not answer in time") from exc
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable(f"cannot reach the upstream ({type(exc).__name__})") from exc


async def relay_unchanged(upstream: Upstream, request: Request, content: bytes | None) -> Response:
    """Pass-through for endpoints with nothing to rewrite (model lists, allowed other paths)."""
    response = await send_upstream(upstream, request, content)

    async def body() -> AsyncIterator[bytes]:
        try:
            async for chunk in response.aiter_bytes():
                yield chunk
        finally:
            await response.aclose()

    return StreamingResponse(
        body(),
        status_code=response.status_code,
        headers=forward_response_headers(response.headers),
        media_type=response.headers.get("content-type"),
    )


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    runtime: Runtime | None = None,
) -> FastAPI:
    """The gateway app. Models, policies and stores load in the lifespan, never at import."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        built = runtime or Runtime.build(settings or Settings(), transport)
        app.state.runtime = built
        app.state.metrics = Metrics()
        app.state.limiter = RateLimiter()
        try:
            yield
        finally:
            await built.aclose()

    app = FastAPI(title="privgate", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(RequestIdMiddleware)

    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        return error_response(exc, vendor_of(request), retry_headers(exc))

    app.include_router(admin_router)
    app.include_router(console_router)  # before the catch-all vendor route below

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        return Response(request.app.state.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    def model_route(path: str) -> Callable[[Request], Any]:
        adapter = ADAPTERS[path]

        async def handler(request: Request) -> Response:
            return await ModelCall(request.app.state.runtime, request, adapter).run()

        return handler

    for path in ADAPTERS:
        app.add_api_route(path, model_route(path), methods=["POST"], include_in_schema=False)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Alive: the process answers."""
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        """Ready: policies and detectors loaded (in the lifespan), upstreams set, the audit store reachable."""
        runtime: Runtime = request.app.state.runtime
        try:
            await anyio.to_thread.run_sync(runtime.audit.ping)
        except Exception as exc:
            return JSONResponse({"status": "unavailable", "audit_store": type(exc).__name__}, status_code=503)
        upstreams = {name: "echo" if u.is_echo else "configured" for name, u in runtime.upstreams.items()}
        return JSONResponse({"status": "ready", "domains": sorted(runtime.policies), "upstreams": upstreams})

    @app.get("/v1/models", include_in_schema=False)
    @app.get("/v1/models/{model_id:path}", include_in_schema=False)
    async def models(request: Request) -> Response:
        upstream = request.app.state.runtime.upstreams[vendor_of(request).value]
        return await relay_unchanged(upstream, request, None)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    async def other(request: Request, path: str) -> Response:
        """Other vendor paths go through unchanged only where the policy allows pass-through."""
        runtime: Runtime = request.app.state.runtime
        context = resolve(request.headers, runtime)
        if not (path.startswith("v1/") and context.policy.passthrough):
            raise NotFound(f"privgate does not serve {request.method} /{path}")
        limit = admit(request, context)
        content = await request.body()
        if len(content) > limit:
            raise BodyTooLarge(f"request body is larger than the limit of {limit} bytes")
        return await relay_unchanged(runtime.upstreams[vendor_of(request).value], request, content or None)

    return app


def app_from_environment() -> FastAPI:
    """The app of one worker process (`privgate serve --workers N`): settings from the environment."""
    settings = load_settings(os.environ.get("PRIVGATE_CONFIG_FILE") or None)
    logs.configure_logging(settings.log_level, settings.log_format)
    return create_app(settings)
