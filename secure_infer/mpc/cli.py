"""`privgate secure distill`: recover the accuracy of the Ditto-style MPC model by distillation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from secure_infer.mpc.config import MINILM

app = typer.Typer(help="MPC secure inference (CrypTen, two parties).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """MPC secure inference (CrypTen, two parties)."""


@app.command()
def distill(
    out: Annotated[Path, typer.Option(help="where to write the distilled checkpoint (.safetensors)")],
    model: Annotated[str, typer.Option(help="all-MiniLM-L6-v2 or a local BERT-family directory")] = MINILM,
    texts: Annotated[Path | None, typer.Option(help="unlabelled text, one per line (default: generated)")] = None,
    corpus_size: Annotated[int, typer.Option(help="generated texts when --texts is not given")] = 3000,
    steps: Annotated[int, typer.Option(min=1, help="700 at batch 16: about 13 min on one busy core")] = 700,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    max_len: Annotated[int, typer.Option(min=4)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 3e-4,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (1 on a busy machine)")] = 1,
    resume: Annotated[Path | None, typer.Option(help="continue from an earlier distilled checkpoint")] = None,
    attention_weight: Annotated[float, typer.Option(min=0.0, help="weight of the attention-map loss")] = 0.0,
    seed: Annotated[int, typer.Option(help="corpus and sampling seed")] = 0,
) -> None:
    """Fine-tune the 2Quad-softmax (sigmoid-GeLU) model to match the original's embeddings."""
    import torch

    from secure_infer.mpc.corpus import default_corpus, read_corpus
    from secure_infer.mpc.distill import distill as run_distill
    from secure_infer.mpc.weights import model_dir

    torch.set_num_threads(threads)
    corpus = read_corpus(str(texts)) if texts is not None else default_corpus(corpus_size, seed=seed)
    report = run_distill(
        model_dir(model),
        corpus,
        out,
        steps=steps,
        batch=batch,
        max_len=max_len,
        lr=lr,
        init=resume,
        attention_weight=attention_weight,
        seed=seed,
        save_every=50,
        log=typer.echo,
    )
    typer.echo(
        f"distilled in {report.seconds:.0f} s ({report.steps} steps): held-out cosine to the original "
        f"{report.cosine_before:.4f} -> {report.cosine_after:.4f}; wrote {report.checkpoint}"
    )
    typer.echo(f"policy: mpc: {{model: {model}, mode: ditto, checkpoint: {out}}}")
