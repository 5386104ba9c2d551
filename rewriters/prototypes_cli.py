"""`privgate prototypes ...`: train a domain's privacy prototypes into a versioned artifact directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from rewriters.detectors.prototypes import PrototypeArtifactError, PrototypeDetector, encoder_for
from rewriters.embedding import EmbedderError, load_embedder
from rewriters.prototypes_train import TrainConfig, read_examples, train

app = typer.Typer(help="Learnt domain privacy prototypes (DAMPER-style).", no_args_is_help=True)


@app.callback()
def prototypes() -> None:
    """Train and check domain privacy prototype artifacts."""


@app.command("train")
def train_command(
    domain: Annotated[str, typer.Option(help="domain name written into the artifact, e.g. medical")],
    examples: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="labelled examples, JSONL")],
    out: Annotated[Path, typer.Option(file_okay=False, help="artifact directory to write")],
    embedder: Annotated[str, typer.Option(help="all-MiniLM-L6-v2 or multilingual-e5-small")] = "all-MiniLM-L6-v2",
    epochs: Annotated[int, typer.Option(min=1, help="passes of the contrastive head")] = 30,
    seed: Annotated[int, typer.Option(help="random seed (split, batches, k-means)")] = 0,
    threads: Annotated[int, typer.Option(min=1, help="torch threads")] = 2,
) -> None:
    """Train on labelled spans, calibrate thresholds on a held-out split, write the artifact."""
    import torch

    torch.set_num_threads(threads)
    try:
        data = read_examples(examples)
    except (ValueError, KeyError, json.JSONDecodeError) as exc:
        typer.echo(f"error: {examples}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if len(data) < 10:
        typer.echo("error: need at least 10 labelled examples", err=True)
        raise typer.Exit(2)
    try:
        encoder = encoder_for(load_embedder(embedder))
    except (EmbedderError, PrototypeArtifactError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    config = TrainConfig(epochs=epochs, seed=seed, log=typer.echo)
    model, report = train(data, encoder, config, domain=domain)
    model.save(out)
    PrototypeDetector.load(out, load_embedder(embedder))  # what was written must load back
    typer.echo(f"wrote {out} ({model.meta['train_seconds']} s); held-out: {json.dumps(report)}")
