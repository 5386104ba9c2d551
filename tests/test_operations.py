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
    tenants = [TenantKey(key_sha256=TenantKey.hash_key(KEY), tenant="blue", requests_per_minute=3, max_body_bytes=4000)]
    settings = runtime.settings.model_copy(
        update={"require_key": True, "tenants": tenants, "data_dir": data,
                "admin_token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest()}
    )  # fmt: skip
    ops = dataclasses.replace(
        runtime,
        settings=settings,
        tenants={t.key_sha256: t for t in tenants},
        audit=AuditStore(f"sqlite:///{data / 'audit.db'}"),
        upstreams=build_upstreams(settings),
    )
    with LoopbackServer(create_app(runtime=ops)) as server:
        yield server


def client(server: LoopbackServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="vendor-key", max_retries=0,
                         default_headers={"X-Privgate-Key": key})  # fmt: skip


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
