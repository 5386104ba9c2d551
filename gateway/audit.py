"""The audit store: one record per request, never a raw value (SQLite by default, any SQLAlchemy URL)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, Integer, String, create_engine, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


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
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class AuditStore:
    def __init__(self, url: str) -> None:
        if url.startswith("sqlite:///"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = create_engine(url, pool_pre_ping=True)
        _Base.metadata.create_all(self.engine)

    def write(self, entry: AuditEntry) -> None:
        row = AuditRow(
            **{k: v for k, v in entry.__dict__.items()},
            n_spans=len(entry.spans),
            n_leaks=len(entry.leaks),
        )
        with Session(self.engine) as session, session.begin():
            session.add(row)

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

    def close(self) -> None:
        self.engine.dispose()
