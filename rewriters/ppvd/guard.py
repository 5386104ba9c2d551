"""Stage 4: match-and-replace. Answer sentences close to a high-risk sentence become its secure version.

Per answer: sentences whose normalised form is a stored sentence are replaced at once (a keyed hash,
no embedding). A near match must also repeat the stored sentence's identifiers: at least half of the
answer sentence's identifying tokens (names, long numbers; `sentences.identifying`), leaving out those
common in the store (months, years), must be rare tokens of the stored sentence it matches, with one
of its long numbers if it has any, and those shared tokens must be jointly too rare to meet by chance
(`CHANCE_MATCHES`). So a template sentence about another patient ("Mr Jones was admitted on ...") is
not taken for a stored one, and sentences with no rare token at all are never embedded, which keeps
clean answers cheap. The rest are embedded in one batch and searched top-k in FAISS; a sentence that
repeats most of one stored sentence's rare tokens in very different words (a fragment cut out of it)
is matched through an inverted index of those tokens. High-risk plaintext is not kept in memory after
load: only keyed hashes of its sentences and tokens, and the secure texts.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from rewriters.embedding import Embedder, EmbedderError, load_embedder
from rewriters.ppvd.sentences import identifying, matchable, normalise, sentence_spans, stream_cut
from rewriters.ppvd.store import PpvdStoreError, StoreMeta, derive_key, read_meta, read_store

RARE_FRACTION = 0.01  # a token in at most this share of stored sentences (and at least RARE_MIN) is "rare"
RARE_MIN = 3
TOP_K = 4  # candidates per sentence: the nearest may be a look-alike that shares no rare token
# A sentence that repeats most of one stored sentence's rare tokens (at least two) is a leak of it even
# when it is worded so differently that the embeddings are far apart ("Home: 7 Elm Row, Dunmore." cut
# out of a longer stored sentence); a loose cosine floor still applies.
LEXICAL_MIN_SHARED = 2
LEXICAL_FLOOR = 0.5
MIN_COVERAGE = 0.5  # share of the answer sentence's identifying tokens the stored sentence must hold
# The shared tokens must also be jointly rare: by chance (tokens independent), fewer than this many
# stored sentences would hold them all. Two common first names or a surname and one 4-digit group are
# not enough in a 100k-sentence store; a name with a record number is.
CHANCE_MATCHES = 0.01


@dataclass(frozen=True)
class Hit:
    """What the audit keeps of a replacement: where it matched and how closely; never the text."""

    store_id: str
    passage: int
    sentence: int
    score: float
    exact: bool


@dataclass(frozen=True)
class GuardResult:
    text: str
    hits: list[Hit]


@dataclass(frozen=True)
class _Query:
    """One answer sentence to look up: its rare tokens, how many a match must hold, its numbers."""

    index: int
    rare: frozenset[int]
    need: int
    numbers: frozenset[int]


class _Keyed:
    """Keyed BLAKE2b digests, so hashes of record sentences and words are useless without the key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def __call__(self, value: str) -> bytes:
        return hashlib.blake2b(value.encode(), key=self._key, digest_size=16).digest()

    def int(self, value: str) -> int:
        return int.from_bytes(hashlib.blake2b(value.encode(), key=self._key, digest_size=8).digest())


