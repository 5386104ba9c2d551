"""What the exponential mechanism draws from for a `dp_rewrite` span a DAMPER artifact serves.

The candidate set is the aligned rewriter's k samples for the span plus the artifact's public vocabulary
for its label; each candidate's utility is cos(E(candidate), E(original)) clipped to [0, 1], so Δu = 1.

What that guarantees: the vocabulary is public and value-independent, so over it the draw is ε-DP with
respect to the span. The rewriter's samples are a function of the original when it sees the span (DAMPER's
setting), so for them the guarantee holds given the candidate set, as in DAMPER. An artifact aligned with
`--strict` never shows the rewriter the span's value (only its context and label): its samples then do not
depend on the value and the whole draw is ε-DP with respect to it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from rewriters.damper.artifact import DamperArtifact
from rewriters.damper.prompt import SpanItem
from rewriters.damper.rewriter import SpanRewriter
from rewriters.embedding import Embedder, Vectors


class DamperCandidates:
    """Candidate sets and utilities for the labels one artifact serves; shared by a process's requests."""

    def __init__(
        self,
        rewriter: SpanRewriter,
        vocabulary: dict[str, list[str]],
        labels: Sequence[str],
        embedder: Embedder,
        k: int = 4,
    ) -> None:
        self.rewriter, self.vocabulary, self.labels = rewriter, vocabulary, frozenset(labels)
        self.embedder, self.k = embedder, k
        self._vocabulary_vectors: dict[str, Vectors] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_artifact(
        cls,
        artifact: DamperArtifact,
        embedder: Embedder,
        k: int = 4,
        max_new_tokens: int = 16,
        timeout_s: float | None = None,
    ) -> DamperCandidates:
        rewriter = artifact.open_rewriter(
            max_new_tokens=max_new_tokens, timeout_s=timeout_s, sees_span=bool(artifact.meta.get("sees_span", True))
        )
        return cls(rewriter, artifact.vocabulary, artifact.labels, embedder, k)

    def serves(self, label: str) -> bool:
        return label in self.labels

    def _vocabulary_of(self, label: str) -> tuple[list[str], Vectors]:
        phrases = self.vocabulary.get(label, [])
        with self._lock:
            if label not in self._vocabulary_vectors:
                self._vocabulary_vectors[label] = (
                    self.embedder.embed(phrases) if phrases else np.zeros((0, self.embedder.dim), np.float32)
                )
            return phrases, self._vocabulary_vectors[label]

    def candidate_sets(self, items: Sequence[SpanItem]) -> list[tuple[list[str], list[float]]]:
        """Per item: candidates (never the original) and their utilities; one generate call for all items.
        Raises whatever the rewriter raises: the caller applies the policy's fallback."""
        return self._scored(items, self.rewriter.propose(items, self.k))

    def vocabulary_only(self, items: Sequence[SpanItem]) -> list[tuple[list[str], list[float]]]:
        """The same sets without the rewriter's samples (the benchmark's vocabulary-only baseline)."""
        return self._scored(items, [[] for _ in items])

    def _scored(self, items: Sequence[SpanItem], proposals: list[list[str]]) -> list[tuple[list[str], list[float]]]:
        sampled = [p for proposed in proposals for p in proposed]
        vectors = self.embedder.embed([i.value for i in items] + sampled)
        originals, sampled_vectors = vectors[: len(items)], vectors[len(items) :]
        out, offset = [], 0
        for item, proposed, original in zip(items, proposals, originals, strict=True):
            phrases, vocabulary_vectors = self._vocabulary_of(item.label)
            own = sampled_vectors[offset : offset + len(proposed)]
            offset += len(proposed)
            candidates: dict[str, float] = {}
            for phrase, vector in zip([*proposed, *phrases], np.vstack([own, vocabulary_vectors]), strict=True):
                if phrase.casefold() != item.value.casefold():
                    candidates.setdefault(phrase, float(np.clip(vector @ original, 0.0, 1.0)))
            out.append((list(candidates), list(candidates.values())))
        return out
