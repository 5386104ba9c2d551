"""The gateway's path to a secure backend: same protection, restoration, errors and audit as a cloud upstream.

The backend here is a minimal in-process one that answers with the text it received (like the echo
upstream); the real MPC and TEE backends have their own end-to-end tests.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest

from gateway.runtime import Runtime
from gateway.secure import secure_upstream
from secure_infer.backend import BackendError, BackendUnsupported
from tests.servers import FakeLLM, LoopbackServer

NAME = "Ingrid Johansson"


class EchoBackend:
    """Answers chat with the last user message; `fail_after` breaks a stream after that many chunks."""

    name = "tee"

    def __init__(self, fail_after: int | None = None) -> None:
        self.received: list[str] = []
        self.fail_after = fail_after
        self.closed = False

    def models(self) -> list[str]:
        return ["echo"]

    def _text(self, body: dict[str, Any]) -> str:
        text = str(body["messages"][-1]["content"])
        self.received.append(text)
        return text

    async def chat(self, body: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
        facts.update(measurement="ab" * 32, enclave_ms=1.5)
        message = {"role": "assistant", "content": self._text(body)}
        return {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}  # fmt: skip

    async def chat_stream(self, body: dict[str, Any], facts: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        text = self._text(body)
        for i in range(0, len(text), 3):
            if self.fail_after is not None and i // 3 >= self.fail_after:
                raise BackendError("the enclave process died")
            delta = {"content": text[i : i + 3]}
            yield {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                   "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}  # fmt: skip
        facts.update(measurement="ab" * 32, tokens=len(text) // 3 + 1)
        yield {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
               "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}  # fmt: skip

    async def embeddings(self, body: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
        raise BackendUnsupported("this backend serves chat only")

    async def aclose(self) -> None:
        self.closed = True


@pytest.fixture()
def secure_domain(runtime: Runtime) -> Iterator[EchoBackend]:
    """The `masked` domain served by an in-process secure backend for the length of one test."""
    backend = EchoBackend()
    runtime.secure["masked"] = secure_upstream(runtime.policies["masked"], start=lambda: backend)
    try:
        yield backend
    finally:
        del runtime.secure["masked"]


def client(gateway: LoopbackServer) -> openai.OpenAI:
    headers = {"X-Privgate-Domain": "masked"}
    return openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0, default_headers=headers)


def test_a_secure_domain_is_protected_restored_and_audited(
    gateway: LoopbackServer, runtime: Runtime, records: FakeLLM, secure_domain: EchoBackend
) -> None:
    prompt = f"Summarise the file of {NAME}."
    with client(gateway) as oai:
        answer = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}])
        streamed = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}], stream=True)
        pieces = "".join(c.choices[0].delta.content or "" for c in streamed)
    assert answer.choices[0].message.content == prompt and pieces == prompt
    assert secure_domain.received and all(NAME not in text for text in secure_domain.received)
    assert not records.records  # nothing went to the cloud upstream
    assert runtime.audit.flush()
    latest = runtime.audit.recent(2)
    assert {r.outcome for r in latest} == {"forwarded"}
    assert all(r.backend_facts and r.backend_facts["measurement"] == "ab" * 32 for r in latest)


def test_secure_backend_failures_get_openai_errors(
    gateway: LoopbackServer, runtime: Runtime, secure_domain: EchoBackend
) -> None:
    with client(gateway) as oai:
        with pytest.raises(openai.BadRequestError, match="chat only"):
            oai.embeddings.create(model="m", input="hello")
        secure_domain.fail_after = 2
        stream = oai.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "a long enough text"}], stream=True
        )
        with pytest.raises(openai.APIError, match="stream"):
            for _ in stream:
                pass


def test_anthropic_clients_are_told_the_secure_domain_speaks_openai(
    gateway: LoopbackServer, secure_domain: EchoBackend
) -> None:
    import anthropic

    with anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0) as claude, pytest.raises(
        anthropic.BadRequestError, match="OpenAI API only"
    ):
        claude.messages.create(
            model="m",
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Privgate-Domain": "masked"},
        )
