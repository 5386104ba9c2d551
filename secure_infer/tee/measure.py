"""The enclave's measurement: SHA-256 over its code, its configuration and the weights of its slice.

Both sides compute it the same way, so a client that has the model can know the value to expect; an adapter is
not measured (it is data, sealed under a key bound to this measurement).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from torch import nn

from secure_infer.tee.attestation import DEV_ROOT
from secure_infer.tee.config import TeeConfig

CODE_DIR = Path(__file__).resolve().parent


def measured_config(cfg: TeeConfig, kind: str) -> dict[str, Any]:
    """What of the configuration changes the enclave's behaviour (no addresses, no key or adapter paths)."""
    model = cfg.model if not Path(cfg.model).expanduser().is_dir() else Path(cfg.model).name
    lora = {"rank": cfg.lora_rank, "alpha": cfg.lora_alpha, "targets": sorted(cfg.lora_targets)}
    return {
        "model": model,
        "kind": kind,
        "split_layers": cfg.split_layers,
        "lora": lora if cfg.adapter_path and kind == "decoder" else None,
        "root": DEV_ROOT,
    }


def measure(config: dict[str, Any], module: nn.Module) -> str:
    digest = hashlib.sha256(b"privgate-tee measurement v1\0")
    for path in sorted(CODE_DIR.glob("*.py")):
        data = path.read_bytes()
        digest.update(f"code:{path.name}:{len(data)}\0".encode())
        digest.update(data)
    digest.update(b"config\0" + json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().contiguous().cpu().numpy().tobytes()
        digest.update(f"weight:{name}:{tensor.dtype}:{tuple(tensor.shape)}\0".encode())
        digest.update(data)
    return digest.hexdigest()
