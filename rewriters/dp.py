"""Span-level differential privacy: a replacement drawn by the exponential mechanism.

For a sensitive span of label L, the replacement is drawn from a fixed candidate set for L (a
vocabulary that does not depend on the original) with probability proportional to
exp(ε·u(c, x) / (2Δu)), where u(c, x) ∈ [0, 1] is the utility of candidate c for the original x.
Because every utility lies in [0, 1], changing x moves any u by at most 1: the sensitivity Δu is 1.
What leaves the machine is then ε-differentially private with respect to the span (the candidate set
and each candidate's features are public knowledge, as the attacker in `bench/privacy_utility.py`
assumes). Sampling is diffprivlib's `Exponential`, never our own sampler.

Utility of a text candidate: with character trigrams alone, names and places are a near-uniform draw
at practical ε (almost every pair of names shares no trigram). So each candidate carries public
features: the Faker locale it came from and, for a person, the gender of its given name. The
original's culture is guessed from its words (Faker's public name and place lists of each locale, by
exact look-up, else a character-trigram naive Bayes), its gender from its given name
(`rewriters.names`), and u = 0.5·P(candidate's locale | original) + 0.3·[same gender] + 0.2·spelling
(0.7 and 0.3 where there is no gender). Each term lies in [0, 1] and the weights sum to 1, so u does
too and Δu = 1 still holds; the guess is a function of x alone, which the mechanism allows.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from diffprivlib.mechanisms import Exponential
from faker import Faker

from rewriters.names import Gender, gender_of
from rewriters.surrogates import parse_date

SENSITIVITY = 1.0
LOCALES = ("en_US", "fr_FR", "de_DE", "es_ES", "it_IT", "zh_CN")  # the six languages privgate serves
_PER_LOCALE = 50  # 300 candidates per label
_VOCABULARY_SEED = 20261125  # fixed: the candidate set is public and the same everywhere
_REFERENCE_SEED = 7  # the public sample each locale's places and companies are recognised by
DATE_SCALE_DAYS = 3650.0  # dates ten years apart or more have no utility for each other
W_CULTURE, W_GENDER, W_SPELLING = 0.5, 0.3, 0.2
_CJK = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"[^\W\d_]+")


def _trigrams(text: str) -> set[str]:
    padded = f"  {text.casefold()} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def text_utility(candidate: str, original: str) -> float:
    """Character-trigram Jaccard similarity: spelling, length and script kept score higher."""
    a, b = _trigrams(candidate), _trigrams(original)
    return len(a & b) / len(a | b) if a | b else 0.0


@dataclass(frozen=True)
class Candidate:
    """A public replacement and its public features."""

    text: str
    locale: str
    gender: Gender | None = None


def _person(faker: Faker, locale: str, i: int) -> Candidate:
    given = faker.first_name_female() if i % 2 == 0 else faker.first_name_male()
    family = faker.last_name()
    text = f"{family}{given}" if locale == "zh_CN" else f"{given} {family}"
    return Candidate(text, locale, gender_of(given) or ("female" if i % 2 == 0 else "male"))


_TEXT_LABELS: dict[str, Callable[[Faker], str]] = {
    "LOCATION": lambda f: str(f.city()),
    "ORGANIZATION": lambda f: str(f.company()),
    "STREET_ADDRESS": lambda f: str(f.street_address()),
}


def _make(label: str) -> Callable[[Faker, str, int], Candidate]:
    if label == "PERSON":
        return _person
    make = _TEXT_LABELS[label]
    return lambda faker, locale, _: Candidate(make(faker), locale)


def _faker_vocabulary(label: str) -> tuple[Candidate, ...]:
    """A public, value-independent candidate set for one label: the same number from each locale."""
    make, out = _make(label), list[Candidate]()
    for n, locale in enumerate(LOCALES):
        faker = Faker(locale)
        faker.seed_instance(_VOCABULARY_SEED + n)
        seen: dict[str, Candidate] = {}
        for i in range(_PER_LOCALE * 3):
            candidate = make(faker, locale, len(seen) if label == "PERSON" else i)
            seen.setdefault(candidate.text, candidate)
            if len(seen) == _PER_LOCALE:
                break
        out.extend(seen.values())
    return tuple(out)


def _person_lists(locale: str) -> tuple[frozenset[str], frozenset[str]]:
    """A locale's given names and family names from Faker's person provider."""
    provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
    given: set[str] = set()
    for attribute in ("first_names", "first_names_female", "first_names_male"):
        given.update(n.casefold() for n in getattr(provider, attribute, ()) if isinstance(n, str))
    family = {n.casefold() for n in getattr(provider, "last_names", ()) if isinstance(n, str)}
    return frozenset(given), frozenset(family)


class _Culture:
    """Guesses which locale a value comes from: exact look-up in each locale's public lists, else a
    character-trigram naive Bayes over them (tempered, so a long value is not over-confident)."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._exact: dict[str, list[frozenset[str]]] = {}  # locale -> [given, family] or [whole values]
        self._counts: dict[str, Counter[str]] = {}
        for n, locale in enumerate(LOCALES):
            if label == "PERSON":
                lists = list(_person_lists(locale))
            else:
                faker = Faker(locale)
                faker.seed_instance(_REFERENCE_SEED + n)
                lists = [frozenset(_TEXT_LABELS[label](faker).casefold() for _ in range(400))]
            self._exact[locale] = lists
            self._counts[locale] = Counter(
                t for entries in lists for entry in entries for w in _WORD.findall(entry) for t in _word_trigrams(w)
            )
        self._vocabulary = len(set().union(*self._counts.values()))
        self._totals = {locale: sum(counts.values()) for locale, counts in self._counts.items()}

    def guess(self, value: str) -> dict[str, float]:
        if _CJK.search(value):
            return {"zh_CN": 1.0}
        words = [w.casefold() for w in _WORD.findall(value)]
        if not words:
            return {locale: 1 / len(LOCALES) for locale in LOCALES}
        scores = {locale: self._log_likelihood(words, locale) + math.log1p(4 * self._hits(value, words, locale))
                  for locale in LOCALES if locale != "zh_CN"}  # fmt: skip
        top = max(scores.values())
        weights = {locale: math.exp(s - top) for locale, s in scores.items()}
        total = sum(weights.values())
        return {locale: w / total for locale, w in weights.items()}

    def _hits(self, value: str, words: list[str], locale: str) -> int:
        lists = self._exact[locale]
        if self._label == "PERSON":
            return int(words[0] in lists[0]) + int(len(words) > 1 and words[-1] in lists[1])
        return int(value.casefold() in lists[0])

    def _log_likelihood(self, words: list[str], locale: str) -> float:
        counts, total = self._counts[locale], self._totals[locale]
        grams = [t for w in words for t in _word_trigrams(w)]
        mean = sum(math.log((counts[t] + 1) / (total + self._vocabulary)) for t in grams) / len(grams)
        return mean * min(len(grams), 4)  # the evidence of ~4 trigrams at most: a guess, not a verdict


