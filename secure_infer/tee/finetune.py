"""Split fine-tuning: the client computes the first k layers, the enclave trains its LoRA adapter and seals it.

The adapter's weights exist in the clear only inside the enclave process; what leaves it is the loss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secure_infer.backend import BackendError
from secure_infer.tee.config import TeeConfig
from secure_infer.tee.runner import SplitRunner


def read_examples(path: Path, tokenizer: Any, max_tokens: int = 256) -> list[list[int]]:
    """Token ids per JSONL line: `{"text": ...}` as is, `{"messages": [...]}` through the chat template."""
    examples = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "messages" in row:
            ids = list(tokenizer.apply_chat_template(row["messages"], return_dict=False))
        elif "text" in row:
            ids = list(tokenizer(row["text"])["input_ids"])
        else:
            raise ValueError(f"line {number}: expected a `text` or `messages` field")
        if len(ids) >= 2:
            examples.append(ids[:max_tokens])
    if not examples:
        raise ValueError("no training example in the data file")
    return examples


def _activations(runner: SplitRunner, ids: list[int]) -> dict[str, np.ndarray]:
    with torch.no_grad():
        hidden = runner.client(input_ids=torch.tensor([ids]), use_cache=False).last_hidden_state
    return {"hidden": hidden.numpy(), "labels": np.asarray([ids], dtype=np.int64)}


def evaluate(runner: SplitRunner, examples: list[list[int]]) -> float:
    """Mean loss of the enclave's current adapter over the examples (no update)."""
    losses = [runner.link.call({"op": "eval"}, _activations(runner, ids))[0]["loss"] for ids in examples]
    return float(np.mean(losses))


def split_finetune(
    cfg: TeeConfig,
    data: Path,
    epochs: int = 3,
    lr: float = 1e-3,
    runner: SplitRunner | None = None,
    report: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train the enclave's adapter on `data`, seal it to `cfg.adapter_path`; mean loss per epoch."""
    if not cfg.adapter_path:
        raise BackendError("split fine-tuning needs `adapter_path` (where the enclave seals the adapter)")
    own = runner is None
    runner = runner or SplitRunner(cfg)
    try:
        examples = read_examples(data, runner.tokenizer)
        history = []
        for epoch in range(epochs):
            losses = [
                runner.link.call({"op": "train", "lr": lr}, _activations(runner, ids))[0]["loss"] for ids in examples
            ]
            history.append(float(np.mean(losses)))
            if report is not None:
                report(epoch, history[-1])
        runner.link.call({"op": "seal"})
        return history
    finally:
        if own:
            runner.close()
