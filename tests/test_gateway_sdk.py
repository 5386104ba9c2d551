"""The gateway end to end: official SDKs → real gateway on loopback → recording fake LLM.

For every endpoint, streamed and not: no original value reaches the fake cloud, and the SDK's
answer holds the originals back, exactly as the echo model would have answered without privgate.
"""

from __future__ import annotations

import contextlib
import json

import anthropic
import openai

from tests.servers import FakeLLM

# Values from several cultures and kinds; each one must never reach the fake cloud.
PROMPT = (
    "Hello, I am Amélie Dubois, my colleague is Jürgen Weiß. "
    "Write to amelie.dubois@example.fr or call +1 415 555 0134. "
    "My card is 4111 1111 1111 1111."
)
SECRETS = ["Amélie Dubois", "Jürgen Weiß", "amelie.dubois@example.fr", "415 555 0134", "4111 1111 1111 1111"]
SYSTEM = "You are the assistant of Giulia Rossi, a lawyer."


def assert_clean(fake: FakeLLM, *values: str) -> None:
    received = fake.received()
    assert fake.records, "the fake LLM received nothing"
    for value in values or SECRETS:
        assert value not in received, f"{value!r} reached the upstream"


def test_chat_completion_restores_answer(oai: openai.OpenAI, records: FakeLLM) -> None:
    answer = oai.chat.completions.create(
        model="gpt-4o", messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPT}]
    )
    assert answer.choices[0].message.content == PROMPT
    assert_clean(records, *SECRETS, "Giulia Rossi")
    assert records.records[0]["headers"]["authorization"] == "Bearer sk-test-client"


