"""Span-level differential privacy: a replacement drawn by the exponential mechanism.

For a sensitive span of label L, the replacement is drawn from a fixed candidate set for L (a
vocabulary that does not depend on the original) with probability proportional to
exp(ε·u(c, x) / (2Δu)), where u(c, x) ∈ [0, 1] is the utility of candidate c for the original x.
Because every utility lies in [0, 1], changing x moves any u by at most 1: the sensitivity Δu is 1.
What leaves the machine is then ε-differentially private with respect to the span (the candidate set
is public knowledge, as the attacker in `bench/privacy_utility.py` assumes). Sampling is
diffprivlib's `Exponential`, never our own sampler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import date

from diffprivlib.mechanisms import Exponential
from faker import Faker

from rewriters.surrogates import parse_date

SENSITIVITY = 1.0
_VOCABULARY_SIZE = 300
DATE_SCALE_DAYS = 3650.0  # dates ten years apart or more have no utility for each other


def _trigrams(text: str) -> set[str]:
    padded = f"  {text.casefold()} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def text_utility(candidate: str, original: str) -> float:
    """Character-trigram Jaccard similarity: spelling, length and script kept score higher."""
    a, b = _trigrams(candidate), _trigrams(original)
    return len(a & b) / len(a | b) if a | b else 0.0


def _faker_vocabulary(make: Callable[[Faker], str]) -> tuple[str, ...]:
    """A public, value-independent candidate set for one label."""
    faker = Faker(["en_US", "fr_FR", "de_DE", "es_ES", "it_IT"])
    faker.seed_instance(20261125)  # fixed: the candidate set is public and the same everywhere
    seen: dict[str, None] = {}
    for _ in range(_VOCABULARY_SIZE * 3):
        seen.setdefault(make(faker), None)
        if len(seen) == _VOCABULARY_SIZE:
            break
    return tuple(seen)


_TEXT_LABELS: dict[str, Callable[[Faker], str]] = {
    "PERSON": lambda f: f"{f.first_name()} {f.last_name()}",
    "LOCATION": lambda f: str(f.city()),
    "ORGANIZATION": lambda f: str(f.company()),
    "STREET_ADDRESS": lambda f: str(f.street_address()),
}
_DATE_LABELS = frozenset({"DATE_TIME", "DATE_OF_BIRTH"})
SUPPORTED_LABELS = frozenset(_TEXT_LABELS) | _DATE_LABELS
# Dates from 1920 to 2035, twice a month: the public candidate set for any date.
_DATES = tuple(date(y, m, d) for y in range(1920, 2036) for m in range(1, 13) for d in (1, 15))


class DpSampler:
    """Draws ε-DP replacements; vocabularies are built once per process, on first use."""

    def __init__(self) -> None:
        self._vocabularies: dict[str, tuple[str, ...]] = {}
        self._lock = threading.Lock()

    def _vocabulary(self, label: str) -> tuple[str, ...]:
        with self._lock:
            if label not in self._vocabularies:
                self._vocabularies[label] = _faker_vocabulary(_TEXT_LABELS[label])
            return self._vocabularies[label]

    def candidates(self, label: str, value: str) -> tuple[list[str], list[float]] | None:
        """The candidate set and each candidate's utility for `value`; None if `value` has no DP form."""
        if label in _DATE_LABELS:
            found = parse_date(value)
            if found is None:
                return None
            original, render = found
            utilities = [max(0.0, 1.0 - abs((d - original).days) / DATE_SCALE_DAYS) for d in _DATES]
            return [render(d) for d in _DATES], utilities
        if label in _TEXT_LABELS:
            vocabulary = self._vocabulary(label)
            return list(vocabulary), [text_utility(c, value) for c in vocabulary]
        return None

    def sample(self, label: str, value: str, epsilon: float) -> str | None:
        """One ε-DP draw for `value`, or None when the label or value has no candidate set."""
        if not 0 < epsilon < float("inf"):
            raise ValueError("dp_rewrite needs a finite ε > 0")
        space = self.candidates(label, value)
        if space is None:
            return None
        return draw(*space, epsilon)


def draw(candidates: list[str], utilities: list[float], epsilon: float) -> str:
    """One draw of the exponential mechanism over `candidates`, whose utilities lie in [0, 1] (Δu = 1)."""
    if not 0 < epsilon < float("inf"):
        raise ValueError("dp_rewrite needs a finite ε > 0")
    if not candidates or len(candidates) != len(utilities) or not all(0.0 <= u <= 1.0 for u in utilities):
        raise ValueError("the exponential mechanism needs candidates with utilities in [0, 1]")
    mechanism = Exponential(epsilon=epsilon, sensitivity=SENSITIVITY, utility=utilities, candidates=candidates)
    return str(mechanism.randomise())
