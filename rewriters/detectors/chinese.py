"""Chinese person and place names from jieba's part-of-speech tags (nr*, ns), and people named the way
Chinese refers to them: a surname with a title ("孙老师", "王医生"), "姓陈" (surnamed Chen), and a
doubled nickname after a relative ("我儿子乐乐")."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence

import jieba
import jieba.posseg

from rewriters.names import is_name_word
from rewriters.spans import Span

_CJK = re.compile(r"[\u3400-\u9fff]")
_LABELS = {"nr": "PERSON", "nrfg": "PERSON", "nrt": "PERSON", "ns": "LOCATION"}
# titles that follow a surname, and relatives whose doubled nickname follows them
_TITLES = frozenset(
    "老师 医生 大夫 先生 女士 小姐 太太 经理 律师 教授 主任 护士 同学 阿姨 叔叔 总 工 博士 院长 校长".split()
)
_RELATIVES = frozenset(
    "儿子 女儿 孩子 宝宝 老婆 老公 妻子 丈夫 妈妈 爸爸 哥哥 姐姐 弟弟 妹妹 孙子 孙女 朋友 同事".split()
)


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
            tokens = [(t.word, t.flag) for t in self._tokenizer.cut(text)]
        for k, (word, flag) in enumerate(tokens):
            start = text.find(word, position)
            if start < 0:
                continue
            position = start + len(word)
            before = tokens[k - 1][0] if k else ""
            after = tokens[k + 1][0] if k + 1 < len(tokens) else ""
            label = _LABELS.get(flag)
            if label and len(word) >= 2:
                spans.append(Span(start, position, label, self._score, self.name))
            elif _named_by_context(word, before, after):
                spans.append(Span(start, position, "PERSON", self._score, self.name))
        return spans


def _named_by_context(word: str, before: str, after: str) -> bool:
    """A surname before a title or after 姓 ("孙老师", "姓陈"), or a doubled nickname after a relative."""
    if len(word) == 1 and _CJK.match(word) and is_name_word(word):
        return after in _TITLES or before == "姓"
    return len(word) == 2 and word[0] == word[1] and _CJK.match(word) is not None and before in _RELATIVES
