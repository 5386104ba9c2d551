"""DP through the gateway: restored answers, and one budget that concurrent requests never overspend."""

from __future__ import annotations

import asyncio

import httpx
from typer.testing import CliRunner

from gateway.cli import app as cli
from gateway.runtime import Runtime
from tests.servers import FakeLLM, LoopbackServer

BODY = {"model": "m", "messages": [{"role": "user", "content": "Please write to Hans Müller today."}]}


def test_dp_rewrite_is_restored_and_the_budget_holds_under_concurrency(
    gateway: LoopbackServer, runtime: Runtime, records: FakeLLM
) -> None:
    headers = {"X-Privgate-Domain": "private", "Authorization": "Bearer dp-test-tenant-key"}

    async def fire(count: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as client:
            return await asyncio.gather(
                *(client.post("/v1/chat/completions", json=BODY, headers=headers) for _ in range(count))
            )

    # ε 0.5 per request, 10 per tenant and day: of 30 concurrent requests exactly 20 may pass
    replies = asyncio.run(fire(30))
    ok = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 403]
    assert len(ok) == 20 and len(refused) == 10
    assert all(r.json()["choices"][0]["message"]["content"] == BODY["messages"][0]["content"] for r in ok)
    assert all(r.json()["error"]["code"] == "privgate_dp_budget_exhausted" for r in refused)
    assert "Hans Müller" not in records.received()
    spent = runtime.budgets.spent("default")
    assert list(spent.values()) == [10.0]
    assert runtime.audit.flush()
    dp_spans = [s for r in runtime.audit.recent(100) for s in r.spans if s["action"] == "dp_rewrite"]
    assert len(dp_spans) == 20 and {s["epsilon"] for s in dp_spans} == {0.5}
    shown = CliRunner().invoke(
        cli, ["budget", "show", "default"], env={"PRIVGATE_DB_URL": runtime.settings.database_url}
    )
    assert shown.exit_code == 0 and "10" in shown.output
