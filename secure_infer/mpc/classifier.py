"""A sequence-classification head for the MPC encoder: party 1's weights, evaluated on shares.

Two sources, both held by the model owner (party 1) like the encoder's weights:
- a local BERT-family `*ForSequenceClassification` directory: `config.json` with `id2label`, and
  `model.safetensors` with `classifier.weight/bias` and, if present, the BERT pooler (dense + tanh over the
  [CLS] state, as HuggingFace computes it);
- a small safetensors head file over sentence embeddings (mean-pooled, L2-normalised by default, as
  all-MiniLM-L6-v2's sentence-transformers output): tensors `weight` (labels x hidden) and `bias`, the label
  names as JSON in the file's metadata (`labels`), optionally `normalize: "false"`.

Only the head's public shape (label names, pooling) is told to party 0; the logits are revealed to party 0
alone, which turns them into probabilities in the clear.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from secure_infer.backend import BackendError
from secure_infer.mpc.weights import State

__all__ = [
    "HeadSpec",
    "head_logits_plain",
    "inspect_head",
    "load_head",
    "save_head_file",
]

_POOLER = ("pooler.dense.weight", "bert.pooler.dense.weight")


@dataclass(frozen=True)
class HeadSpec:
    """What both parties know about the head: label names, how the encoder output is pooled, its width."""

    labels: tuple[str, ...]
    hidden: int
    pooling: Literal["cls", "mean"] = "mean"
    pooler: bool = False  # BERT's dense + tanh over the [CLS] state before the classifier
    normalize: bool = False  # L2-normalise the pooled vector first (heads over sentence embeddings)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadSpec:
        return cls(**{**data, "labels": tuple(data["labels"])})


def _labels_from_config(cfg: dict[str, Any]) -> tuple[str, ...]:
    id2label = cfg.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        raise BackendError("MPC classifier directory: config.json has no id2label")
    order = sorted(id2label, key=int)
    if [int(k) for k in order] != list(range(len(order))):
        raise BackendError("MPC classifier directory: id2label keys must be 0..n-1")
    return tuple(str(id2label[k]) for k in order)


def inspect_head(path: str | Path) -> HeadSpec:
    """Check that a head exists and is well formed, reading names, shapes and metadata only (no weights)."""
    path = Path(path).expanduser()
    if path.is_dir():
        config, weights = path / "config.json", path / "model.safetensors"
        if not config.is_file() or not weights.is_file():
            raise BackendError(f"MPC classifier directory {path.name!r} needs config.json and model.safetensors")
        labels = _labels_from_config(json.loads(config.read_text(encoding="utf-8")))
        with safe_open(str(weights), framework="pt") as f:
            keys = set(f.keys())
            if "classifier.weight" not in keys or "classifier.bias" not in keys:
                raise BackendError(f"MPC classifier directory {path.name!r} has no classifier.weight/bias")
            rows, hidden = f.get_slice("classifier.weight").get_shape()
        pooler = any(k in keys for k in _POOLER)
        spec = HeadSpec(labels, int(hidden), pooling="cls" if pooler else "mean", pooler=pooler)
    elif path.is_file():
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                keys = set(f.keys())
                if keys != {"weight", "bias"}:
                    raise BackendError(f"MPC classifier head {path.name!r} must hold exactly `weight` and `bias`")
                rows, hidden = f.get_slice("weight").get_shape()
        except BackendError:
            raise
        except Exception as exc:  # safetensors raises its own error types for a corrupt header
            raise BackendError(f"MPC classifier head {path.name!r} is not a safetensors file") from exc
        try:
            labels = tuple(str(x) for x in json.loads(meta["labels"]))
        except (KeyError, ValueError, TypeError) as exc:
            raise BackendError(f"MPC classifier head {path.name!r} has no `labels` metadata") from exc
        normalize = meta.get("normalize", "true").lower() not in ("false", "0", "no")
        spec = HeadSpec(labels, int(hidden), pooling="mean", normalize=normalize)
    else:
        raise BackendError(f"MPC classifier head not found: {path.name!r}")
    if len(spec.labels) != int(rows):
        raise BackendError(f"MPC classifier head has {rows} outputs but {len(spec.labels)} labels")
    return spec


def load_head(path: str | Path) -> tuple[HeadSpec, State]:
    """The head's spec and weights (party 1): `classifier.weight/bias` and, if any, `pooler.weight/bias`."""
    path = Path(path).expanduser()
    spec = inspect_head(path)
    if path.is_dir():
        raw = load_file(str(path / "model.safetensors"))
        state = {"classifier.weight": raw["classifier.weight"], "classifier.bias": raw["classifier.bias"]}
        prefix = next((k.removesuffix("dense.weight") for k in _POOLER if k in raw), None)
        if prefix is not None:
            state["pooler.weight"] = raw[f"{prefix}dense.weight"]
            state["pooler.bias"] = raw[f"{prefix}dense.bias"]
    else:
        raw = load_file(str(path))
        state = {"classifier.weight": raw["weight"], "classifier.bias": raw["bias"]}
    return spec, {k: v.float().contiguous() for k, v in state.items()}


def save_head_file(
    path: Path, weight: torch.Tensor, bias: torch.Tensor, labels: list[str], normalize: bool = True
) -> Path:
    """Write a head file over sentence embeddings (the second format above)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"labels": json.dumps(labels), "normalize": "true" if normalize else "false", "format": "privgate-mpc-head"}
    save_file({"weight": weight.float().contiguous(), "bias": bias.float().contiguous()}, str(path), metadata=meta)
    return path


def head_logits_plain(spec: HeadSpec, state: State, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plaintext logits from the encoder's last hidden states (n, L, d): the oracle for the MPC head."""
    mean = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    pooled = hidden[:, 0] if spec.pooling == "cls" else mean
    if spec.pooler:
        pooled = torch.tanh(pooled @ state["pooler.weight"].T + state["pooler.bias"])
    if spec.normalize:
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return pooled @ state["classifier.weight"].T + state["classifier.bias"]
