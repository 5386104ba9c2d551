"""The PPVD store on disk: a versioned directory with a FAISS index and AES-GCM-encrypted texts.

Layout: `meta.json` (format version, store id, embedder name + fingerprint, counts, index kind,
created time, SHA-256 of the other files), `index.faiss`, `texts.bin` (nonce + AES-GCM ciphertext
of the high-risk and secure sentences, bound to the store id as associated data). Anything wrong
(missing file, changed bytes, other embedder, wrong key) raises `PpvdStoreError` at load, never later.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from rewriters.digest import sha256_file
from rewriters.embedding import Embedder, Vectors

FORMAT_VERSION = 1
META, INDEX, TEXTS = "meta.json", "index.faiss", "texts.bin"
HNSW_THRESHOLD = 20_000  # below: exact flat inner product; above: HNSW graph (sub-linear search)
HNSW_M, HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH = 32, 64, 96


class PpvdStoreError(RuntimeError):
    """A PPVD store that cannot be used (missing, corrupt, other embedder, wrong key). Says which, never the text."""


@dataclass(frozen=True)
class StoreMeta:
    format_version: int
    store_id: str
    embedder: str
    fingerprint: str
    dim: int
    passages: int
    sentences: int
    index_kind: str
    created: float
    sha256: dict[str, str]


@dataclass(frozen=True)
class StoreTexts:
    """Decrypted contents: per sentence, its passage number, its text and its sanitised (secure) version."""

    passage: list[int]
    high_risk: list[str]
    secure: list[str]


def derive_key(secret: bytes, purpose: str = "store") -> bytes:
    """A 32-byte key for one purpose, from the gateway secret (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"privgate-ppvd-" + purpose.encode()).derive(
        secret
    )


def build_index(vectors: Vectors, hnsw_threshold: int = HNSW_THRESHOLD) -> tuple[faiss.Index, str]:
    dim = vectors.shape[1]
    if len(vectors) < hnsw_threshold:
        index: faiss.Index = faiss.IndexFlatIP(dim)
        kind = "flat-ip"
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        kind = "hnsw-ip"
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index, kind


def write_store(
    out: Path,
    key: bytes,
    embedder: Embedder,
    vectors: Vectors,
    texts: StoreTexts,
    passages: int,
    hnsw_threshold: int = HNSW_THRESHOLD,
) -> StoreMeta:
    """Write a complete store to `out` atomically (built beside it, then renamed into place)."""
    if len(key) != 32:
        raise PpvdStoreError("the store key must be 32 bytes")
    if not len(texts.high_risk) == len(texts.secure) == len(texts.passage) == len(vectors):
        raise PpvdStoreError("store texts and vectors differ in length")
    if out.exists() and any(out.iterdir()):
        raise PpvdStoreError(f"{out} exists and is not empty; choose a new directory for a new store version")
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".ppvd-", dir=out.parent))
    try:
        store_id = uuid.uuid4().hex
        index, kind = build_index(vectors, hnsw_threshold)
        faiss.write_index(index, str(work / INDEX))
        plain = json.dumps(asdict(texts), ensure_ascii=False).encode()
        nonce = os.urandom(12)
        (work / TEXTS).write_bytes(nonce + AESGCM(key).encrypt(nonce, plain, store_id.encode()))
        meta = StoreMeta(
            format_version=FORMAT_VERSION,
            store_id=store_id,
            embedder=embedder.name,
            fingerprint=embedder.fingerprint(),
            dim=int(vectors.shape[1]),
            passages=passages,
            sentences=len(vectors),
            index_kind=kind,
            created=time.time(),
            sha256={name: sha256_file(work / name) for name in (INDEX, TEXTS)},
        )
        (work / META).write_text(json.dumps(asdict(meta), indent=2) + "\n", encoding="utf-8")
        if out.exists():
            out.rmdir()
        work.rename(out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return meta


def read_meta(directory: Path) -> StoreMeta:
    path = directory / META
    if not path.is_file():
        raise PpvdStoreError(f"no PPVD store at {directory} (missing {META})")
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        meta = StoreMeta(**data)
    except (ValueError, TypeError) as exc:
        raise PpvdStoreError(f"{directory}/{META} is not valid PPVD metadata") from exc
    if meta.format_version != FORMAT_VERSION:
        raise PpvdStoreError(f"store format {meta.format_version} is not supported (expected {FORMAT_VERSION})")
    return meta


def read_store(directory: Path, key: bytes, embedder: Embedder) -> tuple[StoreMeta, faiss.Index, StoreTexts]:
    """Load and check everything; raises PpvdStoreError on the first problem."""
    if len(key) != 32:
        raise PpvdStoreError("the store key must be 32 bytes")
    meta = read_meta(directory)
    if meta.embedder != embedder.name or meta.fingerprint != embedder.fingerprint():
        raise PpvdStoreError(
            f"store was built with embedder {meta.embedder!r} (other weights or model); rebuild with {embedder.name!r}"
        )
    for name in (INDEX, TEXTS):
        path = directory / name
        if not path.is_file():
            raise PpvdStoreError(f"PPVD store {directory} is missing {name}")
        if sha256_file(path) != meta.sha256.get(name):
            raise PpvdStoreError(f"PPVD store {directory}: {name} is corrupt (checksum differs)")
    blob = (directory / TEXTS).read_bytes()
    try:
        plain = AESGCM(key).decrypt(blob[:12], blob[12:], meta.store_id.encode())
    except (InvalidTag, ValueError) as exc:
        raise PpvdStoreError(f"PPVD store {directory}: cannot decrypt its texts (wrong key?)") from exc
    texts = StoreTexts(**json.loads(plain))
    try:
        index = faiss.read_index(str(directory / INDEX))
    except RuntimeError as exc:
        raise PpvdStoreError(f"PPVD store {directory}: the FAISS index does not load") from exc
    if index.ntotal != meta.sentences or index.d != meta.dim or len(texts.secure) != meta.sentences:
        raise PpvdStoreError(f"PPVD store {directory}: counts differ from its metadata")
    if isinstance(index, faiss.IndexHNSW):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    return meta, index, texts
