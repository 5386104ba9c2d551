"""Every error case gets the status and the shape the client's SDK expects, and nothing leaks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from gateway import create_app
from gateway.runtime import Runtime
from rewriters.detect import DetectionEngine
from rewriters.spans import Span
from tests.conftest import TENANT_KEY, make_settings
from tests.servers import FakeLLM, LoopbackServer

CARD = "4111 1111 1111 1111"
NAME = "Amélie Dubois"


def test_malformed_json_in_vendor_shape(gateway: LoopbackServer, records: FakeLLM) -> None:
    openai_error = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        content=b'{"model": "x", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert openai_error.status_code == 400
    assert openai_error.json()["error"]["type"] == "invalid_request_error"
    anthropic_error = httpx.post(f"{gateway.url}/v1/messages", content=b"not json")
    assert anthropic_error.status_code == 400
    assert anthropic_error.json()["type"] == "error"
    assert anthropic_error.json()["error"]["type"] == "invalid_request_error"
    not_object = httpx.post(f"{gateway.url}/v1/chat/completions", json=[1, 2])
    assert not_object.status_code == 400
    assert records.records == []


def test_body_too_large(oai: openai.OpenAI, claude: anthropic.Anthropic, records: FakeLLM) -> None:
    huge = "lorem ipsum " * 20_000
    with pytest.raises(openai.APIStatusError) as caught:
        oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": huge}])
    assert caught.value.status_code == 413
    with pytest.raises(anthropic.APIStatusError) as caught_a:
        claude.messages.create(model="claude", max_tokens=5, messages=[{"role": "user", "content": huge}])
    assert caught_a.value.status_code == 413
    assert caught_a.value.body["error"]["type"] == "request_too_large"  # type: ignore[index]
    assert records.records == []


def test_unknown_domain(oai: openai.OpenAI, records: FakeLLM) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Privgate-Domain": "astrology"},
        )
    assert caught.value.code == "unknown_domain"
    assert records.records == []


def test_unknown_model_passes_upstream_error_through(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        oai.chat.completions.create(model="fake-unknown", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.code == "model_not_found"


def test_upstream_error_status_passes_through(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model="fake-error", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 500


def test_upstream_timeout(oai: openai.OpenAI, claude: anthropic.Anthropic) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        oai.chat.completions.create(model="fake-slow", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 504
    with pytest.raises(anthropic.APIStatusError) as caught_a:
        claude.messages.create(model="fake-slow", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert caught_a.value.status_code == 504


@pytest.mark.parametrize("model", ["fake-broken", "fake-truncated"])
def test_broken_stream_ends_with_an_error(oai: openai.OpenAI, claude: anthropic.Anthropic, model: str) -> None:
    stream = oai.chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "a long enough text " * 5}]
    )
    with stream, pytest.raises(openai.APIError):
        for _ in stream:
            pass
    with pytest.raises(anthropic.APIError):  # noqa: SIM117
        with claude.messages.stream(
            model=model, max_tokens=5, messages=[{"role": "user", "content": "a long enough text " * 5}]
        ) as stream:
            stream.get_final_message()


def test_block_action_refuses(oai: openai.OpenAI, records: FakeLLM) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"card {CARD}"}],
            extra_headers={"X-Privgate-Domain": "strict"},
        )
    assert CARD not in str(caught.value.body)
    assert records.records == []


def test_value_in_unrewritable_field_is_refused(oai: openai.OpenAI, records: FakeLLM) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": f"I am {NAME}."}],
            metadata={"customer": NAME},
        )
    assert records.records == []


def test_unknown_path_is_404_unless_policy_passes_through(gateway: LoopbackServer, records: FakeLLM) -> None:
    refused = httpx.post(f"{gateway.url}/v1/files", json={"purpose": "x"}, headers={"authorization": "Bearer k"})
    assert refused.status_code == 404 and refused.json()["error"]["type"] == "invalid_request_error"
    refused_a = httpx.get(f"{gateway.url}/v1/batches", headers={"anthropic-version": "2023-06-01"})
    assert refused_a.status_code == 404 and refused_a.json()["error"]["type"] == "not_found_error"
    assert records.records == []
    forwarded = httpx.post(f"{gateway.url}/v1/files", json={"purpose": "x"}, headers={"x-privgate-domain": "open"})
    assert records.records[-1]["path"] == "/v1/files"  # the fake answered, whatever it said
    assert forwarded.headers["x-privgate-request-id"]


class Exploding:
    name = "exploding"

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        raise MemoryError("the detector ran out of memory")


class Buggy:
    name = "buggy"

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        raise KeyError(texts[0])  # a bug whose message quotes the input


def test_detector_failure_fails_closed(
    fake_llm: FakeLLM, policy_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runtime = Runtime.build(make_settings(fake_llm, policy_dir, tmp_path))
    runtime.engines["general"] = DetectionEngine([Exploding()])
    runtime.engines["open"] = DetectionEngine([Buggy()])
    fake_llm.records.clear()
    with (
        LoopbackServer(create_app(runtime=runtime)) as server,
        openai.OpenAI(base_url=f"{server.url}/v1", api_key="k", max_retries=0) as client,
    ):
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"I am {NAME}"}])
        with pytest.raises(openai.InternalServerError) as bug:  # an unprotected domain, a bug: 500
            client.chat.completions.create(
                model="gpt-4o",
                messages=[{"role": "user", "content": f"I am {NAME}"}],
                extra_headers={"X-Privgate-Domain": "open"},
            )
    assert caught.value.status_code == 503
    assert caught.value.code == "privgate_detection_failed"
    assert bug.value.code == "privgate_internal_error"
    assert fake_llm.records == []
    assert NAME not in caplog.text


def test_dry_run_returns_what_would_be_sent(gateway: LoopbackServer, records: FakeLLM) -> None:
    reply = httpx.post(
        f"{gateway.url}/v1/chat/completions",
        headers={"X-Privgate-Dry-Run": "1"},
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": f"I am {NAME}."}]},
    )
    report = reply.json()
    assert reply.status_code == 200 and report["object"] == "privgate.dry_run"
    assert NAME not in json.dumps(report["body"], ensure_ascii=False)
    assert [s["label"] for s in report["spans"]] == ["PERSON"]
    assert records.records == []


def test_tenant_key_selects_domain_and_headers(gateway: LoopbackServer, records: FakeLLM) -> None:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=TENANT_KEY, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"I am {NAME}."}]
        )
    assert raw.parse().choices[0].message.content == f"I am {NAME}."
    assert records.records[0]["body"]["messages"][0]["content"] == "I am [PERSON_1]."  # the 'masked' domain
    assert raw.headers["x-privgate-request-id"]
    assert float(raw.headers["x-privgate-overhead-ms"]) >= 0


def test_no_raw_value_in_logs_errors_or_audit(
    oai: openai.OpenAI,
    runtime: Runtime,
    all_logs: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret_prompt = f"I am {NAME}, card {CARD}."
    oai.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": secret_prompt}])
    for model in ("fake-error", "fake-slow", "fake-unknown"):
        with pytest.raises(openai.APIError):
            oai.chat.completions.create(model=model, messages=[{"role": "user", "content": secret_prompt}])
    with pytest.raises(openai.APIError):
        oai.chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": secret_prompt}],
            extra_headers={"X-Privgate-Domain": "strict"},
        )
    out, err = capfd.readouterr()
    logged = all_logs.text + out + err
    assert runtime.audit.flush()
    rows = runtime.audit.recent(50)
    stored = json.dumps(
        [{c.name: getattr(r, c.name) for c in r.__table__.columns} for r in rows],
        default=str,
        ensure_ascii=False,
    )
    assert rows and any(r.n_spans for r in rows)
    for value in (NAME, CARD, "Amélie", "Dubois"):
        assert value not in logged
        assert value not in stored


def test_health_and_readiness(gateway: LoopbackServer) -> None:
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/readyz")
    assert ready.status_code == 200 and "general" in ready.json()["domains"]
