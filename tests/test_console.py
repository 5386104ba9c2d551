"""The console's server side: login and session cookie, the JSON API under /admin/api, and no raw value
or admin token in any page, response or log. Real gateway on loopback, real audit store, real detectors."""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from typer.testing import CliRunner

from gateway.cli import app as cli_app
from gateway.console import charts
from gateway.runtime import Runtime
from tests.console_env import ADMIN_TOKEN, TENANT_KEY, console_app, console_runtime
from tests.servers import LoopbackServer

NAME, EMAIL, DIAGNOSIS = "Margarethe Vollmer", "m.vollmer@klinik-beispiel.de", "type 2 diabetes"
TEXT = f"My name is {NAME}, my e-mail is {EMAIL} and I was diagnosed with {DIAGNOSIS}. What should I eat?"
SECRETS = [ADMIN_TOKEN, TENANT_KEY, NAME, EMAIL, DIAGNOSIS]


@pytest.fixture(scope="module")
def console(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    with LoopbackServer(console_app(console_runtime(runtime, tmp_path_factory.mktemp("console")))) as server:
        yield server


@contextlib.contextmanager
def login(server: LoopbackServer) -> Iterator[httpx.Client]:
    """A client holding a console session, as the browser would after the login form."""
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/console/login", data={"token": ADMIN_TOKEN}).status_code == 303
        yield client


def wait_for_records(client: httpx.Client, seen: set[str], n: int) -> list[dict[str, object]]:
    """New audit records, newest first: the audit writer commits in the background."""
    deadline = time.monotonic() + 5
    while True:
        rows = [r for r in client.get("/admin/api/requests").json()["data"] if r["request_id"] not in seen]
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


def test_login_sets_a_signed_http_only_cookie_and_logout_ends_it(console: LoopbackServer) -> None:
    with httpx.Client(base_url=console.url) as anonymous:
        page = anonymous.get("/console")
        assert page.status_code == 200 and 'name="token"' in page.text and 'type="password"' in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        wrong = anonymous.post("/console/login", data={"token": "not-the-token"})
        assert wrong.status_code == 401 and "not the admin token" in wrong.text
        assert "set-cookie" not in wrong.headers
        assert anonymous.get("/admin/api/overview").status_code == 401

    with httpx.Client(base_url=console.url) as client:
        ok = client.post("/console/login", data={"token": ADMIN_TOKEN})
        assert ok.status_code == 303 and ok.headers["location"] == "/console"
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
        assert "Secure" not in cookie  # plain http on loopback; behind a TLS-terminating proxy it is set:
        proxied = httpx.post(
            f"{console.url}/console/login", data={"token": ADMIN_TOKEN}, headers={"X-Forwarded-Proto": "https"}
        )
        assert "; Secure" in proxied.headers["set-cookie"] and "HttpOnly" in proxied.headers["set-cookie"]
        assert ADMIN_TOKEN not in cookie and ADMIN_TOKEN not in str(ok.url)
        value = client.cookies["privgate_console"]
        assert client.get("/console").text.count("console.js") == 1  # the console itself, not the login form
        assert client.get("/admin/api/overview").json()["domains"]

        sid, expires, mac = value.split(".")
        for forged in (f"{sid}.{int(expires) + 3600}.{mac}", f"{sid}x.{expires}.{mac}", "a.1.b", ""):
            assert (
                httpx.get(f"{console.url}/admin/api/overview", cookies={"privgate_console": forged}).status_code == 401
            )

        out = client.post("/console/logout")
        assert out.status_code == 303 and 'privgate_console=""' in out.headers["set-cookie"]
        # the old cookie, replayed after logout, is refused
        replay = httpx.get(f"{console.url}/admin/api/overview", cookies={"privgate_console": value})
        assert replay.status_code == 401
        assert 'name="token"' in httpx.get(f"{console.url}/console", cookies={"privgate_console": value}).text


def test_api_takes_the_admin_token_header_and_refuses_a_wrong_one(console: LoopbackServer) -> None:
    names = [
        "overview",
        "requests",
        "requests/facets",
        "charts",
        "charts/requests.svg",
        "policies",
        "budget",
        "budget/x",
    ]
    paths = [f"/admin/api/{name}" for name in names]
    for path in paths:
        assert httpx.get(console.url + path).status_code == 401, path
        assert httpx.get(console.url + path, headers={"X-Privgate-Admin-Token": "wrong"}).status_code == 401, path
        assert httpx.get(console.url + path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).status_code == 200
    refused = httpx.post(f"{console.url}/admin/api/playground", json={"text": TEXT})
    assert refused.status_code == 401 and NAME not in refused.text


def test_cookie_writes_from_another_origin_are_refused(console: LoopbackServer) -> None:
    with login(console) as client:
        evil = client.post("/admin/api/playground", json={"text": "hi"}, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403
        same = client.post("/admin/api/playground", json={"text": "hi"}, headers={"Origin": console.url})
        assert same.status_code == 200


def test_playground_shows_spans_and_the_body_the_proxy_would_send(console: LoopbackServer) -> None:
    with login(console) as client:
        result = client.post("/admin/api/playground", json={"text": TEXT, "domain": "clinic"}).json()
    assert result["outcome"] == "forwarded" and result["domain"] == "clinic" and result["policy_version"] == "c1"
    (slot,) = result["slots"]
    assert slot["text"] == TEXT
    found = {TEXT[s["start"] : s["end"]]: s for s in result["spans"]}  # code-point offsets into the slot text
    assert found[NAME]["label"] == "PERSON" and found[NAME]["action"] == "pseudonymize"
    assert found[EMAIL]["label"] == "EMAIL_ADDRESS"
    assert found[DIAGNOSIS]["label"] == "DIAGNOSIS" and found[DIAGNOSIS]["action"] == "mask"
    assert found[DIAGNOSIS]["detector"] == "pattern:deny_list_0" and found[DIAGNOSIS]["score"] == 1.0
    sent = result["body"]["messages"][0]["content"]
    assert "[DIAGNOSIS_1]" in sent and all(
        value not in json.dumps(result["body"]) for value in (NAME, EMAIL, DIAGNOSIS)
    )
    assert result["round_trip"]["cloud_answer"] == sent
    assert result["round_trip"]["restored_answer"] == TEXT  # every surrogate and tag comes back

    # the same body through the proxy's dry-run mode (tenant "default"): byte for byte what the playground showed
    dry = httpx.post(
        f"{console.url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": TEXT}]},
        headers={"X-Privgate-Dry-Run": "1", "X-Privgate-Domain": "clinic"},
    ).json()
    assert dry["body"] == result["body"]
    assert [{k: s[k] for k in ("slot", "start", "end", "label", "detector", "action")} for s in dry["spans"]] == [
        {k: s[k] for k in ("slot", "start", "end", "label", "detector", "action")} for s in result["spans"]
    ]


