"""Chinese person and place names from jieba's part-of-speech tags (nr*, ns)."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

import jieba
import jieba.posseg

from rewriters.spans import Span

_CJK = re.compile(r"[\u3400-\u9fff]")
_LABELS = {"nr": "PERSON", "nrfg": "PERSON", "nrt": "PERSON", "ns": "LOCATION"}


class ChineseNameDetector:
    name = "jieba"

    def __init__(self, score: float = 0.7) -> None:
        jieba.setLogLevel(logging.WARNING)
        self._tokenizer = jieba.posseg.POSTokenizer(jieba.Tokenizer())
        self._tokenizer.initialize()  # loads the dictionary now, not in the first request
        self._score = score
        self._lock = threading.Lock()

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        return [self._detect_one(t) if _CJK.search(t) else [] for t in texts]

    def _detect_one(self, text: str) -> list[Span]:
        spans, position = [], 0
        with self._lock:
            tokens = list(self._tokenizer.cut(text))
        for token in tokens:
            start = text.find(token.word, position)
            if start < 0:
                continue
            position = start + len(token.word)
            label = _LABELS.get(token.flag)
            if label and len(token.word) >= 2:
                spans.append(Span(start, position, label, self._score, self.name))
        return spans
