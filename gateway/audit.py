"""The audit store: one record per request, never a raw value (SQLite by default, any SQLAlchemy URL).

Its schema comes from the Alembic migrations in `gateway.migrations`, never from `create_all`.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    create_engine,
    event,
    func,
    insert,
    select,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from gateway import migrations

log = logging.getLogger("privgate.audit")


class _Base(DeclarativeBase):
    pass


class AuditRow(_Base):
    __tablename__ = "audit_records"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    tenant: Mapped[str] = mapped_column(String(128), index=True)
    domain: Mapped[str] = mapped_column(String(64))
    policy_version: Mapped[str] = mapped_column(String(64))
    endpoint: Mapped[str] = mapped_column(String(128))
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    backend: Mapped[str] = mapped_column(String(32))
    streamed: Mapped[bool] = mapped_column(Boolean)
    outcome: Mapped[str] = mapped_column(String(32))  # forwarded, dry_run, refused, failed
    status: Mapped[int] = mapped_column(Integer)
    upstream_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(String(64), nullable=True)  # an error code, never a message
    n_spans: Mapped[int] = mapped_column(Integer)
    n_leaks: Mapped[int] = mapped_column(Integer, index=True)
    spans: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    leaks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    overhead_ms: Mapped[float] = mapped_column(Float)
    upstream_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    backend_facts: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # secure backends
    ppvd_hits: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)  # store ids, scores


@dataclass
class AuditEntry:
    """What the gateway fills in while it handles a request."""

    request_id: str
    tenant: str
    domain: str
    policy_version: str
    endpoint: str
    model: str | None = None
    backend: str = "cloud"
    streamed: bool = False
    outcome: str = "failed"
    status: int = 500
    upstream_status: int | None = None
    error: str | None = None
    spans: list[dict[str, Any]] = field(default_factory=list)
    leaks: list[dict[str, Any]] = field(default_factory=list)
    overhead_ms: float = 0.0
    upstream_ms: float | None = None
    backend_facts: dict[str, Any] | None = None
    ppvd_hits: list[dict[str, Any]] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI read while the gateway writes; NORMAL sync is durable across process crashes
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class SchemaError(RuntimeError):
    """The audit database is not at the schema this privgate writes; the message says what to run."""


def connect(url: str) -> Engine:
    """An engine for the store's URL; a SQLite file gets its directory and WAL mode."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def ensure_schema(engine: Engine) -> None:
    """SQLite stays zero-setup, so it is migrated here. Any other database is shared by replicas and migrated
    once by the operator (`privgate db upgrade`), so here it is only checked."""
    wanted = migrations.head()
    with engine.begin() as connection:
        found = migrations.current(connection)
        if found != wanted and engine.dialect.name == "sqlite":
            migrations.upgrade(connection)
            log.info("audit: SQLite schema migrated from %s to revision %s", found or "nothing", wanted)
            return
    if found != wanted:
        where = engine.url.render_as_string(hide_password=True)
        state = f"is at schema revision {found}" if found else "has no privgate schema"
        raise SchemaError(
            f"the audit database {where} {state}, this privgate needs revision {wanted}: "
            "run `privgate db upgrade` with the same configuration, then start again"
        )


def check_schema(url: str) -> None:
    """`ensure_schema` for start-up, on a short-lived engine, so a database that is behind fails fast."""
    engine = connect(url)
    try:
        ensure_schema(engine)
    finally:
        engine.dispose()


class AuditStore:
    """Requests hand records to `submit`, which never blocks; one writer thread commits them in batches."""

    def __init__(self, url: str) -> None:
        self.engine = connect(url)
        try:
            ensure_schema(self.engine)
        except BaseException:
            self.engine.dispose()
            raise
        self._queue: queue.SimpleQueue[AuditEntry | threading.Event | None] = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._drain, name="privgate-audit", daemon=True)
        self._writer.start()

    def submit(self, entry: AuditEntry) -> None:
        self._queue.put(entry)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is committed."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def write(self, *entries: AuditEntry) -> None:
        # one executemany INSERT: the ORM's unit of work cost ~20% of a pass-through request's CPU (bench/load.py)
        rows = [{**vars(e), "n_spans": len(e.spans), "n_leaks": len(e.leaks)} for e in entries]
        with self.engine.begin() as connection:
            connection.execute(insert(AuditRow), rows)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            batch: list[AuditEntry] = []
            markers: list[threading.Event] = []
            while item is not None:
                if isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    batch.append(item)
                if len(batch) >= 256 or self._queue.empty():
                    break
                item = self._queue.get()
            if batch:
                try:
                    self.write(*batch)
                except Exception as exc:  # losing records must be loud, and must not kill the writer
                    log.error("audit: %d record(s) could not be written (%s)", len(batch), type(exc).__name__)
            for marker in markers:
                marker.set()
            if item is None:
                return

    def recent(self, limit: int = 20, *, leaks_only: bool = False, tenant: str | None = None) -> list[AuditRow]:
        query = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit)
        if leaks_only:
            query = query.where(AuditRow.n_leaks > 0)
        if tenant:
            query = query.where(AuditRow.tenant == tenant)
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.scalars(query))

    def counts(self) -> dict[str, int]:
        with Session(self.engine) as session:
            total, leaks, spans = session.execute(
                select(
                    func.count(AuditRow.id),
                    func.coalesce(func.sum(AuditRow.n_leaks), 0),
                    func.coalesce(func.sum(AuditRow.n_spans), 0),
                )
            ).one()
        return {"requests": int(total), "leaks": int(leaks), "spans": int(spans)}

    def ping(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(select(1))

    def close(self) -> None:
        self._queue.put(None)
        self._writer.join(timeout=30)
        self.engine.dispose()
