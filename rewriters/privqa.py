"""PRIV-QA's protect stage: does the user's question need a sensitive span?

A span the question needs is substituted (surrogate, restored in the answer); one it does not need
is generalised (a date keeps its month and year) or dropped (a restorable tag). "Needs" is judged by
rules that hold in the six languages privgate serves: the question names the value itself, or asks
about its kind ("when ...?" needs dates, "where ...?" places, "who ...?" people, "call/e-mail ..."
contact details, "account/card number" identifiers). A label outside those kinds is kept.

Rules miss paraphrases ("Which town should the parcel go to?", "Ist der Patient volljährig?"). With a
`Relevance` (the shared sentence embedder), a span the rules would drop is kept when the question is
closer to its kind than to any other kind: each kind is represented by the embedding of the rules' own
trigger words, and the margin between the span's kind and the best other kind must reach a threshold
calibrated on labelled questions (`calibrate`; `bench/privacy_utility.py --only-relevance` reports it).
Comparing the question with the span's own sentence was tried and made accuracy worse: the sentence
says what the span is, not whether the question wants it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np

from rewriters.embedding import Embedder
from rewriters.surrogates import parse_date
from rewriters.text import word_set

_ASKS: dict[str, tuple[str, ...]] = {
    "time": ("when", "date", "day", "year", "born", "birth", "birthday", "age", "old", "quand", "naissance", "né",
             "née", "âge", "wann", "datum", "geboren", "geburtstag", "alter", "cuándo", "cuando", "fecha",
             "nacimiento", "nació", "edad", "quando", "data", "nascita", "nato", "nata", "età", "什么时候", "何时",
             "日期", "生日", "出生", "年龄", "几岁", "哪天", "哪年"),
    "place": ("where", "address", "city", "live", "lives", "located", "location", "où", "adresse", "ville",
              "habite", "wo", "stadt", "wohnt", "anschrift", "dónde", "donde", "dirección", "ciudad", "vive", "dove",
              "indirizzo", "città", "abita", "哪里", "哪儿", "地址", "城市", "住"),
    "person": ("who", "whom", "whose", "name", "qui", "nom", "wer", "wem", "wessen", "quién", "quien", "nombre",
               "chi", "nome", "谁", "名字", "姓名"),
    "contact": ("phone", "call", "email", "e-mail", "mail", "contact", "reach", "write", "téléphone", "appeler",
                "courriel", "écrire", "telefon", "anrufen", "schreiben", "teléfono", "llamar", "correo", "escribir",
                "telefono", "chiamare", "scrivere", "电话", "邮件", "联系", "邮箱"),
    "number": ("account", "card", "iban", "number", "record", "compte", "numéro", "carte", "dossier", "konto",
               "nummer", "karte", "akte", "cuenta", "número", "tarjeta", "historia", "conto", "numero", "carta",
               "cartella", "账号", "卡号", "号码", "病历"),
}  # fmt: skip
_KIND = {
    "DATE_TIME": "time", "DATE_OF_BIRTH": "time", "AGE": "time",
    "LOCATION": "place", "STREET_ADDRESS": "place", "ZIP_CODE": "place",
    "PERSON": "person", "ORGANIZATION": "person",
    "EMAIL_ADDRESS": "contact", "PHONE_NUMBER": "contact", "URL": "contact",
    "CREDIT_CARD": "number", "IBAN_CODE": "number", "ACCOUNT_NUMBER": "number", "US_BANK_NUMBER": "number",
    "MEDICAL_RECORD_NUMBER": "number", "ID_NUMBER": "number", "NATIONAL_ID": "number", "US_SSN": "number",
    "UK_NHS": "number", "US_PASSPORT": "number", "US_DRIVER_LICENSE": "number", "IP_ADDRESS": "number",
}  # fmt: skip
_CJK = re.compile(r"[\u3400-\u9fff]")


def _asks_about(question: str, kind: str) -> bool:
    words = {w.casefold() for w in word_set(question)}
    folded = question.casefold()
    return any(k in folded if _CJK.search(k) else k in words for k in _ASKS[kind])


_SENTENCE = re.compile(r"[^.!?。！？\n]+[.!?。！？]*")


def question_of(turn: str) -> str:
    """The asking part of the user's turn: its sentences that end in a question mark, else the last one.

    The rest of a turn is context ("Patient X, born ..."): its words say nothing of what is asked.
    """
    sentences = [s.strip() for s in _SENTENCE.findall(turn) if s.strip()]
    asked = [s for s in sentences if s.endswith(("?", "？"))]
    return " ".join(asked) if asked else (sentences[-1] if sentences else turn)


# Calibrated with `calibrate` on the synthetic six-language set of bench/privacy_utility.py (multilingual-e5-small).
DEFAULT_MARGIN = 0.0078


class Relevance:
    """How much closer a question is to one kind of span than to every other kind, by embeddings."""

    def __init__(self, embedder: Embedder, threshold: float = DEFAULT_MARGIN) -> None:
        self.threshold = threshold
        self._embedder = embedder
        self._kinds = sorted(_ASKS)
        self._prototypes = embedder.embed([", ".join(_ASKS[kind]) for kind in self._kinds])
        self._lock = threading.Lock()
        self._last: tuple[str, dict[str, float]] | None = None  # one request asks one question of many spans

    def margins(self, question: str) -> dict[str, float]:
        """Per kind: similarity to the question minus the best other kind's."""
        with self._lock:
            if self._last is not None and self._last[0] == question:
                return self._last[1]
        (out,) = self.margins_of([question])
        with self._lock:
            self._last = (question, out)
        return out

    def margins_of(self, questions: Sequence[str]) -> list[dict[str, float]]:
        """`margins` for many questions in one embedding batch."""
        sims = self._embedder.embed(list(questions)) @ self._prototypes.T
        return [{kind: float(row[i] - np.delete(row, i).max()) for i, kind in enumerate(self._kinds)} for row in sims]

    def margin(self, question: str, label: str) -> float | None:
        kind = _KIND.get(label)
        return None if kind is None else self.margins(question)[kind]


