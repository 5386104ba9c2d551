"""Built-in "echo model": a local upstream that answers with the text it received.

privgate falls back to it when no cloud is configured, so a newcomer sees exactly what
the cloud would have received (i.e. the pseudonymised prompt); the tests also use it as
the fake LLM server.  Every reply is shaped like the vendor's real wire format so the
official ``openai`` and ``anthropic`` SDKs parse it, both plain and streamed (SSE).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import struct
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

CHUNK_CHARS = 3  # small on purpose: any multi-character value gets split across chunks
EMBED_DIMS = 8
MODEL_CREATED = 1_700_000_000  # fixed, so /v1/models is stable


class _BadRequest(Exception):
    """Raised for malformed requests; rendered in the vendor's error shape."""


def _uid(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def _words(*texts: str) -> int:
    """Token counts are word counts: cheap, deterministic and good enough for a demo."""
    return sum(len(t.split()) for t in texts)


def _pieces(text: str) -> list[str]:
    return [text[i : i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)]


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _sse(data: Any, event: str | None = None) -> str:
    """One server-sent event; Responses and Anthropic name events, Chat does not."""
    payload = data if isinstance(data, str) else _dumps(data)
    return (f"event: {event}\n" if event else "") + f"data: {payload}\n\n"


def _stream(events: list[str]) -> StreamingResponse:
    async def gen() -> AsyncIterator[str]:
        for event in events:
            yield event

    return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _json_body(request: Request, *required: str) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError) as exc:
        raise _BadRequest(f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("The request body must be a JSON object.")
    for field in required:
        if body.get(field) is None:
            raise _BadRequest(f"Missing required parameter: '{field}'.")
    return body


def _parts_text(content: Any, kinds: tuple[str, ...] = ("text",)) -> str:
    """Text of a string or a list of content parts (``{"type": kind, "text": ...}``)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in kinds)
    return ""


def _first_tool_name(tools: Any, key: str | None = None) -> str | None:
    """Name of the first tool (``tools[i][key]["name"]`` for Chat, ``tools[i]["name"]`` else)."""
    for tool in tools or []:
        spec = tool.get(key) if key and isinstance(tool, dict) else tool
        name = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str):
            return name
    return None


# ---------------------------------------------------------------- OpenAI Chat Completions
async def _chat(request: Request) -> Any:
    body = await _json_body(request, "model", "messages")
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    last = next((m for m in reversed(messages) if m.get("role") in ("user", "tool")), {})
    text = _parts_text(last.get("content"))
    tool = _first_tool_name(body.get("tools"), "function")
    if not messages or messages[-1].get("role") != "user":
        tool = None  # after a tool result, answer in text so agent loops terminate
    out = _dumps({"text": text}) if tool else text
    n = body.get("n") or 1
    if not isinstance(n, int) or n < 1:
        raise _BadRequest("'n' must be a positive integer.")
    prompt = _words(*(_parts_text(m.get("content")) for m in messages))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": _words(text),
        "total_tokens": prompt + _words(text),
    }
    finish = "tool_calls" if tool else "stop"
    calls = [{"id": _uid("call_"), "type": "function", "function": {"name": tool, "arguments": out}} for _ in range(n)]
    base = {"id": _uid("chatcmpl-"), "created": int(time.time()), "model": body["model"]}

    if not body.get("stream"):
        message: list[dict[str, Any]] = (
            [{"role": "assistant", "content": None, "refusal": None, "tool_calls": [call]} for call in calls]
            if tool
            else [{"role": "assistant", "content": out, "refusal": None}] * n
        )
        choices = [{"index": i, "message": message[i], "finish_reason": finish, "logprobs": None} for i in range(n)]
        return {**base, "object": "chat.completion", "choices": choices, "usage": usage}

    with_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(i: int, delta: dict[str, Any], reason: str | None = None) -> str:
        choice = {"index": i, "delta": delta, "finish_reason": reason, "logprobs": None}
        extra = {"usage": None} if with_usage else {}
        return _sse({**base, "object": "chat.completion.chunk", "choices": [choice], **extra})

    def delta(i: int, piece: str | None) -> dict[str, Any]:
        """The first delta (piece None) opens the message or the call; the rest carry 3-char pieces."""
        if not tool:
            return {"role": "assistant", "content": ""} if piece is None else {"content": piece}
        if piece is None:
            call = {"index": 0, **calls[i], "function": {"name": tool, "arguments": ""}}
            return {"role": "assistant", "content": None, "tool_calls": [call]}
        return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}

    events = [chunk(i, delta(i, None)) for i in range(n)]
    events += [chunk(i, delta(i, p)) for p in _pieces(out) for i in range(n)]  # choices interleave
    events += [chunk(i, {}, finish) for i in range(n)]
    if with_usage:
        events.append(_sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage}))
    events.append(_sse("[DONE]"))
    return _stream(events)


# ---------------------------------------------------------------- OpenAI Responses
def _responses_input(body: dict[str, Any]) -> tuple[str, bool, int]:
    """(echo text, whether the last turn is a user message, prompt word count)."""
    items, instructions = body["input"], body.get("instructions")
    seen = [instructions if isinstance(instructions, str) else ""]
    if isinstance(items, str):
        return items, True, _words(*seen, items)
    text, from_user = "", False
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output":
            text, from_user = _parts_text(item.get("output"), ("input_text", "output_text")), False
            seen.append(text)
        elif item.get("type", "message") == "message":
            seen.append(_parts_text(item.get("content"), ("input_text", "output_text", "text")))
            if item.get("role") == "user":
                text, from_user = seen[-1], True
    return text, from_user, _words(*seen)


async def _responses(request: Request) -> Any:
    body = await _json_body(request, "model", "input")
    text, from_user, prompt = _responses_input(body)
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type") == "function"]
    tool = _first_tool_name(tools) if from_user else None
    out = _dumps({"text": text}) if tool else text
    item_id, seq = _uid("fc_" if tool else "msg_"), itertools.count()
    part = {"type": "output_text", "text": out, "annotations": [], "logprobs": []}
    item: dict[str, Any] = {"id": item_id, "status": "in_progress"}
    if tool:
        item |= {"type": "function_call", "call_id": _uid("call_"), "name": tool, "arguments": ""}
        final_item = {**item, "arguments": out, "status": "completed"}
    else:
        item |= {"type": "message", "role": "assistant", "content": []}
        final_item = {**item, "content": [part], "status": "completed"}
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": _words(text),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + _words(text),
    }
    now = int(time.time())
    response = {
        **{"id": _uid("resp_"), "object": "response", "created_at": now, "status": "in_progress"},
        **{"model": body["model"], "output": [], "usage": None, "error": None, "incomplete_details": None},
        "instructions": body.get("instructions"),
        "metadata": body.get("metadata") or {},
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
    }
    done = {**response, "status": "completed", "completed_at": now, "output": [final_item], "usage": usage}
    if not body.get("stream"):
        return done

    def ev(kind: str, **data: Any) -> str:
        return _sse({"type": kind, "sequence_number": next(seq), **data}, kind)

    at: dict[str, Any] = {"item_id": item_id, "output_index": 0}
    events = [ev("response.created", response=response), ev("response.in_progress", response=response)]
    events.append(ev("response.output_item.added", output_index=0, item=item))
    if tool:
        events += [ev("response.function_call_arguments.delta", **at, delta=p) for p in _pieces(out)]
        events.append(ev("response.function_call_arguments.done", **at, name=tool, arguments=out))
    else:
        at["content_index"] = 0
        events.append(ev("response.content_part.added", **at, part={**part, "text": ""}))
        events += [ev("response.output_text.delta", **at, delta=p, logprobs=[]) for p in _pieces(out)]
        events.append(ev("response.output_text.done", **at, text=out, logprobs=[]))
        events.append(ev("response.content_part.done", **at, part=part))
    events.append(ev("response.output_item.done", output_index=0, item=final_item))
    events.append(ev("response.completed", response=done))
    return _stream(events)


# ---------------------------------------------------------------- Anthropic Messages
def _anthropic_text(content: Any) -> tuple[str, bool]:
    """(text, holds tool results): tool_result text wins over plain text blocks."""
    if not isinstance(content, list):
        return _parts_text(content), False
    results = [b for b in content if isinstance(b, dict) and b.get("type") == "tool_result"]
    if results:
        return "\n".join(_parts_text(b.get("content")) for b in results), True
    return _parts_text(content), False


async def _messages(request: Request) -> Any:
    body = await _json_body(request, "model", "messages")
    messages = [m for m in body["messages"] if isinstance(m, dict)]
    last = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    text, has_result = _anthropic_text(last.get("content"))
    custom = [t for t in body.get("tools") or [] if isinstance(t, dict) and t.get("type", "custom") == "custom"]
    tool = None if has_result else _first_tool_name(custom)  # server tools (web_search...) are not ours
    system, contents = _parts_text(body.get("system")), [m.get("content") for m in messages]
    prompt = _words(system, *(_anthropic_text(c)[0] for c in contents))
    usage = {"input_tokens": prompt, "output_tokens": _words(text)}
    block: dict[str, Any] = {"type": "text", "text": text}
    if tool:
        block = {"type": "tool_use", "id": _uid("toolu_"), "name": tool, "input": {"text": text}}
    message = {
        "id": _uid("msg_"),
        "type": "message",
        "role": "assistant",
        "model": body["model"],
        "content": [block],
        "stop_reason": "tool_use" if tool else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return message

    def ev(kind: str, **data: Any) -> str:
        return _sse({"type": kind, **data}, kind)

    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events = [ev("message_start", message=start)]
    if tool:
        events.append(ev("content_block_start", index=0, content_block={**block, "input": {}}))
        events.append(ev("ping"))
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in _pieces(_dumps(block["input"]))]
    else:
        events.append(ev("content_block_start", index=0, content_block={"type": "text", "text": ""}))
        events.append(ev("ping"))
        deltas = [{"type": "text_delta", "text": p} for p in _pieces(text)]
    events += [ev("content_block_delta", index=0, delta=d) for d in deltas]
    events.append(ev("content_block_stop", index=0))
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(ev("message_delta", delta=stop, usage={"output_tokens": usage["output_tokens"]}))
    events.append(ev("message_stop"))
    return _stream(events)


# ---------------------------------------------------------------- embeddings and models
def _embedding(text: str) -> list[float]:
    """Deterministic 8-dim vector from a hash; values are exact in float32 (base64 round-trips)."""
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [(b - 128) / 128 for b in digest[:EMBED_DIMS]]


async def _embeddings(request: Request) -> dict[str, Any]:
    body = await _json_body(request, "model", "input")
    raw = body["input"]
    if not isinstance(raw, str | list):
        raise _BadRequest("'input' must be a string or an array.")
    inputs = [raw] if isinstance(raw, str) or (raw and isinstance(raw[0], int)) else list(raw)
    texts = [t if isinstance(t, str) else "" for t in inputs]  # token lists carry no text to echo
    as_b64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vec: Any = _embedding(text)
        if as_b64:
            vec = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": vec})
    tokens = _words(*texts)
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": body["model"], "usage": usage}


async def _models(request: Request) -> dict[str, Any]:
    if "anthropic-version" in request.headers:
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(MODEL_CREATED))
        info = {
            "type": "model",
            "id": "echo",
            "display_name": "Echo",
            "created_at": created,
            "lifecycle": "active",
        }
        return {"data": [info], "has_more": False, "first_id": "echo", "last_id": "echo"}
    model = {"id": "echo", "object": "model", "created": MODEL_CREATED, "owned_by": "privgate"}
    return {"object": "list", "data": [model]}


def create_echo_app() -> FastAPI:
    """The echo upstream as an ASGI app (routes mirror api.openai.com / api.anthropic.com)."""
    app = FastAPI(title="privgate echo model", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(_BadRequest)
    async def bad_request(request: Request, exc: _BadRequest) -> JSONResponse:
        if request.url.path.endswith("/messages"):
            body: dict[str, Any] = {
                "type": "error",
                "error": {"type": "invalid_request_error", "message": str(exc)},
            }
        else:
            body = {"error": {"message": str(exc), "type": "invalid_request_error", "param": None, "code": None}}
        return JSONResponse(body, status_code=400)

    app.add_api_route("/v1/chat/completions", _chat, methods=["POST"], response_model=None)
    app.add_api_route("/v1/responses", _responses, methods=["POST"], response_model=None)
    app.add_api_route("/v1/messages", _messages, methods=["POST"], response_model=None)
    app.add_api_route("/v1/embeddings", _embeddings, methods=["POST"], response_model=None)
    app.add_api_route("/v1/models", _models, methods=["GET"], response_model=None)
    return app
