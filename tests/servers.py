"""Real servers on loopback for the tests: uvicorn in a thread, and a recording fake LLM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.echo import create_echo_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LoopbackServer:
    """An ASGI app served by uvicorn on 127.0.0.1 in a background thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("loopback server failed to start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class FakeLLM:
    """The echo model behind a recorder, plus models that misbehave on purpose.

    `records` holds every request the 'cloud' received: the tests assert no raw value is in it.
    Models: `fake-unknown` → 404, `fake-error` → 500, `fake-slow` → answers after 3 s,
    `fake-broken` → a stream cut mid-way (connection dropped), `fake-truncated` → a stream that
    ends cleanly but before its final event.
    """

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self._echo = create_echo_app()

    def received(self) -> str:
        return "\n".join(json.dumps(r, ensure_ascii=False) for r in self.records)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._echo(scope, receive, send)
            return
        raw = b""
        more = True
        while more:
            message = await receive()
            raw += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.records.append({"path": scope["path"], "method": scope["method"], "headers": headers, "body": body})
        model = body.get("model") if isinstance(body, dict) else None

        if model == "fake-unknown":
            await _json(
                send,
                404,
                {
                    "error": {
                        "message": "The model `fake-unknown` does not exist",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "model_not_found",
                    }
                },
            )
            return
        if model == "fake-error":
            await _json(
                send,
                500,
                {
                    "error": {
                        "message": "upstream exploded",
                        "type": "server_error",
                        "param": None,
                        "code": None,
                    }
                },
            )
            return
        if model == "fake-slow":
            await asyncio.sleep(3)

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": raw, "more_body": False}

        if model in ("fake-broken", "fake-truncated"):
            await self._cut_stream(scope, replay, send, broken=model == "fake-broken")
            return
        await self._echo(scope, replay, send)

    async def _cut_stream(self, scope: Scope, receive: Receive, send: Send, *, broken: bool) -> None:
        """Forward the first few events of a real echo stream, then drop or end it."""
        sent_events = 0

        async def limited(message: Message) -> None:
            nonlocal sent_events
            if message["type"] == "http.response.body" and sent_events >= 4:
                if broken:
                    raise ConnectionResetError("fake upstream dropped the stream")
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                raise _Stop
            if message["type"] == "http.response.body":
                sent_events += 1
            await send(message)

        with contextlib.suppress(_Stop):
            await self._echo(scope, receive, limited)


class _Stop(Exception):
    pass


async def _json(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
