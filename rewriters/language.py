"""Which language a text is in, so each text meets the NER pipeline of its own language."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from py3langid.langid import MODEL_FILE, LanguageIdentifier

# The languages privgate is built for; identification is restricted to them (fewer confusions).
SUPPORTED = ("en", "fr", "de", "es", "it", "zh")


class LanguageGuesser:
    def __init__(self, languages: Iterable[str] = SUPPORTED, min_confidence: float = 0.9) -> None:
        self._identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
        self._identifier.set_languages(list(languages))
        self._min_confidence = min_confidence
        self._lock = threading.Lock()  # the identifier keeps scratch state between calls

    def guess(self, text: str) -> str | None:
        """The language code, or None when the text is too short or mixed to tell."""
        with self._lock:
            language, confidence = self._identifier.classify(text)
        return str(language) if confidence >= self._min_confidence else None
