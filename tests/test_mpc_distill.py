"""Distillation of the Ditto-style (2Quad softmax, sigmoid GeLU) encoder, and the `distill` CLI command."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from policies.schema import Policy
from secure_infer.mpc.cli import app
from secure_infer.mpc.config import MpcConfig
from secure_infer.mpc.corpus import default_corpus
from secure_infer.mpc.distill import RECIPE, distill
from secure_infer.mpc.weights import load_weights, random_weights, save_model_dir
from tests.test_mpc import SPEC, VOCAB, WORDS


def _texts(n: int) -> list[str]:
    gen = torch.Generator().manual_seed(0)
    return [" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (4 + k % 8,), generator=gen)) for k in range(n)]


@pytest.fixture()
def tiny_dir(tmp_path: Path) -> Path:
    """A tiny encoder with peaked attention that matters to the output, as in a trained model.

    At BERT's random init attention is near uniform and the residual dominates, so 2Quad changes nothing
    there (cosine 1.0 before distillation); these scales bring the gap to about 0.04.
    """
    state = random_weights(SPEC, seed=3)
    for name in state:
        if name.endswith(("query.weight", "key.weight")):
            state[name] = state[name] * 30
        elif name.endswith(("value.weight", "attention.output.dense.weight")):
            state[name] = state[name] * 7
    return save_model_dir(tmp_path / "tiny", SPEC, state, VOCAB)


def test_distill_recovers_cosine_and_writes_a_loadable_checkpoint(tiny_dir: Path, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    out = tmp_path / "ditto.safetensors"
    report = distill(
        tiny_dir, _texts(200), out, steps=150, batch=16, max_len=16, lr=3e-3, held_out=32, attention_weight=1.0
    )
    assert report.cosine_before < 0.98  # 2Quad matters on this model
    assert 1 - report.cosine_after < (1 - report.cosine_before) * 0.75  # a good part of the gap closed
    _, base = load_weights(tiny_dir)
    _, tuned = load_weights(tiny_dir, out)
    assert torch.equal(base["embeddings.word_embeddings.weight"], tuned["embeddings.word_embeddings.weight"])
    assert not torch.equal(
        base["encoder.layer.0.intermediate.dense.weight"], tuned["encoder.layer.0.intermediate.dense.weight"]
    )


def _cli(tiny_dir: Path, texts: Path, out: Path, *extra: str) -> str:
    args = ["distill", "--out", str(out), "--model", str(tiny_dir), "--texts", str(texts), "--steps", "4",
            "--max-len", "16", "--held-out", "16", "--threads", "1", *extra]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_distill_cli_runs_the_whole_recipe_reproducibly(tiny_dir: Path, tmp_path: Path) -> None:
    """One command, every stage of the recipe in order, fixed seeds: two runs give the same checkpoint."""
    torch.set_num_threads(1)
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(_texts(80)), encoding="utf-8")
    first, second = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    output = _cli(tiny_dir, texts, first)
    for i, stage in enumerate(RECIPE, start=1):
        assert f"stage {i}/{len(RECIPE)} ({stage.name}): 4 steps" in output
        row = next(line for line in output.splitlines() if line.startswith(stage.name))
        loss_first, loss_last, cosine = (float(x) for x in row.split()[-3:])
        assert loss_first > 0 and loss_last > 0 and 0 < cosine <= 1
    assert "held-out cosine to the original" in output and "mode: ditto" in output
    _cli(tiny_dir, texts, second)
    _, a = load_weights(tiny_dir, first)
    _, b = load_weights(tiny_dir, second)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    only = _cli(tiny_dir, texts, tmp_path / "c.safetensors", "--stages", "2,4")
    assert "stage 1/2 (hidden states)" in only and "stage 2/2 (sentence embedding)" in only
    bad = CliRunner().invoke(app, ["distill", "--out", str(tmp_path / "d.safetensors"), "--stages", "5"])
    assert bad.exit_code != 0 and "--stages" in bad.output


def test_policy_mpc_section() -> None:
    policy = Policy.model_validate(
        {"name": "vault", "version": "1", "backend": "mpc", "mpc": {"mode": "ditto", "checkpoint": "d.safetensors"}}
    )
    assert policy.mpc is not None and policy.mpc.served_name() == "mpc/all-MiniLM-L6-v2"
    assert MpcConfig(model="/models/my-bert/").served_name() == "mpc/my-bert"
    with pytest.raises(ValueError):
        MpcConfig.model_validate({"mode": "fast"})
    assert len(default_corpus(10)) == 10
