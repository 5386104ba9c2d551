"""`privgate secure distill` and `privgate secure train-head`: the MPC backend's offline steps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from secure_infer.mpc.config import MINILM

app = typer.Typer(help="MPC secure inference (CrypTen, two parties).", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """MPC secure inference (CrypTen, two parties)."""


def _stage_numbers(value: str, count: int) -> list[int]:
    if value.strip().lower() == "all":
        return list(range(1, count + 1))
    try:
        numbers = [int(part) for part in value.split(",") if part.strip()]
    except ValueError as exc:
        raise typer.BadParameter("--stages takes `all` or stage numbers such as 1,2") from exc
    if not numbers or any(not 1 <= n <= count for n in numbers):
        raise typer.BadParameter(f"--stages: numbers from 1 to {count}")
    return numbers


@app.command()
def distill(
    out: Annotated[Path, typer.Option(help="where to write the distilled checkpoint (.safetensors)")],
    model: Annotated[str, typer.Option(help="all-MiniLM-L6-v2 or a local BERT-family directory")] = MINILM,
    stages: Annotated[str, typer.Option(help="`all`, or which recipe stages to run, e.g. 1,2")] = "all",
    texts: Annotated[Path | None, typer.Option(help="unlabelled text, one per line (default: generated)")] = None,
    corpus_size: Annotated[int, typer.Option(help="generated texts when --texts is not given")] = 3000,
    steps: Annotated[int | None, typer.Option(min=1, help="override every stage's step count (quick runs)")] = None,
    batch: Annotated[int | None, typer.Option(min=1, help="override every stage's batch size")] = None,
    max_len: Annotated[int | None, typer.Option(min=4, help="cap every stage's sequence length")] = None,
    held_out: Annotated[int, typer.Option(min=1, help="texts kept aside for the cosine")] = 64,
    threads: Annotated[int, typer.Option(min=1, help="torch threads (1 on a busy machine)")] = 1,
    resume: Annotated[Path | None, typer.Option(help="start from an earlier distilled checkpoint")] = None,
    seed: Annotated[int, typer.Option(help="corpus, split and sampling seed")] = 0,
) -> None:
    """Distil the Ditto-style model (2Quad softmax, sigmoid GeLU) to match the original: the whole recipe.

    The four stages of `secure_infer.mpc.distill.RECIPE` run in order, each from the previous one's weights,
    with fixed seeds (the same inputs give the same checkpoint): about 25-35 minutes on one busy core.
    """
    import dataclasses

    import torch

    from secure_infer.mpc.corpus import default_corpus, read_corpus
    from secure_infer.mpc.distill import RECIPE, run_recipe
    from secure_infer.mpc.weights import model_dir

    chosen = [RECIPE[n - 1] for n in _stage_numbers(stages, len(RECIPE))]
    plan = tuple(
        dataclasses.replace(
            st,
            steps=steps or st.steps,
            batch=batch or st.batch,
            max_len=min(st.max_len, max_len or st.max_len),
        )
        for st in chosen
    )
    torch.set_num_threads(threads)
    corpus = read_corpus(str(texts)) if texts is not None else default_corpus(corpus_size, seed=seed)
    report = run_recipe(
        model_dir(model), corpus, out, plan, held_out=held_out, seed=seed, save_every=50, init=resume, log=typer.echo
    )
    typer.echo(f"{'stage':<40}{'steps':>6}{'loss first':>12}{'loss last':>11}{'cosine':>9}")
    for st in report.stages:
        typer.echo(f"{st.name:<40}{st.steps:>6}{st.first_loss:>12.4f}{st.last_loss:>11.4f}{st.cosine:>9.4f}")
    typer.echo(
        f"distilled in {report.seconds:.0f} s: held-out cosine to the original "
        f"{report.cosine_before:.4f} -> {report.cosine_after:.4f}; wrote {report.checkpoint}"
    )
    typer.echo(f"policy: mpc: {{model: {model}, mode: ditto, checkpoint: {out}}}")


@app.command("train-head")
def train_head(
    examples: Annotated[list[Path], typer.Option(help="JSONL with `text` and `label` (else the file name); repeat")],
    out: Annotated[Path, typer.Option(help="where to write the head (.safetensors), for `mpc: classifier:`")],
    model: Annotated[str, typer.Option(help="all-MiniLM-L6-v2 or a local BERT-family directory")] = MINILM,
    mode: Annotated[str, typer.Option(help="plain, or ditto (embeddings of the distilled model)")] = "plain",
    checkpoint: Annotated[Path | None, typer.Option(help="ditto: the distilled checkpoint")] = None,
    lang: Annotated[str | None, typer.Option(help="only rows with this `lang` (e.g. en)")] = None,
    max_len: Annotated[int, typer.Option(min=4)] = 64,
    held_out: Annotated[float, typer.Option(min=0.0, max=0.9, help="share kept aside for the accuracy")] = 0.2,
    threads: Annotated[int, typer.Option(min=1)] = 1,
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Train a classification head over the sentence embedding, for `POST /v1/classifications` under MPC."""
    import torch

    from secure_infer.mpc.train_head import read_examples
    from secure_infer.mpc.train_head import train_head as run_train_head
    from secure_infer.mpc.weights import model_dir

    if mode not in ("plain", "ditto"):
        raise typer.BadParameter("--mode is plain or ditto")
    torch.set_num_threads(threads)
    texts, labels = read_examples(examples, lang)
    report = run_train_head(
        model_dir(model), texts, labels, out, mode=mode, checkpoint=checkpoint, max_len=max_len,
        held_out=held_out, seed=seed,
    )  # fmt: skip
    typer.echo(
        f"{len(report.labels)} labels ({', '.join(report.labels)}): accuracy {report.train_accuracy:.3f} on "
        f"{report.train} training examples, {report.held_out_accuracy:.3f} on {report.held_out} held out"
    )
    typer.echo(f"wrote {report.path}; policy: mpc: {{model: {model}, mode: {mode}, classifier: {out}}}")