def test_playground_takes_a_whole_body_and_reports_refusals(console: LoopbackServer) -> None:
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": f"You help {NAME}."},
            {"role": "user", "content": [{"type": "text", "text": "Charge card 4111 1111 1111 1111 please"}]},
        ],
    }
    with login(console) as client:
        multi = client.post("/admin/api/playground", json={"body": json.dumps(body), "domain": "general"}).json()
        assert multi["outcome"] == "forwarded" and len(multi["slots"]) == 2
        assert {s["label"] for s in multi["spans"]} >= {"PERSON", "CREDIT_CARD"}
        assert "4111 1111 1111 1111" not in json.dumps(multi["body"]) and NAME not in json.dumps(multi["body"])
        strict = client.post("/admin/api/playground", json={"body": json.dumps(body), "domain": "strict"}).json()
        assert strict["outcome"] == "refused" and strict["status"] == 403 and strict["body"] is None
        assert "CREDIT_CARD" in strict["message"] and "4111" not in strict["message"]
        assert any(s["label"] == "CREDIT_CARD" and s["action"] == "block" for s in strict["spans"])
        leak = {**body, "metadata": {"note": NAME}}  # a field no adapter rewrites: the leak scan refuses it
        leaked = client.post("/admin/api/playground", json={"body": json.dumps(leak), "domain": "general"}).json()
        assert leaked["outcome"] == "refused" and leaked["leaks"][0]["label"] == "PERSON" and leaked["body"] is None
        bad = client.post("/admin/api/playground", json={"body": '{"model": "x", ', "domain": "general"})
        assert bad.status_code == 400 and "line 1" in bad.json()["error"]["message"]
        unknown = client.post("/admin/api/playground", json={"text": "hi", "domain": "nope"})
        assert unknown.status_code == 400