@functools.cache
def _word_trigrams(word: str) -> tuple[str, ...]:
    padded = f"^{word}$"
    return tuple(padded[i : i + 3] for i in range(len(padded) - 2))


def _gender(value: str) -> Gender | None:
    """The gender of a person's given name: the first word ('Jean-Luc' → 'Jean'), or a Chinese name's
    characters after its one-character family name."""
    if _CJK.search(value):
        compact = "".join(value.split())
        return gender_of(compact[1:]) if 2 <= len(compact) <= 4 else None
    words = _WORD.findall(value)
    return gender_of(words[0]) if words else None


_DATE_LABELS = frozenset({"DATE_TIME", "DATE_OF_BIRTH"})
SUPPORTED_LABELS = frozenset({"PERSON", *_TEXT_LABELS}) | _DATE_LABELS
# Dates from 1920 to 2035, twice a month: the public candidate set for any date.
_DATES = tuple(date(y, m, d) for y in range(1920, 2036) for m in range(1, 13) for d in (1, 15))


class DpSampler:
    """Draws ε-DP replacements; vocabularies and culture models are built once per process, on first use."""

    def __init__(self) -> None:
        self._vocabularies: dict[str, tuple[Candidate, ...]] = {}
        self._cultures: dict[str, _Culture] = {}
        self._lock = threading.Lock()

    def _vocabulary(self, label: str) -> tuple[Candidate, ...]:
        with self._lock:
            if label not in self._vocabularies:
                self._vocabularies[label] = _faker_vocabulary(label)
            return self._vocabularies[label]

    def _culture(self, label: str) -> _Culture:
        with self._lock:
            if label not in self._cultures:
                self._cultures[label] = _Culture(label)
            return self._cultures[label]

    def vocabulary(self, label: str) -> tuple[Candidate, ...]:
        """The public candidates of a text label, with their features."""
        return self._vocabulary(label)

    def utility(self, label: str, replacement: str, original: str) -> float:
        """u(replacement, original) ∈ [0, 1] for a text label; a replacement outside the vocabulary
        (a pseudonym) gets its features guessed the same way as the original's."""
        known = next((c for c in self._vocabulary(label) if c.text == replacement), None)
        culture = self._culture(label)
        seen = {known.locale: 1.0} if known else culture.guess(replacement)
        gender = known.gender if known else (_gender(replacement) if label == "PERSON" else None)
        return self._score(label, culture.guess(original), _gender(original) if label == "PERSON" else None,
                           seen, gender, text_utility(replacement, original))  # fmt: skip

    @staticmethod
    def _score(
        label: str,
        culture: dict[str, float],
        gender: Gender | None,
        seen_culture: dict[str, float],
        seen_gender: Gender | None,
        spelling: float,
    ) -> float:
        overlap = sum(p * culture.get(locale, 0.0) for locale, p in seen_culture.items())
        if label != "PERSON":
            return min(1.0, (W_CULTURE + W_GENDER) * overlap + W_SPELLING * spelling)
        same = 0.5 if gender is None or seen_gender is None else float(gender == seen_gender)
        return min(1.0, W_CULTURE * overlap + W_GENDER * same + W_SPELLING * spelling)

    def candidates(self, label: str, value: str) -> tuple[list[str], list[float]] | None:
        """The candidate set and each candidate's utility for `value`; None if `value` has no DP form."""
        if label in _DATE_LABELS:
            found = parse_date(value)
            if found is None:
                return None
            original, render = found
            utilities = [max(0.0, 1.0 - abs((d - original).days) / DATE_SCALE_DAYS) for d in _DATES]
            return [render(d) for d in _DATES], utilities
        if label in SUPPORTED_LABELS:
            vocabulary = self._vocabulary(label)
            culture = self._culture(label).guess(value)
            gender = _gender(value) if label == "PERSON" else None
            utilities = [
                self._score(label, culture, gender, {c.locale: 1.0}, c.gender, text_utility(c.text, value))
                for c in vocabulary
            ]
            return [c.text for c in vocabulary], utilities
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
