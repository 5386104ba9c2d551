"""The versioned artifact a policy names: a LoRA adapter, the vocabulary it found, and how it was made.

    DIR/meta.json          format, domain, base model and its SHA-256, prompt version, scoring, metrics,
                           and the SHA-256 of every other file
    DIR/adapter/           the peft LoRA adapter (adapter_config.json, adapter_model.safetensors)
    DIR/vocabulary.json    per label, the chosen phrases of the training pairs: a public, value-independent
                           candidate set for the exponential mechanism
    DIR/pairs.jsonl        the preference pairs it was trained on, for inspection

Loading checks every checksum and the base model's hash, so a corrupt or foreign artifact stops start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rewriters.damper.model import BaseModelError, base_model_sha256, load_base, quiet_peft
from rewriters.damper.prompt import PROMPT_VERSION
from rewriters.damper.rewriter import SpanRewriter
from rewriters.detectors.base import DetectorError
from rewriters.digest import sha256_file

FORMAT = "privgate-damper/1"


class DamperArtifactError(DetectorError):
    """A DAMPER artifact is missing, corrupt, or made for other base weights."""


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != "meta.json")


def seal(directory: Path, meta: dict[str, Any]) -> None:
    """Write meta.json with the checksum of every file already in `directory`."""
    files = {str(p.relative_to(directory)): sha256_file(p) for p in _files(directory)}
    record = {"format": FORMAT, "prompt_version": PROMPT_VERSION, **meta, "files": files}
    (directory / "meta.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


@dataclass(frozen=True)
class DamperArtifact:
    directory: Path
    meta: dict[str, Any]
    vocabulary: dict[str, list[str]]

    @property
    def adapter_dir(self) -> Path:
        return self.directory / "adapter"

    @property
    def labels(self) -> list[str]:
        return list(self.meta.get("labels", []))

    @classmethod
    def load(cls, directory: Path | str) -> DamperArtifact:
        """Read and verify an artifact (not the model: `open_rewriter` does that)."""
        root = Path(directory)
        try:
            meta = json.loads((root / "meta.json").read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise DamperArtifactError(f"DAMPER artifact {root}: no meta.json (run `privgate damper align`)") from exc
        except (OSError, ValueError) as exc:
            raise DamperArtifactError(f"DAMPER artifact {root}: unreadable meta.json") from exc
        if meta.get("format") != FORMAT:
            raise DamperArtifactError(f"DAMPER artifact {root}: format {meta.get('format')!r}, expected {FORMAT!r}")
        if meta.get("prompt_version") != PROMPT_VERSION:
            raise DamperArtifactError(f"DAMPER artifact {root} was aligned for another prompt: realign it")
        expected = meta.get("files") or {}
        for name, digest in expected.items():
            path = root / name
            if not path.is_file() or sha256_file(path) != digest:
                raise DamperArtifactError(f"DAMPER artifact {root}: {name} is missing or corrupt (checksum)")
        if "adapter/adapter_model.safetensors" not in expected or "vocabulary.json" not in expected:
            raise DamperArtifactError(f"DAMPER artifact {root}: adapter or vocabulary missing")
        vocabulary = json.loads((root / "vocabulary.json").read_text(encoding="utf-8"))
        return cls(root, meta, {str(k): [str(v) for v in vs] for k, vs in vocabulary.items()})

    def open_rewriter(self, **options: Any) -> SpanRewriter:
        """The aligned rewriter: base model checked against the recorded hash, adapter merged into it."""
        base = str(self.meta.get("base_model"))
        try:
            if base_model_sha256(base) != self.meta.get("base_model_sha256"):
                raise DamperArtifactError(
                    f"DAMPER artifact {self.directory} was aligned on other weights of {base!r}: realign it"
                )
            model, tokenizer = load_base(base)
        except BaseModelError as exc:
            raise DamperArtifactError(f"DAMPER artifact {self.directory}: {exc}") from exc
        from peft import PeftModel

        try:
            with quiet_peft():
                merged = PeftModel.from_pretrained(model, str(self.adapter_dir)).merge_and_unload()
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise DamperArtifactError(f"DAMPER artifact {self.directory}: adapter does not load") from exc
        merged.eval()
        return SpanRewriter(merged, tokenizer, **options)
