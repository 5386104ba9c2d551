"""The command line: scan a text, label a JSONL set, read the audit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.audit import AuditEntry, AuditStore
from gateway.cli import app


@pytest.fixture()
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PRIVGATE_DATA_DIR", str(tmp_path))
    return tmp_path


def test_scan_text_shows_spans_and_rewrite(env: Path) -> None:
    result = CliRunner().invoke(app, ["scan", "Hi, I am Hans Müller, write to hans@example.de"])
    assert result.exit_code == 0, result.output
    assert "PERSON" in result.output and "EMAIL_ADDRESS" in result.output
    sent = result.output.split("sent upstream:")[1]
    assert "Hans Müller" not in sent and "hans@example.de" not in sent


def test_scan_jsonl_writes_detected_spans(env: Path) -> None:
    source = env / "in.jsonl"
    records = [
        {"id": "a", "text": "Call Amélie Dubois at amelie@example.fr", "spans": [], "meta": {"k": 1}},
        {"id": "b", "text": "nothing here", "spans": []},
    ]
    source.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["scan", "--jsonl", str(source)])
    assert result.exit_code == 0, result.output
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in out] == ["a", "b"] and out[0]["meta"] == {"k": 1}
    text = out[0]["text"]
    assert {text[s["start"] : s["end"]] for s in out[0]["spans"]} >= {"amelie@example.fr", "Amélie Dubois"}
    assert all({"label", "score", "detector"} <= set(s) for s in out[0]["spans"])
    assert out[1]["spans"] == []


def test_audit_lists_recent_and_leaks(env: Path) -> None:
    store = AuditStore(f"sqlite:///{env / 'audit.db'}")
    store.write(
        AuditEntry(
            "r1",
            "acme",
            "general",
            "v1",
            "/v1/chat/completions",
            outcome="forwarded",
            status=200,
            spans=[{"label": "PERSON"}],
        )
    )
    store.write(
        AuditEntry(
            "r2",
            "acme",
            "general",
            "v1",
            "/v1/messages",
            outcome="refused",
            status=403,
            leaks=[{"label": "PERSON", "value_hash": "abc"}],
        )
    )
    store.close()
    result = CliRunner().invoke(app, ["audit", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["request_id"] for r in rows] == ["r2", "r1"]
    leaks = CliRunner().invoke(app, ["audit", "--leaks", "--json"])
    assert [json.loads(line)["request_id"] for line in leaks.stdout.splitlines()] == ["r2"]
    table = CliRunner().invoke(app, ["audit"])
    assert "2 requests, 1 spans, 1 leaks in the store" in " ".join(table.output.split())
