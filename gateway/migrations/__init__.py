"""The audit store's Alembic migrations, configured in code so they run from an installed package (no alembic.ini)."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

HERE = Path(__file__).parent
logging.getLogger("alembic").setLevel(logging.WARNING)  # it logs each connection's dialect; privgate logs changes


def config(connection: Connection | None = None) -> Config:
    """Alembic's configuration; env.py runs the migrations on `connection`, privgate's own."""
    cfg = Config()
    cfg.set_main_option("script_location", str(HERE).replace("%", "%%"))  # the value is %-interpolated
    cfg.set_main_option("path_separator", "os")
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The revision this version of privgate writes."""
    revision = ScriptDirectory.from_config(config()).get_current_head()
    assert revision is not None
    return revision


def current(connection: Connection) -> str | None:
    """The database's revision; None where no migration has run."""
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the database to `head()`; the caller commits (pass a connection from `engine.begin()`)."""
    command.upgrade(config(connection), "head")
