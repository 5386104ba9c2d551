"""The echo model must be parseable by the official SDKs, plain and streamed."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
import uvicorn

from gateway.echo import CHUNK_CHARS, create_echo_app

NAME = "Zoë Müller-Łukasiewicz 张伟"
TEXT = f'Hello, my name is {NAME}. Say "hi"\nto me.'
TOOL = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look something up.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
    },
}
RESP_TOOL = {
    "type": "function",
    "name": "lookup",
    "parameters": TOOL["function"]["parameters"],
    "strict": False,
}
ANTH_TOOL = {"name": "lookup", "description": "Look up.", "input_schema": TOOL["function"]["parameters"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_echo_app(), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "echo server did not start"
        time.sleep(0.01)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def oai(port: int) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="test", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def anth(port: int) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key="test", max_retries=0) as client:
        yield client


def _user(text: str) -> list[dict[str, object]]:
    return [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]


# ---------------------------------------------------------------- chat completions
def test_chat_plain(oai: openai.OpenAI) -> None:
    out = oai.chat.completions.create(model="gpt-x", messages=_user(TEXT))
    assert out.model == "gpt-x"
    assert out.choices[0].message.content == TEXT
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.completion_tokens == len(TEXT.split())


def test_chat_multipart_and_n(oai: openai.OpenAI) -> None:
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": NAME}]
    out = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": parts}], n=2)
    assert [c.index for c in out.choices] == [0, 1]
    assert all(c.message.content == f"first\n{NAME}" for c in out.choices)


def test_chat_stream_n2_with_usage(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(
        model="m", messages=_user(TEXT), n=2, stream=True, stream_options={"include_usage": True}
    )
    texts, finish, usage, pieces = ["", ""], [None, None], None, 0
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                texts[choice.index] += choice.delta.content
                pieces += 1
                assert len(choice.delta.content) <= CHUNK_CHARS
            finish[choice.index] = choice.finish_reason or finish[choice.index]
    assert texts == [TEXT, TEXT]
    assert finish == ["stop", "stop"]
    assert pieces > 2
    assert usage is not None and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_chat_tool_call(oai: openai.OpenAI) -> None:
    out = oai.chat.completions.create(model="m", messages=_user(TEXT), tools=[TOOL])
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = choice.message.tool_calls[0]
    assert call.id.startswith("call_") and call.function.name == "lookup"
    assert json.loads(call.function.arguments)["text"] == TEXT


def test_chat_tool_result_is_echoed_as_text(oai: openai.OpenAI) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    messages = [
        *_user("q"),
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": NAME},
    ]
    out = oai.chat.completions.create(model="m", messages=messages, tools=[TOOL])
    assert out.choices[0].finish_reason == "stop"
    assert out.choices[0].message.content == NAME


def test_chat_tool_call_streamed(oai: openai.OpenAI) -> None:
    stream = oai.chat.completions.create(model="m", messages=_user(TEXT), tools=[TOOL], stream=True)
    args, name, call_id, finish = "", None, None, None
    for chunk in stream:
        for choice in chunk.choices:
            for tc in choice.delta.tool_calls or []:
                call_id = tc.id or call_id
                name = (tc.function.name if tc.function else None) or name
                args += (tc.function.arguments if tc.function else None) or ""
            finish = choice.finish_reason or finish
    assert name == "lookup" and call_id is not None and finish == "tool_calls"
    assert json.loads(args)["text"] == TEXT


def test_chat_stream_helper(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(model="m", messages=_user(TEXT)) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == TEXT


# ---------------------------------------------------------------- responses
def test_responses_plain(oai: openai.OpenAI) -> None:
    out = oai.responses.create(model="gpt-r", input=TEXT, instructions="Be brief.")
    assert out.status == "completed" and out.model == "gpt-r"
    assert out.output_text == TEXT
    assert out.usage is not None and out.usage.output_tokens == len(TEXT.split())


def test_responses_item_list(oai: openai.OpenAI) -> None:
    items = [
        {"role": "user", "content": [{"type": "input_text", "text": "old"}]},
        {"role": "assistant", "content": "reply"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": NAME}]},
    ]
    assert oai.responses.create(model="m", input=items).output_text == NAME


def test_responses_streamed(oai: openai.OpenAI) -> None:
    deltas, seqs, done_text = [], [], None
    for event in oai.responses.create(model="m", input=TEXT, stream=True):
        seqs.append(event.sequence_number)
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.output_text.done":
            done_text = event.text
    assert "".join(deltas) == TEXT == done_text
    assert max(len(d) for d in deltas) == CHUNK_CHARS
    assert seqs == list(range(len(seqs)))


def test_responses_stream_helper(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="m", input=TEXT) as stream:
        final = stream.get_final_response()
    assert final.output_text == TEXT


def test_responses_tool_call(oai: openai.OpenAI) -> None:
    out = oai.responses.create(model="m", input=TEXT, tools=[RESP_TOOL])
    call = out.output[0]
    assert call.type == "function_call" and call.name == "lookup"
    assert json.loads(call.arguments)["text"] == TEXT
    followup = [
        {"role": "user", "content": TEXT},
        {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": NAME},
    ]
    assert oai.responses.create(model="m", input=followup, tools=[RESP_TOOL]).output_text == NAME


def test_responses_tool_call_streamed(oai: openai.OpenAI) -> None:
    with oai.responses.stream(model="m", input=TEXT, tools=[RESP_TOOL]) as stream:
        args = "".join(e.delta for e in stream if e.type == "response.function_call_arguments.delta")
        final = stream.get_final_response()
    assert json.loads(args)["text"] == TEXT
    assert final.output[0].type == "function_call" and final.output[0].arguments == args


# ---------------------------------------------------------------- anthropic messages
def test_messages_plain(anth: anthropic.Anthropic) -> None:
    out = anth.messages.create(
        model="claude-x", max_tokens=64, system="Be brief.", messages=[{"role": "user", "content": TEXT}]
    )
    assert out.model == "claude-x" and out.stop_reason == "end_turn"
    assert out.content[0].type == "text" and out.content[0].text == TEXT
    assert out.usage.output_tokens == len(TEXT.split())


def test_messages_blocks(anth: anthropic.Anthropic) -> None:
    content = [{"type": "text", "text": "a"}, {"type": "text", "text": NAME}]
    out = anth.messages.create(
        model="m",
        max_tokens=64,
        system=[{"type": "text", "text": "sys"}],
        messages=[{"role": "user", "content": content}],
    )
    assert out.content[0].text == f"a\n{NAME}"


def test_messages_stream(anth: anthropic.Anthropic) -> None:
    with anth.messages.stream(model="m", max_tokens=64, messages=[{"role": "user", "content": TEXT}]) as stream:
        deltas = list(stream.text_stream)
        final = stream.get_final_message()
    assert "".join(deltas) == TEXT and len(deltas) > 2
    assert final.content[0].text == TEXT and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(TEXT.split())


def test_messages_tool_use(anth: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": TEXT}]
    out = anth.messages.create(model="m", max_tokens=64, messages=messages, tools=[ANTH_TOOL])
    block = out.content[0]
    assert out.stop_reason == "tool_use" and block.type == "tool_use"
    assert block.id.startswith("toolu_") and block.name == "lookup" and block.input == {"text": TEXT}
    followup = [
        *messages,
        {"role": "assistant", "content": [block.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block.id, "content": NAME}]},
    ]
    answer = anth.messages.create(model="m", max_tokens=64, messages=followup, tools=[ANTH_TOOL])
    assert answer.stop_reason == "end_turn" and answer.content[0].text == NAME


def test_messages_tool_use_streamed(anth: anthropic.Anthropic) -> None:
    messages = [{"role": "user", "content": TEXT}]
    with anth.messages.stream(model="m", max_tokens=64, messages=messages, tools=[ANTH_TOOL]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use"
    assert final.content[0].type == "tool_use" and final.content[0].input == {"text": TEXT}


# ---------------------------------------------------------------- embeddings, models, errors
def test_embeddings(oai: openai.OpenAI) -> None:
    out = oai.embeddings.create(model="e", input=[NAME, "other", NAME])
    vecs = [d.embedding for d in out.data]
    assert [len(v) for v in vecs] == [8, 8, 8]
    assert vecs[0] == vecs[2] != vecs[1]
    floats = oai.embeddings.create(model="e", input=NAME, encoding_format="float")
    assert floats.data[0].embedding == vecs[0]  # base64 (the SDK default) and float agree
    assert out.usage.prompt_tokens == len(NAME.split()) * 2 + 1


def test_models(oai: openai.OpenAI, anth: anthropic.Anthropic) -> None:
    assert [(m.id, m.owned_by) for m in oai.models.list()] == [("echo", "privgate")]
    models = list(anth.models.list())
    assert [(m.id, m.display_name, m.type) for m in models] == [("echo", "Echo", "model")]


def test_malformed_json(port: int) -> None:
    base = f"http://127.0.0.1:{port}/v1"
    headers = {"content-type": "application/json"}
    with httpx.Client() as http:
        r = http.post(f"{base}/chat/completions", content=b"{not json", headers=headers)
        assert r.status_code == 400
        assert r.json()["error"]["type"] == "invalid_request_error"
        assert r.json()["error"]["param"] is None
        r = http.post(f"{base}/messages", content=b"{not json", headers=headers)
        assert r.status_code == 400
        assert r.json()["type"] == "error" and r.json()["error"]["type"] == "invalid_request_error"


def test_missing_fields_raise_sdk_errors(oai: openai.OpenAI, anth: anthropic.Anthropic) -> None:
    with pytest.raises(openai.BadRequestError):
        oai.post("/chat/completions", body={"messages": []}, cast_to=object)
    with pytest.raises(anthropic.BadRequestError) as err:
        anth.post("/v1/messages", body={"model": "m"}, cast_to=object)
    assert "messages" in str(err.value)


# ---------------------------------------------------------------- raw wire format
def _sse_events(port: int, path: str, body: dict[str, object]) -> list[tuple[str | None, str]]:
    """(event name, data) pairs of a streamed reply, read without any SDK."""
    events: list[tuple[str | None, str]] = []
    with httpx.Client() as http, http.stream("POST", f"http://127.0.0.1:{port}{path}", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                events.append((name, line[len("data: ") :]))
                name = None
    return events


def test_chat_stream_wire(port: int) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "abcdefg"}], "stream": True}
    events = _sse_events(port, "/v1/chat/completions", body)
    assert events[-1] == (None, "[DONE]")
    deltas = [json.loads(data)["choices"][0]["delta"] for _, data in events[:-1]]
    assert deltas == [
        {"role": "assistant", "content": ""},
        {"content": "abc"},
        {"content": "def"},
        {"content": "g"},
        {},
    ]


def test_responses_stream_wire(port: int) -> None:
    events = _sse_events(port, "/v1/responses", {"model": "m", "input": "abcd", "stream": True})
    assert all(json.loads(data)["type"] == name for name, data in events)
    assert [name for name, _ in events] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]


def test_messages_stream_wire(port: int) -> None:
    body = {"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "abcd"}], "stream": True}
    events = _sse_events(port, "/v1/messages", body)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [json.loads(d)["delta"]["text"] for n, d in events if n == "content_block_delta"] == ["abc", "d"]


def test_missing_input_in_openai_shape(port: int) -> None:
    with httpx.Client() as http:
        for path in ("/v1/responses", "/v1/embeddings"):
            r = http.post(f"http://127.0.0.1:{port}{path}", json={"model": "m"})
            assert r.status_code == 400 and "input" in r.json()["error"]["message"]