def test_requests_appear_newest_first_with_filters_counts_and_detail(console: LoopbackServer, runtime: Runtime) -> None:
    before = httpx.get(f"{console.url}/admin/api/requests", headers={"X-Privgate-Admin-Token": ADMIN_TOKEN}).json()
    seen = {r["request_id"] for r in before["data"]}
    headers = {"X-Privgate-Key": TENANT_KEY}
    clinic = openai.OpenAI(base_url=f"{console.url}/v1", api_key="vendor", max_retries=0, default_headers=headers)
    anyone = openai.OpenAI(base_url=f"{console.url}/v1", api_key="vendor", max_retries=0)
    with clinic, anyone:
        answer = clinic.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TEXT}])
        assert answer.choices[0].message.content == TEXT
        anyone.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"Write to {EMAIL}"}])
        with pytest.raises(openai.PermissionDeniedError):
            anyone.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": f"Hi {NAME}"}], metadata={"who": NAME}
            )
    with login(console) as client:
        rows = wait_for_records(client, seen, 3)
        assert len(rows) == 3
        leak, email, clinic_row = rows  # newest first
        assert clinic_row["tenant"] == "clinic-team" and clinic_row["domain"] == "clinic"
        assert clinic_row["labels"] == {"DIAGNOSIS": 1, "EMAIL_ADDRESS": 1, "PERSON": 1} and clinic_row["n_spans"] == 3
        assert clinic_row["outcome"] == "forwarded" and clinic_row["upstream_ms"] is not None
        assert email["tenant"] == "default" and email["labels"] == {"EMAIL_ADDRESS": 1}
        assert leak["outcome"] == "refused" and leak["n_leaks"] == 1 and leak["status"] == 403

        def ids(**params: str) -> list[str]:
            data = client.get("/admin/api/requests", params=params).json()["data"]
            return [r["request_id"] for r in data if r["request_id"] not in seen]

        assert ids(tenant="clinic-team") == [clinic_row["request_id"]]
        assert ids(domain="general") == [leak["request_id"], email["request_id"]]
        assert ids(label="DIAGNOSIS") == [clinic_row["request_id"]]
        assert ids(label="EMAIL_ADDRESS") == [email["request_id"], clinic_row["request_id"]]
        assert ids(leaks="true") == [leak["request_id"]]
        assert ids(backend="mpc") == []
        assert ids(before=str(clinic_row["id"])) == []
        facets = client.get("/admin/api/requests/facets").json()
        assert "clinic-team" in facets["tenants"] and "DIAGNOSIS" in facets["labels"]

        detail = client.get(f"/admin/api/requests/{clinic_row['request_id']}").json()
        groups = {(g["label"], g["action"], g["count"]) for g in detail["by_label"]}
        assert groups == {("PERSON", "pseudonymize", 1), ("EMAIL_ADDRESS", "pseudonymize", 1), ("DIAGNOSIS", "mask", 1)}
        assert all(len(s["value_hash"]) == 24 for s in detail["spans"]) and detail["leaks"] == []
        assert detail["overhead_ms"] > 0 and detail["upstream_ms"] > 0 and detail["ppvd_hits"] == []
        leak_detail = client.get(f"/admin/api/requests/{leak['request_id']}").json()
        assert leak_detail["leaks"][0]["label"] == "PERSON" and len(leak_detail["leaks"][0]["value_hash"]) == 24
        assert client.get("/admin/api/requests/does-not-exist").status_code == 404


def test_charts_budget_and_svg(console: LoopbackServer) -> None:
    with login(console) as client:
        anyone = openai.OpenAI(base_url=f"{console.url}/v1", api_key="vendor", max_retries=0)
        with anyone:
            anyone.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": f"Mail {EMAIL}"}])
        wait_for_records(client, set(), 1)
        data = client.get("/admin/api/charts", params={"hours": 24}).json()
        assert len(data["buckets"]) == len(data["requests"]) == len(data["leaks"]) == 24
        assert sum(data["requests"]) >= 1 and sum(data["spans_by_label"]["EMAIL_ADDRESS"]) >= 1
        assert data["overhead_ms"]["count"] >= 1 and data["overhead_ms"]["p50"] <= data["overhead_ms"]["p99"]
        budgets = {b["tenant"]: b for b in data["budgets"]}
        assert budgets["clinic-team"]["domain"] == "clinic" and budgets["clinic-team"]["limit"] == 50.0
        assert budgets["default"]["spent"] == 0.0
        for name in ("requests", "spans", "leaks", "overhead", "budget"):
            svg = client.get(f"/admin/api/charts/{name}.svg")
            assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
            assert svg.text.startswith("<svg") and svg.text.endswith("</svg>")
        assert "EMAIL_ADDRESS" in client.get("/admin/api/charts/spans.svg").text
        assert client.get("/admin/api/charts/nope.svg").status_code == 404


