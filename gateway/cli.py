"""The `privgate` command: serve, scan, audit, policy check, db upgrade/current."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gateway.logs import configure_logging
from gateway.settings import ECHO, Settings, load_settings

app = typer.Typer(help="privgate: a privacy gateway in front of cloud LLMs.", no_args_is_help=True)
policy_app = typer.Typer(help="Policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")
db_app = typer.Typer(help="The audit database's schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
console = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="YAML config file (PRIVGATE_* env overrides)")
]


def _settings(config: Path | None, **overrides: object) -> Settings:
    try:
        return load_settings(config, **overrides)
    except Exception as exc:
        console.print(f"[red]configuration error:[/red] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="port to bind")] = None,
    workers: Annotated[int, typer.Option(min=1, help="worker processes (each loads its own models)")] = 1,
    config: ConfigOption = None,
) -> None:
    """Run the gateway (on the built-in echo model unless upstream base URLs are configured)."""
    import os
    import tempfile

    import uvicorn

    from gateway.app import create_app
    from gateway.runtime import Runtime

    settings = _settings(config, host=host, port=port)
    configure_logging(settings.log_level, settings.log_format)
    if workers > 1:
        # each worker builds its app from the environment: the config file path travels there,
        # and metrics are shared through prometheus-client's multiprocess directory
        os.environ["PRIVGATE_CONFIG_FILE"] = str(config or "")
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="privgate-metrics-")
        # what every worker would otherwise race to create: the secret key and the SQLite schema
        from gateway.audit import check_schema
        from gateway.secret import load_secret

        load_secret(settings)
        check_schema(settings.database_url)
        uvicorn.run(
            "gateway.app:app_from_environment",
            factory=True,
            workers=workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            log_config=None,
        )
        return
    try:
        runtime = Runtime.build(settings)
    except Exception as exc:
        console.print(f"[red]privgate cannot start:[/red] {exc}")
        raise typer.Exit(1) from exc
    for name, base in (("OpenAI", settings.openai_base_url), ("Anthropic", settings.anthropic_base_url)):
        where = "the built-in echo model (no cloud configured)" if base == ECHO else base
        console.print(f"{name}-style requests go to {where}")
    console.print(f"domains: {', '.join(sorted(runtime.policies))}; default: {settings.default_domain}")
    uvicorn.run(
        create_app(settings, runtime=runtime),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers go through ours (JSON, with request ids)
    )


def _detect_one(domain: str | None, config: Path | None):  # type: ignore[no-untyped-def]
    from gateway.runtime import Runtime

    settings = _settings(config)
    runtime = Runtime.build(settings)
    name = domain or settings.default_domain
    if name not in runtime.policies:
        console.print(f"[red]unknown domain {name!r}[/red]; known: {', '.join(sorted(runtime.policies))}")
        raise typer.Exit(2)
    return runtime, runtime.policies[name], runtime.engines[name]


@app.command()
def scan(
    text: Annotated[str | None, typer.Argument(help="text to scan")] = None,
    jsonl: Annotated[Path | None, typer.Option(help="JSONL of {id, text, spans}; writes detected spans")] = None,
    domain: Annotated[str | None, typer.Option(help="policy domain")] = None,
    tenant: Annotated[str, typer.Option(help="tenant whose surrogates to show")] = "default",
    config: ConfigOption = None,
) -> None:
    """Show what privgate detects in a text and what it would send; or label a JSONL set for scoring."""
    if (text is None) == (jsonl is None):
        console.print("[red]give either a TEXT or --jsonl FILE[/red]")
        raise typer.Exit(2)
    runtime, policy, engine = _detect_one(domain, config)
    if jsonl is not None:
        with jsonl.open(encoding="utf-8") as lines:
            for line in lines:
                if not line.strip():
                    continue
                record = json.loads(line)
                spans = engine.detect([record["text"]])[0]
                record["spans"] = [
                    {
                        "start": s.start,
                        "end": s.end,
                        "label": s.label,
                        "score": round(s.score, 3),
                        "detector": s.detector,
                    }
                    for s in spans
                ]
                sys.stdout.write(json.dumps(record, ensure_ascii=False) + "\n")
        return
    assert text is not None
    spans = engine.detect([text])
    rewritten, session = runtime.rewriter.rewrite([text], spans, policy, tenant)
    table = Table("label", "detector", "score", "action", "text")
    for span in spans[0]:
        table.add_row(
            span.label,
            span.detector,
            f"{span.score:.2f}",
            policy.action_for(span.label).value,
            text[span.start : span.end],
        )
    console.print(table)
    console.print("[bold]sent upstream:[/bold]")
    console.print(rewritten[0], markup=False, highlight=False)


@app.command()
def audit(
    limit: Annotated[int, typer.Option(help="how many recent requests")] = 20,
    leaks: Annotated[bool, typer.Option("--leaks", help="only requests with a leak")] = False,
    tenant: Annotated[str | None, typer.Option(help="only this tenant")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
    config: ConfigOption = None,
) -> None:
    """Recent requests: what was found, what was done, whether anything leaked."""
    from gateway.audit import AuditStore

    store = AuditStore(_settings(config).database_url)
    rows = store.recent(limit, leaks_only=leaks, tenant=tenant)
    if as_json:
        for row in rows:
            record = {c.name: getattr(row, c.name) for c in row.__table__.columns}
            sys.stdout.write(json.dumps(record, default=str, ensure_ascii=False) + "\n")
        return
    table = Table(
        "time",
        "request",
        "tenant",
        "domain",
        "endpoint",
        "outcome",
        "status",
        "spans",
        "leaks",
        "overhead ms",
    )
    for row in rows:
        labels: dict[str, int] = {}
        for span in row.spans:
            labels[span["label"]] = labels.get(span["label"], 0) + 1
        table.add_row(
            row.created_at.strftime("%Y-%m-%d %H:%M:%S"),
            row.request_id[:12],
            row.tenant,
            row.domain,
            row.endpoint,
            row.outcome,
            str(row.status),
            ", ".join(f"{k}×{v}" for k, v in sorted(labels.items())) or "-",
            f"[red]{row.n_leaks}[/red]" if row.n_leaks else "0",
            f"{row.overhead_ms:.1f}",
        )
    console.print(table)
    totals = store.counts()
    console.print(f"{totals['requests']} requests, {totals['spans']} spans, {totals['leaks']} leaks in the store")


@policy_app.command("check")
def policy_check(files: Annotated[list[Path], typer.Argument(help="policy YAML files")]) -> None:
    """Validate policy files; each error comes with its line."""
    from policies import check_policy_file

    failed = False
    for path in files:
        policy, issues = check_policy_file(path)
        if policy is None:
            failed = True
            for issue in issues:
                console.print(
                    f"{path}:{issue.line or 1}: {issue.location}: {issue.message}"
                    if issue.location
                    else f"{path}:{issue.line or 1}: {issue.message}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
        else:
            console.print(f"{path}: ok (policy {policy.name!r} version {policy.version})")
    raise typer.Exit(1 if failed else 0)


def _db_revision(config: Path | None, *, upgrade: bool) -> tuple[str, str | None, str]:
    """(database shown without its password, its revision, the revision this privgate needs)."""
    from gateway import migrations
    from gateway.audit import connect

    engine = connect(_settings(config).database_url)
    try:
        with engine.begin() as connection:
            if upgrade:
                migrations.upgrade(connection)
            revision = migrations.current(connection)
    except Exception as exc:  # unreachable server, bad credentials...: one line, not a traceback
        console.print(f"[red]audit database error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
    return engine.url.render_as_string(hide_password=True), revision, migrations.head()


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> None:
    """Migrate the audit database to this privgate's schema (run once before starting replicas on PostgreSQL)."""
    where, revision, _ = _db_revision(config, upgrade=True)
    console.print(f"{where}: at revision {revision} (head)", markup=False, highlight=False, soft_wrap=True)


