"""Running it as a service: gateway keys, rate and size limits, admin endpoints, metrics, JSON logs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway import create_app
from gateway.audit import AuditStore
from gateway.budget import BudgetLedger
from gateway.logs import JsonFormatter, RequestIdFilter
from gateway.runtime import Runtime
from gateway.settings import TenantKey
from gateway.upstream import build_upstreams
from tests.servers import LoopbackServer

ADMIN_TOKEN = "admin-token-for-tests-0123456789"
KEY = "pg-key-of-team-blue"
NAME = "Amélie Dubois"


@pytest.fixture(scope="module")
def ops_gateway(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    """The session's detectors, with the service features switched on and a store of its own."""
    data = tmp_path_factory.mktemp("ops")
    tenants = [
        TenantKey(key_sha256=TenantKey.hash_key(KEY), tenant="blue", requests_per_minute=3, max_body_bytes=4000),
        TenantKey(key_sha256=TenantKey.hash_key("pg-key-of-team-red"), tenant="red"),
    ]
    settings = runtime.settings.model_copy(
        update={
            "require_key": True,
            "tenants": tenants,
            "data_dir": data,
            "admin_token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
        }
    )
    ops = dataclasses.replace(
        runtime,
        settings=settings,
        tenants={t.key_sha256: t for t in tenants},
        audit=(audit := AuditStore(f"sqlite:///{data / 'audit.db'}")),
        budgets=BudgetLedger(audit.engine),
        upstreams=build_upstreams(settings),
    )
    with LoopbackServer(create_app(runtime=ops)) as server:
        yield server


def client(server: LoopbackServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/v1", api_key="vendor-key", max_retries=0, default_headers={"X-Privgate-Key": key}
    )


def test_keys_limits_admin_and_metrics(ops_gateway: LoopbackServer) -> None:
    with client(ops_gateway, "unknown-key") as stranger, pytest.raises(openai.AuthenticationError):
        stranger.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    with client(ops_gateway, KEY) as blue:
        with pytest.raises(openai.APIStatusError) as too_big:
            blue.chat.completions.create(model="m", messages=[{"role": "user", "content": "x" * 5000}])
        assert too_big.value.status_code == 413
        answer = blue.chat.completions.create(model="m", messages=[{"role": "user", "content": f"I am {NAME}."}])
        assert answer.choices[0].message.content == f"I am {NAME}."
        with pytest.raises(openai.RateLimitError) as limited:
            for _ in range(3):
                blue.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert int(limited.value.response.headers["retry-after"]) >= 1

    assert httpx.get(f"{ops_gateway.url}/admin/audit").status_code == 401
    wrong = httpx.get(f"{ops_gateway.url}/admin/audit", headers={"X-Privgate-Admin-Token": "nope"})
    assert wrong.status_code == 401
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    records = []
    for _ in range(50):  # the store commits from a background thread
        records = httpx.get(f"{ops_gateway.url}/admin/audit", headers=admin, params={"tenant": "blue"}).json()["data"]
        if any(r["n_spans"] for r in records):
            break
    assert any(r["n_spans"] == 1 and r["tenant"] == "blue" for r in records)
    policies = httpx.get(f"{ops_gateway.url}/admin/policies", headers=admin).json()["data"]
    assert "general" in {p["domain"] for p in policies}

    metrics = httpx.get(f"{ops_gateway.url}/metrics").text
    assert 'privgate_spans_total{action="pseudonymize",label="PERSON"}' in metrics
    assert 'privgate_refused_total{domain="general",reason="rate_limit_exceeded"} 1.0' in metrics
    assert "privgate_detection_seconds_bucket" in metrics
    for text in (metrics, json.dumps(records, ensure_ascii=False)):
        assert NAME not in text and "Amélie" not in text


def test_admin_is_off_without_a_token(gateway: LoopbackServer) -> None:
    assert httpx.get(f"{gateway.url}/admin/audit").status_code == 404


def test_json_logs_carry_the_request_id_and_no_message_text() -> None:
    from gateway.logs import request_id

    record = logging.LogRecord("privgate", logging.INFO, __file__, 1, "refused: %s", (403,), None)
    token = request_id.set("abc123")
    try:
        RequestIdFilter().filter(record)
    finally:
        request_id.reset(token)
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "abc123" and line["message"] == "refused: 403" and line["level"] == "info"


def test_rate_limiter_refills() -> None:
    from gateway.limits import RateLimiter

    limiter = RateLimiter()
    assert [limiter.take("t", 2, now=0.0) for _ in range(2)] == [None, None]
    wait = limiter.take("t", 2, now=0.0)
    assert wait == pytest.approx(30.0)
    assert limiter.take("t", 2, now=30.0) is None


SECRETS = [
    "Amélie Dubois",
    "amelie.dubois@example.fr",
    "4111 1111 1111 1111",
    "sk-proj-Z8x2kQ9mN4vB7cR1tY6uI3oP5aS0dF2gH8jK",
]
PROMPT = f"I am {SECRETS[0]}, mail {SECRETS[1]}, card {SECRETS[2]}. OPENAI_API_KEY={SECRETS[3]}"


def test_no_secret_in_logs_metrics_or_audit_over_every_endpoint(
    ops_gateway: LoopbackServer, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    import anthropic

    caplog.set_level(logging.DEBUG)
    headers = {"X-Privgate-Key": "pg-key-of-team-red"}
    with openai.OpenAI(base_url=f"{ops_gateway.url}/v1", api_key="k", max_retries=0, default_headers=headers) as oai:
        for stream in (False, True):
            chat = oai.chat.completions.create(model="m", stream=stream, messages=[{"role": "user", "content": PROMPT}])
            list(chat) if stream else None
            answer = oai.responses.create(model="m", input=PROMPT, stream=stream)
            list(answer) if stream else None
        oai.embeddings.create(model="e", input=PROMPT)
        with pytest.raises(openai.APIError):
            oai.chat.completions.create(model="fake-error", messages=[{"role": "user", "content": PROMPT}])
        with pytest.raises(openai.BadRequestError):
            oai.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": PROMPT}],
                extra_headers={"X-Privgate-Domain": "nowhere"},
            )
    with anthropic.Anthropic(base_url=ops_gateway.url, api_key="k", max_retries=0, default_headers=headers) as claude:
        claude.messages.create(model="c", max_tokens=9, messages=[{"role": "user", "content": PROMPT}])
        with claude.messages.stream(model="c", max_tokens=9, messages=[{"role": "user", "content": PROMPT}]) as s:
            s.get_final_message()
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    audit = httpx.get(f"{ops_gateway.url}/admin/audit", headers=admin, params={"limit": 200}).text
    metrics = httpx.get(f"{ops_gateway.url}/metrics").text
    client_side = ("openai", "anthropic", "httpx2", "httpcore2")  # the SDKs in this test process log their own requests
    logged = "\n".join(JsonFormatter().format(r) for r in caplog.records if not r.name.startswith(client_side))
    assert "pseudonymize" in metrics and "/v1/messages" in logged + audit
    for secret in SECRETS:
        for where, text in (("logs", logged), ("metrics", metrics), ("audit", audit)):
            assert secret not in text, f"{secret!r} found in the {where}"