def test_policies_and_validation_match_the_cli(console: LoopbackServer, tmp_path: Path) -> None:
    with login(console) as client:
        data = {p["domain"]: p for p in client.get("/admin/api/policies").json()["data"]}
        clinic = data["clinic"]
        assert clinic["version"] == "c1" and clinic["actions"]["DIAGNOSIS"] == "mask"
        assert {"label": "DIAGNOSIS", "terms": 3} in clinic["detectors"]["deny_lists"]
        assert DIAGNOSIS not in json.dumps(clinic)  # deny-list terms are not shown
        assert len(clinic["sha256"]) == 64 and clinic["detectors"]["presidio"]["enabled"] is True

        bad = 'name: clinic\nversion: "2"\nactions:\n  PERSON: shred\ndp:\n  epsilon: -1\n'
        path = tmp_path / "clinic.yaml"
        path.write_text(bad, encoding="utf-8")
        cli = CliRunner().invoke(cli_app, ["policy", "check", str(path)], terminal_width=400)
        assert cli.exit_code == 1
        answer = client.post("/admin/api/policies/validate", json={"text": bad, "filename": "clinic.yaml"}).json()
        assert answer["ok"] is False and len(answer["lines"]) == 2
        assert [line.replace(str(path), "clinic.yaml") for line in cli.output.strip().splitlines()] == answer["lines"]
        assert answer["issues"][0]["line"] == 4

        good = 'name: clinic\nversion: "2"\nactions:\n  PERSON: mask\n'
        ok = client.post("/admin/api/policies/validate", json={"text": good, "filename": "clinic.yaml"}).json()
        assert ok["ok"] is True and ok["lines"] == ["clinic.yaml: ok (policy 'clinic' version 2)"]
        renamed = client.post("/admin/api/policies/validate", json={"text": good, "filename": "other.yaml"}).json()
        assert renamed["ok"] is False and "must match the file name 'other'" in renamed["lines"][0]
        path.write_text(good, encoding="utf-8")
        (tmp_path / "other.yaml").write_text(good, encoding="utf-8")
        cli = CliRunner().invoke(cli_app, ["policy", "check", str(tmp_path / "other.yaml")], terminal_width=400)
        assert cli.output.strip().replace(str(tmp_path / "other.yaml"), "other.yaml") == renamed["lines"][0]
        yaml_error = client.post("/admin/api/policies/validate", json={"text": "name: [", "filename": None}).json()
        assert yaml_error["ok"] is False and "not valid YAML" in yaml_error["lines"][0]


def test_no_secret_in_any_page_response_or_log(console: LoopbackServer, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with httpx.Client(base_url=console.url) as wrong:
        wrong.post("/console/login", data={"token": ADMIN_TOKEN + "x"})
    headers = {"X-Privgate-Key": TENANT_KEY}
    with openai.OpenAI(
        base_url=f"{console.url}/v1", api_key="vendor", max_retries=0, default_headers=headers
    ) as app_client:
        app_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": TEXT}])
    seen: list[str] = []
    with login(console) as client:
        seen.append(client.get("/console").text)
        for asset in ("console.js", "console.css", "favicon.svg"):
            seen.append(client.get(f"/console/static/{asset}").text)
        rows = client.get("/admin/api/requests", params={"limit": 500}).json()["data"]
        seen.append(json.dumps(rows))
        seen += [client.get(f"/admin/api/requests/{r['request_id']}").text for r in rows]
        for path in ("overview", "requests/facets", "charts", "policies", "budget", "budget/clinic-team"):
            seen.append(client.get(f"/admin/api/{path}").text)
        seen += [client.get(f"/admin/api/charts/{n}.svg").text for n in ("requests", "spans", "leaks", "budget")]
        seen.append(str(client.cookies.jar))
        client.post("/console/logout")
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records)
    assert "console: login" in logs  # the log did see the logins...
    everything = "\n".join(seen) + logs
    for secret in SECRETS:  # ...but never a token, a key or a raw value
        assert secret not in everything, secret


def test_console_is_off_without_an_admin_token(runtime: Runtime, tmp_path: Path) -> None:
    off = console_runtime(runtime, tmp_path, admin_token_sha256=None)
    with LoopbackServer(console_app(off)) as server:
        assert httpx.get(f"{server.url}/console").status_code == 404
        assert httpx.post(f"{server.url}/console/login", data={"token": ADMIN_TOKEN}).status_code == 404
        assert httpx.get(f"{server.url}/admin/api/overview", cookies={"privgate_console": "a.1.b"}).status_code == 404


def test_login_attempts_are_rate_limited(runtime: Runtime, tmp_path: Path) -> None:
    with LoopbackServer(console_app(console_runtime(runtime, tmp_path))) as server, httpx.Client() as client:
        codes = [
            client.post(f"{server.url}/console/login", data={"token": f"guess-{i}"}).status_code for i in range(12)
        ]
        assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


def test_svg_charts_escape_every_text() -> None:
    svg = charts.meters("budget <of> tenants", [("<script>alert(1)</script>", 1.0, 2.0)], " ε")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "&lt;of&gt;" in svg
    bars = charts.bars("spans", ["10:00", "11:00"], {"A&B": [1, 0], '"q"': [0, 2]})
    assert "A&amp;B" in bars and "<rect" in bars and bars.count("<title>") == 3
