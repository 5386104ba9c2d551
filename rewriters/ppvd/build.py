"""Stages 2 and 3: split high-risk passages into sentences, embed and index them, store their secure versions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rewriters.embedding import Embedder, load_embedder
from rewriters.ppvd.sentences import matchable, split_sentences
from rewriters.ppvd.store import HNSW_THRESHOLD, PpvdStoreError, StoreMeta, StoreTexts, write_store

Sanitise = Callable[[list[str]], list[str]]
EMBED_BATCH = 512


def store_sentences(passages: Sequence[str], sanitise: Sanitise, keep_unchanged: bool = False) -> StoreTexts:
    """Each passage's matchable sentences and their sanitised versions (one `sanitise` call per passage,
    so a value detected in one sentence is also caught in its siblings).

    A sentence the sanitiser leaves as it is holds nothing the policy protects: replacing it would
    change nothing, and template sentences shared by many records would only cause false matches.
    It is left out unless `keep_unchanged`."""
    passage_of: list[int] = []
    high_risk: list[str] = []
    secure: list[str] = []
    for number, passage in enumerate(passages):
        sentences = [s for s in split_sentences(passage) if matchable(s)]
        if not sentences:
            continue
        safe = sanitise(sentences)
        if len(safe) != len(sentences):
            raise PpvdStoreError("the sanitiser must return one text per sentence")
        for sentence, safe_sentence in zip(sentences, safe, strict=True):
            if keep_unchanged or safe_sentence != sentence:
                passage_of.append(number)
                high_risk.append(sentence)
                secure.append(safe_sentence)
    return StoreTexts(passage_of, high_risk, secure)


def build_store(
    passages: Sequence[str],
    out: Path,
    key: bytes,
    sanitise: Sanitise,
    embedder: Embedder | None = None,
    hnsw_threshold: int = HNSW_THRESHOLD,
    progress: Callable[[int], None] | None = None,
    keep_unchanged: bool = False,
) -> StoreMeta:
    """Build a store from high-risk passages; `progress` is told how many sentences were embedded so far."""
    embedder = embedder or load_embedder("all-MiniLM-L6-v2")
    texts = store_sentences(passages, sanitise, keep_unchanged)
    if not texts.high_risk:
        raise PpvdStoreError("no sentence to store: no high-risk passage holds anything the policy protects")
    chunks = []
    for start in range(0, len(texts.high_risk), EMBED_BATCH):
        chunks.append(embedder.embed(texts.high_risk[start : start + EMBED_BATCH]))
        if progress is not None:
            progress(min(start + EMBED_BATCH, len(texts.high_risk)))
    vectors = np.concatenate(chunks)
    return write_store(out, key, embedder, vectors, texts, len(passages), hnsw_threshold)
