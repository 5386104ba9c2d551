"""Each tenant's differential-privacy budget, per window, in the audit database.

One row per (tenant, window). A spend is a single conditional UPDATE (`spent + ε <= limit`), so
concurrent requests, in one process or in several replicas sharing PostgreSQL, can never overspend:
the database serialises the updates of a row and re-checks the condition for each. ε is stored in
millionths as an integer, so concurrent spends add up exactly.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import BigInteger, Column, Connection, Engine, MetaData, String, Table, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from policies.schema import DpConfig

MICRO = 1_000_000
_FORMATS = {"hour": "%Y-%m-%dT%H", "day": "%Y-%m-%d", "month": "%Y-%m"}

dp_budget = Table(
    "dp_budget",
    MetaData(),
    Column("tenant", String(128), primary_key=True),
    Column("window", String(16), primary_key=True),
    Column("spent_micro", BigInteger, nullable=False),
)


def window_key(window: str, now: datetime | None = None) -> str:
    """The current window's name in UTC, e.g. '2026-11-25' for a daily budget."""
    return (now or datetime.now(UTC)).strftime(_FORMATS[window])


class BudgetLedger:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def spend(self, tenant: str, epsilon: float, limit: float, window: str, now: datetime | None = None) -> bool:
        """Take ε from the tenant's current window if the limit allows; False (nothing taken) if not."""
        key, amount = window_key(window, now), round(epsilon * MICRO)
        with self.engine.begin() as connection:
            self._ensure_row(connection, tenant, key)
            taken = connection.execute(
                update(dp_budget)
                .where(dp_budget.c.tenant == tenant, dp_budget.c.window == key)
                .where(dp_budget.c.spent_micro + amount <= round(limit * MICRO))
                .values(spent_micro=dp_budget.c.spent_micro + amount)
            )
            return taken.rowcount == 1

    def _ensure_row(self, connection: Connection, tenant: str, key: str) -> None:
        values = {"tenant": tenant, "window": key, "spent_micro": 0}
        if self.engine.dialect.name == "postgresql":
            connection.execute(postgresql_insert(dp_budget).values(**values).on_conflict_do_nothing())
        elif self.engine.dialect.name == "sqlite":
            connection.execute(sqlite_insert(dp_budget).values(**values).on_conflict_do_nothing())
        else:  # other databases: insert and let the primary key refuse a duplicate
            with contextlib.suppress(IntegrityError), connection.begin_nested():
                connection.execute(dp_budget.insert().values(**values))

    def spent(self, tenant: str) -> dict[str, float]:
        """ε spent by a tenant in each window on record, newest first."""
        query = select(dp_budget.c.window, dp_budget.c.spent_micro).where(dp_budget.c.tenant == tenant)
        with self.engine.connect() as connection:
            rows = connection.execute(query.order_by(dp_budget.c.window.desc())).all()
        return {window: spent / MICRO for window, spent in rows}


@dataclass(frozen=True)
class TenantBudget:
    """The `rewriters.rewrite.Budget` of one request: its tenant, under its policy's DP settings."""

    ledger: BudgetLedger
    tenant: str
    dp: DpConfig

    def spend(self, epsilon: float) -> bool:
        return self.ledger.spend(self.tenant, epsilon, self.dp.budget, self.dp.window)