@db_app.command("current")
def db_current(config: ConfigOption = None) -> None:
    """Print the audit database's schema revision."""
    _, revision, head = _db_revision(config, upgrade=False)
    state = "head" if revision == head else f"head is {head}: run `privgate db upgrade`"
    console.print(f"{revision or 'none'} ({state})", markup=False, highlight=False, soft_wrap=True)


budget_app = typer.Typer(help="Differential-privacy budgets.", no_args_is_help=True)
app.add_typer(budget_app, name="budget")


@budget_app.command("show")
def budget_show(tenant: Annotated[str, typer.Argument(help="tenant name")], config: ConfigOption = None) -> None:
    """ε a tenant spent in each window on record (the policy's dp.budget is the limit per window)."""
    from gateway.audit import connect, ensure_schema
    from gateway.budget import BudgetLedger

    engine = connect(_settings(config).database_url)
    try:
        ensure_schema(engine)
        spent = BudgetLedger(engine).spent(tenant)
    finally:
        engine.dispose()
    if not spent:
        console.print(f"tenant {tenant!r} has spent no ε", markup=False, highlight=False)
        return
    table = Table("window", "ε spent")
    for window, epsilon in spent.items():
        table.add_row(window, f"{epsilon:.6g}")
    console.print(table)


# The learnt-detection, PPVD and secure-inference commands live beside the code they drive.
from rewriters.damper.cli import app as damper_app  # noqa: E402
from rewriters.ppvd.cli import app as ppvd_app  # noqa: E402
from rewriters.prototypes_cli import app as prototypes_app  # noqa: E402
from secure_infer.mpc.cli import app as mpc_app  # noqa: E402
from secure_infer.tee.cli import app as tee_app  # noqa: E402

app.add_typer(prototypes_app, name="prototypes")
app.add_typer(damper_app, name="damper")
app.add_typer(ppvd_app, name="ppvd")
secure_app = typer.Typer(help="Secure-inference backends: 2-party MPC and TEE split inference.", no_args_is_help=True)
for backend_app in (mpc_app, tee_app):  # one `privgate secure` group, as the policies' `backend:` names both
    secure_app.registered_commands.extend(backend_app.registered_commands)
    secure_app.registered_groups.extend(backend_app.registered_groups)
app.add_typer(secure_app, name="secure")