def test_chat_multipart_developer_and_n_choices(oai: openai.OpenAI, records: FakeLLM) -> None:
    answer = oai.chat.completions.create(
        model="gpt-4o",
        n=2,
        messages=[
            {"role": "developer", "content": [{"type": "text", "text": SYSTEM}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": PROMPT[:60]}, {"type": "text", "text": PROMPT[60:]}],
            },
        ],
    )
    assert [c.message.content for c in answer.choices] == [PROMPT[:60] + "\n" + PROMPT[60:]] * 2
    assert_clean(records, "Giulia Rossi", "Amélie Dubois", "4111 1111 1111 1111")


def test_chat_stream_restores_split_surrogates(oai: openai.OpenAI, records: FakeLLM) -> None:
    stream = oai.chat.completions.create(
        model="gpt-4o", stream=True, n=2, messages=[{"role": "user", "content": PROMPT}]
    )
    texts = {0: "", 1: ""}
    for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
    assert texts == {0: PROMPT, 1: PROMPT}
    assert_clean(records)


def test_chat_tool_calls_and_results(oai: openai.OpenAI, records: FakeLLM) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    first = oai.chat.completions.create(model="gpt-4o", tools=tools, messages=[{"role": "user", "content": PROMPT}])
    call = first.choices[0].message.tool_calls[0]
    assert json.loads(call.function.arguments) == {"text": PROMPT}
    # the app sends the call and its result back: both carry originals, both must be rewritten
    result = "Found Amélie Dubois, account holder since 2019, reachable at amelie.dubois@example.fr."
    second = oai.chat.completions.create(
        model="gpt-4o",
        tools=tools,
        messages=[
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": result},
        ],
    )
    assert second.choices[0].message.content == result
    assert_clean(records)


def test_chat_tool_call_arguments_streamed(oai: openai.OpenAI, records: FakeLLM) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    prompt = 'Amélie Dubois said "yes" \\ ask Jürgen Weiß'
    stream = oai.chat.completions.create(
        model="gpt-4o", tools=tools, stream=True, messages=[{"role": "user", "content": prompt}]
    )
    arguments = ""
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            arguments += call.function.arguments or ""
    assert json.loads(arguments) == {"text": prompt}
    assert_clean(records, "Amélie Dubois", "Jürgen Weiß")


def test_responses_api(oai: openai.OpenAI, records: FakeLLM) -> None:
    answer = oai.responses.create(model="gpt-4o", instructions=SYSTEM, input=PROMPT)
    assert answer.output_text == PROMPT
    items = oai.responses.create(
        model="gpt-4o",
        input=[{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}],
    )
    assert items.output_text == PROMPT
    assert_clean(records, *SECRETS, "Giulia Rossi")


def test_responses_stream_and_function_call(oai: openai.OpenAI, records: FakeLLM) -> None:
    text = ""
    for event in oai.responses.create(model="gpt-4o", input=PROMPT, stream=True):
        if event.type == "response.output_text.delta":
            text += event.delta
        if event.type == "response.completed":
            assert event.response.output_text == PROMPT
    assert text == PROMPT
    tools = [{"type": "function", "name": "lookup", "parameters": {"type": "object"}}]
    call = oai.responses.create(model="gpt-4o", input=PROMPT, tools=tools).output[0]
    assert json.loads(call.arguments) == {"text": PROMPT}
    follow = oai.responses.create(
        model="gpt-4o",
        tools=tools,
        input=[
            {"role": "user", "content": PROMPT},
            {"type": "function_call", "call_id": call.call_id, "name": "lookup", "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "Amélie Dubois is premium."},
        ],
    )
    assert follow.output_text == "Amélie Dubois is premium."
    assert_clean(records)


def test_anthropic_messages(claude: anthropic.Anthropic, records: FakeLLM) -> None:
    message = claude.messages.create(
        model="claude-test",
        max_tokens=100,
        system=[{"type": "text", "text": SYSTEM}],
        messages=[{"role": "user", "content": [{"type": "text", "text": PROMPT}]}],
    )
    assert message.content[0].text == PROMPT
    headers = records.records[0]["headers"]
    assert "sk-ant-test-client" in (
        headers.get("x-api-key"),
        headers.get("authorization", "").removeprefix("Bearer "),
    )
    assert "anthropic-version" in records.records[0]["headers"]
    assert_clean(records, *SECRETS, "Giulia Rossi")


def test_anthropic_stream_and_tools(claude: anthropic.Anthropic, records: FakeLLM) -> None:
    with claude.messages.stream(
        model="claude-test", max_tokens=100, system=SYSTEM, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        streamed = "".join(stream.text_stream)
    assert streamed == PROMPT
    tools = [{"name": "lookup", "description": "look up", "input_schema": {"type": "object"}}]
    with claude.messages.stream(
        model="claude-test", max_tokens=100, tools=tools, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        final = stream.get_final_message()
    tool_use = final.content[0]
    assert tool_use.type == "tool_use" and tool_use.input == {"text": PROMPT}
    follow = claude.messages.create(
        model="claude-test",
        max_tokens=100,
        tools=tools,
        messages=[
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": [tool_use.model_dump()]},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": [{"type": "text", "text": "Jürgen Weiß approved."}],
                    }
                ],
            },
        ],
    )
    assert follow.content[0].text == "Jürgen Weiß approved."
    assert_clean(records, *SECRETS, "Giulia Rossi")


def test_embeddings_rewritten(oai: openai.OpenAI, records: FakeLLM) -> None:
    result = oai.embeddings.create(model="text-embedding-3-small", input=[PROMPT, "no secrets here"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 8
    assert_clean(records)


def test_models_pass_through(oai: openai.OpenAI, claude: anthropic.Anthropic, records: FakeLLM) -> None:
    assert [m.id for m in oai.models.list()] == ["echo"]
    assert [m.id for m in claude.models.list()] == ["echo"]


def test_same_name_same_surrogate_across_turns(oai: openai.OpenAI, records: FakeLLM) -> None:
    first = oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": PROMPT}])
    oai.chat.completions.create(
        model="gpt-4o",
        messages=[
            {"role": "user", "content": PROMPT},
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "Remind me: who is Jürgen Weiß?"},
        ],
    )
    turn1 = records.records[0]["body"]["messages"][0]["content"]
    turn2 = records.records[1]["body"]["messages"]
    assert turn2[0]["content"] == turn1 and turn2[1]["content"] == turn1
    surrogate = turn1.split("my colleague is ")[1].split(".")[0]
    assert turn2[2]["content"] == f"Remind me: who is {surrogate}?"
    assert_clean(records)


def test_anthropic_count_tokens_and_text_documents(claude: anthropic.Anthropic, records: FakeLLM) -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": PROMPT}}
    message = claude.messages.create(
        model="claude-test",
        max_tokens=100,
        messages=[{"role": "user", "content": [document, {"type": "text", "text": "Summarise."}]}],
    )
    assert message.content[0].text == "Summarise."
    with contextlib.suppress(anthropic.NotFoundError):  # the echo model counts no tokens: what it got matters
        claude.messages.count_tokens(model="claude-test", messages=[{"role": "user", "content": PROMPT}])
    assert records.records[-1]["path"] == "/v1/messages/count_tokens"
    assert_clean(records)
