"""A small hand-written LoRA for the enclave slice: the domain's fine-tuning, trained and kept in the enclave."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class LoRALinear(nn.Module):
    """`base(x) + scale * B(A(x))`, with B zero at start so a fresh adapter leaves the model unchanged."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float) -> None:
        super().__init__()
        self.base = base
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.base(x) + (x @ self.lora_a.t() @ self.lora_b.t()) * self.scale
        return out


def attach(module: nn.Module, targets: list[str], rank: int, alpha: float, seed: int = 0) -> list[nn.Parameter]:
    """Wrap every Linear named in `targets`; freeze everything else; return the adapter's parameters."""
    torch.manual_seed(seed)
    for param in module.parameters():
        param.requires_grad_(False)
    found = [(name, sub) for name, sub in module.named_modules() if name.rsplit(".", 1)[-1] in targets]
    if not found:
        raise ValueError("no LoRA target module found in the enclave slice")
    for name, sub in found:
        if not isinstance(sub, nn.Linear):
            continue
        parent_name, _, child = name.rpartition(".")
        setattr(module.get_submodule(parent_name) if parent_name else module, child, LoRALinear(sub, rank, alpha))
    return [p for n, p in module.named_parameters() if "lora_" in n]


def adapter_arrays(module: nn.Module) -> dict[str, np.ndarray]:
    return {n: p.detach().cpu().numpy() for n, p in module.named_parameters() if "lora_" in n}


def load_adapter_arrays(module: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    params = dict(module.named_parameters())
    if set(arrays) != {n for n in params if "lora_" in n}:
        raise ValueError("the adapter does not match this slice's LoRA layout")
    with torch.no_grad():
        for name, value in arrays.items():
            params[name].copy_(torch.from_numpy(value))
