"""`privgate ppvd probe|build`: find what a model memorised, then build the store that guards answers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="PPVD: find memorised records and replace them in answers.", no_args_is_help=True)
console = Console()

SecretFile = Annotated[
    Path | None,
    typer.Option(help="file holding the gateway secret (default: $PRIVGATE_SECRET_KEY)", exists=True, dir_okay=False),
]


def _store_key(secret_file: Path | None) -> bytes:
    from rewriters.ppvd.store import derive_key

    if secret_file is not None:
        secret = secret_file.read_bytes().strip()
    else:
        secret = os.environ.get("PRIVGATE_SECRET_KEY", "").encode()
    if len(secret) < 16:
        console.print("[red]no gateway secret:[/red] pass --secret-file or set PRIVGATE_SECRET_KEY (16+ characters)")
        raise typer.Exit(2)
    return derive_key(secret)


@app.command()
def probe(
    corpus: Annotated[Path, typer.Option(help="JSONL of {id, text} records", exists=True, dir_okay=False)],
    upstream: Annotated[str, typer.Option(help="OpenAI-compatible base URL, e.g. http://host:8000/v1")],
    model: Annotated[str, typer.Option(help="model name to probe")],
    out: Annotated[Path, typer.Option(help="results JSONL (appended; ids already there are skipped)")] = Path(
        "ppvd-probe.jsonl"
    ),
    concurrency: Annotated[int, typer.Option(min=1, help="requests in flight")] = 8,
    prefix_ratio: Annotated[float, typer.Option(min=0.1, max=0.9, help="share of each record given as prefix")] = 0.5,
    embed: Annotated[bool, typer.Option(help="also score embedding similarity (all-MiniLM-L6-v2)")] = True,
) -> None:
    """Stage 1: prompt the model with each record's prefix and flag records it reproduces."""
    from rewriters.embedding import load_embedder
    from rewriters.ppvd.corpus import read_corpus
    from rewriters.ppvd.probe import ProbeConfig
    from rewriters.ppvd.probe import probe as run_probe

    records = read_corpus(corpus)
    config = ProbeConfig(prefix_ratio=prefix_ratio, concurrency=concurrency)
    embedder = load_embedder("all-MiniLM-L6-v2") if embed else None
    api_key = os.environ.get("PRIVGATE_PPVD_API_KEY")
    summary = asyncio.run(run_probe(records, upstream, model, out, embedder=embedder, config=config, api_key=api_key))
    console.print(
        f"{summary.probed} probed, {summary.skipped} already done, {summary.failed} failed; "
        f"{summary.high_risk} high-risk this run → {out}"
    )
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def build(
    corpus: Annotated[Path, typer.Option(help="JSONL of {id, text} records", exists=True, dir_okay=False)],
    policy: Annotated[str, typer.Option(help="domain whose detection and actions sanitise the secure store")],
    out: Annotated[Path, typer.Option(help="new store directory (must not exist or be empty)")],
    high_risk: Annotated[
        Path | None, typer.Option("--high-risk", help="probe results: store only high-risk records", exists=True)
    ] = None,
    all_records: Annotated[bool, typer.Option("--all", help="store the whole corpus")] = False,
    policy_dir: Annotated[Path | None, typer.Option(help="policy directory (default: the shipped one)")] = None,
    secret_file: SecretFile = None,
) -> None:
    """Stages 2-3: embed and index the high-risk sentences; store their sanitised versions, encrypted."""
    from policies import load_policies
    from rewriters.detect import DetectionEngine
    from rewriters.detectors.presidio import AnalyzerCache
    from rewriters.ppvd.build import build_store
    from rewriters.ppvd.corpus import read_corpus
    from rewriters.ppvd.probe import read_high_risk
    from rewriters.ppvd.sanitise import policy_sanitiser

    if (high_risk is None) == (not all_records):
        console.print("[red]choose what to store:[/red] --high-risk PROBE_RESULTS or --all")
        raise typer.Exit(2)
    key = _store_key(secret_file)
    policies = load_policies(policy_dir)
    if policy not in policies:
        console.print(f"[red]no policy named {policy!r}[/red] (loaded: {', '.join(sorted(policies))})")
        raise typer.Exit(2)
    records = read_corpus(corpus)
    if high_risk is not None:
        keep = read_high_risk(high_risk)
        records = [r for r in records if r.id in keep]
    chosen = policies[policy]
    sanitise = policy_sanitiser(chosen, DetectionEngine.for_policy(chosen, AnalyzerCache()))
    meta = build_store([r.text for r in records], out, key, sanitise)
    console.print(
        f"store {meta.store_id} → {out}: {meta.passages} passages, {meta.sentences} sentences, index {meta.index_kind}"
    )