def question_needs(question: str, value: str, label: str, *, relevance: Relevance | None = None) -> bool:
    """True when the answer may need this span: keep it (as a surrogate); False: generalise or drop it.

    `relevance` keeps a span the rules would drop when the question is about its kind in other words."""
    kind = _KIND.get(label)
    if kind is None:
        return True  # a kind the rules do not know: keep the substitution, which still protects
    if value.casefold() in question.casefold():
        return True  # the question names it
    named = {w.casefold() for w in word_set(value) if len(w) >= 3}
    if named & {w.casefold() for w in word_set(question)}:
        return True
    if _asks_about(question, kind):
        return True
    if relevance is None:
        return False
    margin = relevance.margin(question, label)
    return margin is not None and margin >= relevance.threshold


def calibrate(margins: Sequence[float], by_rules: Sequence[bool], needed: Sequence[bool]) -> float:
    """The margin threshold that makes `rules or margin >= threshold` most accurate on a labelled set
    (ties: the highest threshold, which keeps fewest spans)."""
    best, best_correct = float("inf"), sum(r == n for r, n in zip(by_rules, needed, strict=True))
    for threshold in sorted(set(margins), reverse=True):
        correct = sum((r or m >= threshold) == n for m, r, n in zip(margins, by_rules, needed, strict=True))
        if correct > best_correct:
            best, best_correct = threshold, correct
    return best


def generalize(label: str, value: str) -> str | None:
    """A coarser, non-identifying form (a date → its month and year); None where there is none."""
    if _KIND.get(label) != "time":
        return None
    found = parse_date(value)
    if found is None:
        return None
    day = found[0]
    if "年" in value:
        return f"{day.year}年{day.month}月"
    month_words = [w for w in re.findall(r"[^\W\d_]+", value) if w.casefold() not in ("de", "er")]
    if month_words:
        return f"{month_words[-1]} {day.year}"
    if re.match(r"^\s*\d{4}", value):
        return f"{day.year}-{day.month:02d}"
    return f"{day.month:02d}/{day.year}"
