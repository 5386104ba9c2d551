"""Secure backends (MPC, TEE) reached through an httpx transport, so the proxy path stays one path.

A domain whose policy says `backend: mpc` or `backend: tee` gets an `Upstream` whose client sends
nothing over the network: its transport hands the OpenAI-shaped request to the backend in-process
and wraps the answer (JSON, or server-sent events for a stream) as an `httpx.Response`. Detection,
rewriting, restoration, stream relaying, errors and audit then work exactly as for a cloud upstream.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from gateway.upstream import Upstream
from policies import Policy
from secure_infer.backend import BackendError, BackendUnsupported, SecureBackend

log = logging.getLogger("privgate.secure")

# Where each backend kind is built: `build_backend(policy_section) -> SecureBackend`, imported on first use
# so a gateway with no secure domain never loads torch or crypten.
FACTORIES = {"mpc": "secure_infer.mpc.backend:build_backend", "tee": "secure_infer.tee.backend:build_backend"}
FACTS = "privgate_backend_facts"  # httpx response extension that carries the backend's audit facts


def _error(status: int, message: str, code: str) -> httpx.Response:
    body = {"error": {"message": message, "type": "secure_backend_error", "param": None, "code": code}}
    return httpx.Response(status, json=body)


class _EventStream(httpx.AsyncByteStream):
    """chat.completion.chunk objects as SSE bytes; a backend failure mid-stream breaks the stream."""

    def __init__(self, first: dict[str, Any] | None, rest: AsyncIterator[dict[str, Any]]) -> None:
        self._first, self._rest = first, rest

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first is not None:
            yield _sse(self._first)
        try:
            async for chunk in self._rest:
                yield _sse(chunk)
        except BackendError as exc:
            # surfaces in the relay as a broken upstream stream: the client gets an error event
            raise httpx.ReadError(f"secure backend failed: {exc}") from exc
        yield b"data: [DONE]\n\n"

    async def aclose(self) -> None:
        closer = getattr(self._rest, "aclose", None)
        if closer is not None:
            await closer()


def _sse(chunk: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(chunk, ensure_ascii=False).encode() + b"\n\n"


class BackendTransport(httpx.AsyncBaseTransport):
    """Answers /v1/chat/completions, /v1/embeddings and /v1/classifications from a secure backend, started on first
    use."""

    def __init__(self, start: Callable[[], SecureBackend]) -> None:
        self._start = start
        self._backend: SecureBackend | None = None
        self._lock = asyncio.Lock()

    async def backend(self) -> SecureBackend:
        async with self._lock:  # one start, however many requests arrive while it loads
            if self._backend is None:
                self._backend = await asyncio.to_thread(self._start)
            return self._backend

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        try:
            body = json.loads(await request.aread())
        except ValueError:
            return _error(400, "the request body is not JSON", "invalid_json")
        facts: dict[str, Any] = {}
        try:
            backend = await self.backend()
            if path.endswith("/chat/completions"):
                if body.get("stream") is True:
                    chunks = backend.chat_stream(body, facts)
                    try:
                        first = await anext(chunks)  # errors before the first token are a plain error response
                    except StopAsyncIteration:
                        first = None
                    response = httpx.Response(
                        200, headers={"content-type": "text/event-stream"}, stream=_EventStream(first, chunks)
                    )
                else:
                    response = httpx.Response(200, json=await backend.chat(body, facts))
            elif path.endswith("/embeddings"):
                response = httpx.Response(200, json=await backend.embeddings(body, facts))
            elif path.endswith("/classifications"):
                classify = getattr(backend, "classify", None)
                if classify is None:
                    raise BackendUnsupported(f"the {backend.name} backend does not classify")
                response = httpx.Response(200, json=await classify(body, facts))
            else:
                return _error(404, f"the secure backend does not serve {path}", "unknown_url")
        except BackendUnsupported as exc:
            return _error(400, str(exc), "unsupported_by_secure_backend")
        except BackendError as exc:
            log.warning("secure backend failed: %s", type(exc).__name__)
            return _error(503, str(exc), "secure_backend_unavailable")
        response.extensions[FACTS] = facts  # filled in by the end of the answer, read by the audit
        return response

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()


def build_backend(policy: Policy) -> SecureBackend:
    """The backend a policy names, from its `mpc:` or `tee:` section."""
    module_name, _, function = FACTORIES[policy.backend].partition(":")
    factory = getattr(importlib.import_module(module_name), function)
    backend: SecureBackend = factory(getattr(policy, policy.backend))
    return backend


def secure_upstream(policy: Policy, start: Callable[[], SecureBackend] | None = None) -> Upstream:
    """An upstream for a secure domain; `start` replaces the policy's own backend (tests)."""
    transport = BackendTransport(start or (lambda: build_backend(policy)))
    client = httpx.AsyncClient(transport=transport, base_url=f"http://{policy.backend}.secure", timeout=None)
    return Upstream(f"http://{policy.backend}.secure/v1", client, strip_v1=True)
