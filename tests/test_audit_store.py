"""The audit store on SQLite: round trip, migrations on a fresh file, `flush()` and `close()` semantics.

(That a record never holds a raw value is checked by the gateway tests, on what the gateway writes.)
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect
from sqlalchemy.orm import Session

from gateway import migrations
from gateway.audit import AuditEntry, AuditRow, AuditStore


def entry(request_id: str, tenant: str = "acme", leaks: int = 0, spans: int = 0) -> AuditEntry:
    return AuditEntry(
        request_id,
        tenant,
        "general",
        "v1",
        "/v1/chat/completions",
        outcome="forwarded",
        status=200,
        spans=[{"label": "PERSON", "action": "pseudonymize", "hash": f"h{i}"} for i in range(spans)],
        leaks=[{"label": "EMAIL_ADDRESS", "field": "metadata"} for _ in range(leaks)],
        overhead_ms=1.5,
    )


def audit_schema_diff(connection: Connection) -> Any:
    """What autogenerate would change in `audit_records` (other tables belong to other models)."""
    only_audit = {"include_name": lambda name, kind, _parent: kind != "table" or name == AuditRow.__tablename__}
    return compare_metadata(MigrationContext.configure(connection, opts=only_audit), AuditRow.metadata)


@pytest.fixture()
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'nested' / 'audit.db'}"  # the directory does not exist yet


@pytest.fixture()
def store(url: str) -> Iterator[AuditStore]:
    store = AuditStore(url)
    yield store
    store.close()


def test_round_trip(store: AuditStore) -> None:
    store.submit(entry("r1", spans=2))
    store.submit(entry("r2", tenant="beta", leaks=1))
    assert store.flush()
    store.write(entry("r3"))  # written at once, by the caller's thread
    assert [r.request_id for r in store.recent()] == ["r3", "r2", "r1"]  # newest first
    first = store.recent(tenant="acme")[-1]
    assert (first.request_id, first.n_spans, first.outcome, first.status) == ("r1", 2, "forwarded", 200)
    assert first.spans[0] == {"label": "PERSON", "action": "pseudonymize", "hash": "h0"}
    assert first.created_at is not None and first.overhead_ms == 1.5
    assert [r.request_id for r in store.recent(leaks_only=True)] == ["r2"]
    assert [r.request_id for r in store.recent(1)] == ["r3"]
    assert store.counts() == {"requests": 3, "leaks": 1, "spans": 2}
    store.ping()


def test_fresh_sqlite_file_is_migrated_to_head(store: AuditStore) -> None:
    with store.engine.connect() as connection:
        assert migrations.current(connection) == migrations.head()
        assert {"audit_records", "alembic_version"} <= set(inspect(connection).get_table_names())
        assert audit_schema_diff(connection) == []  # the migrations build exactly the table the model describes


def test_store_made_by_create_all_is_adopted_with_its_records(url: str) -> None:
    """privgate before migrations made the table with `create_all`: the initial revision keeps it and its rows."""
    Path(url.removeprefix("sqlite:///")).parent.mkdir()
    legacy = create_engine(url)
    AuditRow.metadata.create_all(legacy)
    with Session(legacy) as session, session.begin():
        session.add(AuditRow(**vars(entry("old")), n_spans=0, n_leaks=0))
    with legacy.begin() as connection:  # the columns later revisions add were not there yet
        for column in ("backend_facts", "ppvd_hits"):
            connection.exec_driver_sql(f"ALTER TABLE audit_records DROP COLUMN {column}")
    legacy.dispose()
    store = AuditStore(url)
    try:
        store.write(entry("new"))
        assert [r.request_id for r in store.recent()] == ["new", "old"]
        with store.engine.connect() as connection:
            assert migrations.current(connection) == migrations.head()
    finally:
        store.close()


def test_flush_waits_for_everything_submitted_before(store: AuditStore) -> None:
    assert store.flush(timeout=5)  # nothing pending: returns at once
    for i in range(600):  # more than one writer batch
        store.submit(entry(f"r{i}"))
    assert store.flush(timeout=10)
    assert store.counts()["requests"] == 600  # committed, visible without waiting any longer


def test_failed_batch_is_logged_and_the_writer_goes_on(store: AuditStore, caplog: pytest.LogCaptureFixture) -> None:
    store.write(entry("dup"))
    with caplog.at_level(logging.ERROR, logger="privgate.audit"):
        store.submit(entry("dup"))  # violates the unique request id: that batch is lost, loudly
        assert store.flush(timeout=5)
    assert "1 record(s) could not be written" in caplog.text
    store.submit(entry("after"))
    assert store.flush(timeout=5)
    assert [r.request_id for r in store.recent()] == ["after", "dup"]


def test_close_commits_what_was_submitted_then_flush_reports_false(url: str) -> None:
    store = AuditStore(url)
    for i in range(300):
        store.submit(entry(f"r{i}"))
    store.close()
    assert not store.flush(timeout=0.2)  # the writer is gone: nothing can confirm the commit
    reopened = AuditStore(url)
    try:
        assert reopened.counts()["requests"] == 300
    finally:
        reopened.close()
