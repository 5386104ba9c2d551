"""Train a classification head over the MPC encoder's sentence embedding (`privgate secure train-head`).

A logistic regression on the mean-pooled, L2-normalised embedding of the plaintext model the parties will
evaluate (the original for `plain`, the distilled Ditto model for `ditto`), written as the head file that
`MpcConfig.classifier` names. Examples are JSONL rows with `text` and `label`; a row without `label` takes
its file's name, so the domain training sets (`policies/training/*.jsonl`) make a domain classifier as they are.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from secure_infer.mpc.classifier import save_head_file
from secure_infer.mpc.reference import DITTO, EXACT, encode, pad_ids
from secure_infer.mpc.tokenize import TextTokenizer
from secure_infer.mpc.weights import EncoderSpec, load_weights

__all__ = ["HeadReport", "read_examples", "split_examples", "train_head"]


@dataclass(frozen=True)
class HeadReport:
    labels: list[str]
    train: int
    held_out: int
    train_accuracy: float
    held_out_accuracy: float
    path: Path


def read_examples(paths: list[Path], lang: str | None = None) -> tuple[list[str], list[str]]:
    """Texts and labels from JSONL files (`label`, else the file's stem), optionally one `lang` only."""
    texts: list[str] = []
    labels: list[str] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            if lang is not None and row.get("lang", lang) != lang:
                continue
            texts.append(str(row["text"]))
            labels.append(str(row.get("label", path.stem)))
    if len(set(labels)) < 2:
        raise ValueError("a classification head needs examples of at least two labels")
    return texts, labels


def split_examples(texts: list[str], labels: list[str], held_out: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the training and held-out examples (a seeded shuffle: the benchmark rebuilds the same split)."""
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    cut = int(round(len(order) * (1.0 - held_out)))
    return order[:cut], order[cut:]


def _embed(state: dict[str, torch.Tensor], spec: EncoderSpec, ids: list[list[int]], ditto: bool) -> torch.Tensor:
    rows = []
    for lo in range(0, len(ids), 64):
        tensor, mask = pad_ids(ids[lo : lo + 64])
        with torch.no_grad():
            pooled, _ = encode(state, spec, tensor, mask, DITTO if ditto else EXACT)
        rows.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(rows)


def train_head(
    model_dir: Path,
    texts: list[str],
    labels: list[str],
    out: Path,
    *,
    mode: str = "plain",
    checkpoint: Path | None = None,
    max_len: int = 64,
    held_out: float = 0.2,
    steps: int = 300,
    lr: float = 0.5,
    weight_decay: float = 1e-4,
    seed: int = 0,
) -> HeadReport:
    """Fit the head (full-batch Adam on cross-entropy, fixed seed) and write it to `out`."""
    torch.manual_seed(seed)
    names = sorted(set(labels))
    target = torch.tensor([names.index(label) for label in labels])
    spec, state = load_weights(model_dir, checkpoint if mode == "ditto" else None)
    emb = _embed(state, spec, TextTokenizer(model_dir, max_len).ids(texts), ditto=mode == "ditto")
    train, test = split_examples(texts, labels, held_out, seed)
    head = torch.nn.Linear(emb.shape[1], len(names))
    opt = torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)
    x, y = emb[train], target[train]
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(head(x), y)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()

    def accuracy(index: list[int]) -> float:
        if not index:
            return float("nan")
        with torch.no_grad():
            return float((head(emb[index]).argmax(-1) == target[index]).float().mean())

    save_head_file(out, head.weight.detach(), head.bias.detach(), names, normalize=True)
    return HeadReport(names, len(train), len(test), accuracy(train), accuracy(test), out)