class PpvdGuard:
    """One loaded store with its threshold; thread-safe for concurrent answers (the embedder locks)."""

    def __init__(
        self,
        meta: StoreMeta,
        index: faiss.Index,
        secure: list[str],
        passages: list[int],
        exact: dict[bytes, int],
        rare: list[frozenset[int]],
        surprise: dict[int, float],
        common: frozenset[int],
        hasher: _Keyed,
        embedder: Embedder,
        threshold: float,
    ) -> None:
        self.meta = meta
        self.threshold = threshold
        self._index = index
        self._secure = secure
        self._passages = passages
        self._exact = exact
        self._rare = rare  # per stored sentence: keyed hashes of its rare tokens
        self._surprise = surprise  # per rare token: log(stored sentences / sentences holding it)
        self._bar = math.log(max(len(rare), 1) / CHANCE_MATCHES)
        self._common = common  # identifying-looking tokens too frequent in the store to identify anyone
        self._postings: dict[int, list[int]] = {}
        for stored, hashed in enumerate(rare):
            for h in hashed:
                self._postings.setdefault(h, []).append(stored)
        self._hash = hasher
        self._embedder = embedder

    @classmethod
    def load(
        cls,
        directory: Path | str,
        key: bytes,
        threshold: float = 0.85,
        *,
        embedder: Embedder | None = None,
    ) -> PpvdGuard:
        """Raises `PpvdStoreError` if the store is missing, corrupt, from another embedder or the key is wrong."""
        directory = Path(directory)
        if embedder is None:
            try:
                embedder = load_embedder(read_meta(directory).embedder)
            except EmbedderError as exc:
                raise PpvdStoreError(f"PPVD store {directory}: its embedder cannot be loaded") from exc
        meta, index, texts = read_store(directory, key, embedder)
        hasher = _Keyed(derive_key(key, "match"))
        exact: dict[bytes, int] = {}
        df: Counter[str] = Counter()
        words = []
        for i, sentence in enumerate(texts.high_risk):
            exact.setdefault(hasher(normalise(sentence)), i)
            words.append(identifying(sentence))
            df.update(words[-1])
        limit = max(RARE_MIN, int(RARE_FRACTION * len(texts.high_risk)))
        rare = [frozenset(hasher.int(t) for t in w if df[t] <= limit) for w in words]
        common = frozenset(hasher.int(t) for t, n in df.items() if n > limit)
        total = max(len(words), 1)
        surprise = {hasher.int(t): math.log(total / n) for t, n in df.items() if n <= limit}
        return cls(meta, index, texts.secure, texts.passage, exact, rare, surprise, common, hasher, embedder, threshold)

    @property
    def store_id(self) -> str:
        return self.meta.store_id

    def match(self, sentences: Sequence[str]) -> list[Hit | None]:
        """The best stored sentence for each input sentence, if it clears the threshold (one embed call)."""
        found: list[Hit | None] = [None] * len(sentences)
        queries: list[_Query] = []
        for i, sentence in enumerate(sentences):
            if not matchable(sentence):
                continue
            stored = self._exact.get(self._hash(normalise(sentence)))
            if stored is not None:
                found[i] = self._hit(stored, 1.0, exact=True)
                continue
            ident = {t: self._hash.int(t) for t in identifying(sentence)}
            ident = {t: h for t, h in ident.items() if h not in self._common}
            rare = frozenset(h for h in ident.values() if h in self._postings)
            if rare:
                numbers = frozenset(h for t, h in ident.items() if t.isdigit())
                queries.append(_Query(i, rare, max(1, math.ceil(len(ident) * MIN_COVERAGE)), numbers))
        if queries:
            vectors = np.ascontiguousarray(self._embedder.embed([sentences[q.index] for q in queries]))
            scores, ids = self._index.search(vectors, min(TOP_K, self._index.ntotal))
            for row, query in enumerate(queries):
                hit = self._semantic(query, scores[row], ids[row]) or self._lexical(query, vectors[row])
                if hit is not None:
                    found[query.index] = self._hit(*hit, exact=False)
        return found

    def _holds(self, query: _Query, stored: int) -> bool:
        """Does the stored sentence hold enough of this sentence's identifiers (one of its numbers if it has any),
        and are those jointly too rare to meet by chance?"""
        shared = query.rare & self._rare[stored]
        if len(shared) < query.need or (query.numbers and not shared & query.numbers):
            return False
        return sum(self._surprise[h] for h in shared) >= self._bar

    def _semantic(self, query: _Query, scores: np.ndarray, ids: np.ndarray) -> tuple[int, float] | None:
        """The nearest stored sentence above the threshold that holds this sentence's identifiers."""
        for score, stored in zip(scores, ids, strict=True):
            if stored < 0 or score < self.threshold:
                return None
            if self._holds(query, int(stored)):
                return int(stored), float(score)
        return None

    def _lexical(self, query: _Query, vector: np.ndarray) -> tuple[int, float] | None:
        """The stored sentence holding most of this sentence's rare tokens (two at least), if close enough."""
        if len(query.rare) < max(query.need, LEXICAL_MIN_SHARED):
            return None
        counts = Counter(stored for h in query.rare for stored in self._postings[h])
        for stored, shared in counts.most_common(TOP_K):
            if shared < LEXICAL_MIN_SHARED or not self._holds(query, stored):
                continue
            score = float(np.dot(self._index.reconstruct(stored), vector))
            if score >= LEXICAL_FLOOR:
                return stored, score
        return None

    def _hit(self, stored: int, score: float, exact: bool) -> Hit:
        return Hit(self.store_id, self._passages[stored], stored, round(score, 4), exact)

    def guard_text(self, text: str) -> GuardResult:
        spans = sentence_spans(text)
        hits = self.match([text[a:b] for a, b in spans])
        out: list[str] = []
        pos = 0
        kept: list[Hit] = []
        for (start, end), hit in zip(spans, hits, strict=True):
            if hit is None:
                continue
            out.append(text[pos:start])
            out.append(self._secure[hit.sentence])
            pos = end
            kept.append(hit)
        out.append(text[pos:])
        return GuardResult("".join(out), kept)

    def stream(self) -> StreamGuard:
        return StreamGuard(self)


@dataclass
class StreamGuard:
    """One answer stream: holds back only the unfinished sentence, emits the rest (guarded) at once."""

    guard: PpvdGuard
    hits: list[Hit] = field(default_factory=list)
    _buffer: str = ""

    def feed(self, chunk: str) -> str:
        self._buffer += chunk
        cut = stream_cut(self._buffer)
        if cut == 0:
            return ""
        return self._emit(cut)

    def flush(self) -> str:
        return self._emit(len(self._buffer)) if self._buffer else ""

    def _emit(self, cut: int) -> str:
        done, self._buffer = self._buffer[:cut], self._buffer[cut:]
        result = self.guard.guard_text(done)
        self.hits.extend(result.hits)
        return result.text
