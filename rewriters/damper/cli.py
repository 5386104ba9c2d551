"""`privgate damper ...`: align a domain's rewriter, or see what it proposes for a span."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rewriters.damper.align import AlignConfig, align_domain, default_judge
from rewriters.damper.model import DEFAULT_BASE
from rewriters.detectors.base import DetectorError

app = typer.Typer(
    help="DAMPER's rewriting policy: a local LM aligned by prototype-guided preferences.", no_args_is_help=True
)
_POLICIES = Path(__file__).resolve().parents[2] / "policies"


@app.callback()
def damper() -> None:
    """Align and inspect DAMPER rewriters."""


@app.command("align")
def align_command(
    domain: Annotated[str, typer.Option(help="a shipped domain (medical, finance, legal) or any name")],
    out: Annotated[Path, typer.Option(file_okay=False, help="artifact directory to write")],
    examples: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="labelled JSONL; default: the shipped training set of the domain"),
    ] = None,
    prototypes: Annotated[
        Path | None,
        typer.Option(file_okay=False, help="the domain's prototype artifact (the judge); default: the shipped one"),
    ] = None,
    base: Annotated[str, typer.Option(help="smollm2-135m-instruct or a local causal-LM directory")] = DEFAULT_BASE,
    spans: Annotated[int, typer.Option(min=4, help="training spans to sample")] = AlignConfig.spans,
    samples: Annotated[int, typer.Option(min=2, help="candidates per span for the judge")] = AlignConfig.samples,
    epochs: Annotated[int, typer.Option(min=1, help="DPO epochs")] = AlignConfig.epochs,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    strict: Annotated[bool, typer.Option(help="the rewriter never sees the span's value (strict DP)")] = False,
    threads: Annotated[int, typer.Option(min=1, help="torch threads")] = 2,
) -> None:
    """Sample, judge with the prototypes, build preference pairs, train a LoRA adapter with DPO, write it."""
    import torch

    torch.set_num_threads(threads)
    examples = examples or _POLICIES / "training" / f"{domain}.jsonl"
    prototypes = prototypes or _POLICIES / "artifacts" / domain
    if not examples.is_file():
        typer.echo(f"error: no examples at {examples}", err=True)
        raise typer.Exit(2)
    try:
        judge = default_judge(prototypes)
    except DetectorError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    config = AlignConfig(spans=spans, samples=samples, epochs=epochs, seed=seed)
    metrics = align_domain(domain, examples, judge, out, base, config, sees_span=not strict, say=typer.echo)
    typer.echo(f"wrote {out}: {json.dumps(metrics)}")
