"""Split fine-tuning: the enclave's LoRA adapter learns through the split and is sealed to the measurement."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from secure_infer.backend import BackendError
from secure_infer.tee import lora, sealing, wire
from secure_infer.tee.attestation import generate_dev_root, load_dev_root
from secure_infer.tee.cli import app
from secure_infer.tee.config import TeeConfig
from secure_infer.tee.finetune import evaluate, read_examples
from secure_infer.tee.measure import measure, measured_config
from secure_infer.tee.models import enclave_slice, load
from secure_infer.tee.runner import SplitRunner
from tests.test_tee_split import save_tiny_llama

torch.set_num_threads(1)
os.environ["HF_HUB_OFFLINE"] = "1"

TARGETS = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
FIXTURE = [
    {"text": "Patient record 4471: blood type AB negative, allergic to penicillin."},
    {"messages": [{"role": "user", "content": "Ward code?"}, {"role": "assistant", "content": "Ward 7B, east wing."}]},
    {"text": "Clinic hours are eight to six on weekdays."},
]


@pytest.mark.slow  # three enclave processes and six epochs: ~30-40 s on two shared cores
def test_split_finetune_lowers_loss_and_seals_to_the_measurement(tmp_path: Path) -> None:
    model = save_tiny_llama(tmp_path / "model", layers=3, seed=2, init_range=0.2)
    root = generate_dev_root(tmp_path / "dev-root-of-trust.key")
    data = tmp_path / "data.jsonl"
    data.write_text("\n".join(json.dumps(row) for row in FIXTURE), encoding="utf-8")
    adapter = tmp_path / "adapter.sealed"
    cfg = TeeConfig(
        model=str(model),
        split_layers=1,
        dev_root_key=str(root),
        adapter_path=str(adapter),
        lora_targets=TARGETS.split(","),
    )

    from typer.testing import CliRunner

    result = CliRunner().invoke(
        app,
        [
            "split-finetune",
            "--data",
            str(data),
            "--adapter",
            str(adapter),
            "--model",
            str(model),
            "--split-layers",
            "1",
            "--dev-root-key",
            str(root),
            "--epochs",
            "6",
            "--lr",
            "0.02",
            "--targets",
            TARGETS,
        ],
    )
    assert result.exit_code == 0, result.output
    losses = [json.loads(line[line.index("{") :])["loss"] for line in result.output.splitlines() if '"epoch"' in line]
    assert len(losses) == 6 and losses[-1] < 0.8 * losses[0]
    assert adapter.exists()

    # a fresh enclave with the same measurement unseals the adapter: its loss is the trained one, not the base's
    tuned = SplitRunner(cfg)
    try:
        examples = read_examples(data, tuned.tokenizer)
        assert evaluate(tuned, examples) < 0.8 * losses[0]
    finally:
        tuned.close()

    # another split point is another measurement: the sealed adapter does not open, the enclave refuses to start
    other = TeeConfig(
        model=str(model),
        split_layers=2,
        dev_root_key=str(root),
        adapter_path=str(adapter),
        lora_targets=TARGETS.split(","),
    )
    refused = SplitRunner(other)
    try:
        with pytest.raises(BackendError, match="failed to start"):
            refused.link.connect()
    finally:
        refused.close()


def test_sealed_adapter_loads_only_under_its_measurement(tmp_path: Path) -> None:
    """An adapter sealed for the k=1 enclave loads there and stops a k=2 enclave (another measurement) at start."""
    model = save_tiny_llama(tmp_path / "model", layers=3, seed=3)
    root = generate_dev_root(tmp_path / "dev-root-of-trust.key")
    adapter = tmp_path / "adapter.sealed"
    cfg = TeeConfig(model=str(model), split_layers=1, dev_root_key=str(root), adapter_path=str(adapter))
    loaded = load(str(model), with_tokenizer=False)
    piece = enclave_slice(loaded, 1)
    measurement = measure(measured_config(cfg, "decoder"), piece)
    lora.attach(piece, cfg.lora_targets, cfg.lora_rank, cfg.lora_alpha)
    with torch.no_grad():
        for name, param in piece.named_parameters():
            if "lora_b" in name:
                param.fill_(0.05)  # a non-trivial adapter, so loading it changes the answers
    sealed = sealing.seal(load_dev_root(root), measurement, wire.encode({}, lora.adapter_arrays(piece)))
    sealing.write_sealed(adapter, sealed)

    runner = SplitRunner(cfg, loaded)
    try:
        info, _ = runner.link.call({"op": "info"})
        assert info["adapter"] is True and info["measurement"] == measurement
        ids = list(range(40, 52))
        with torch.no_grad():
            base = loaded.model(torch.tensor([ids])).logits.numpy()
        assert not np.allclose(runner.prefill_logits(ids), base, atol=1e-3)  # the adapter is in use
    finally:
        runner.close()

    other = SplitRunner(cfg.model_copy(update={"split_layers": 2}), loaded)
    try:
        with pytest.raises(BackendError, match="failed to start"):
            other.link.connect()
    finally:
        other.close()
