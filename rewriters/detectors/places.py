"""Countries and cities the small NER models miss ("Akureyri", "SEINÄJOKI", "Goiânia").

A run of capitalised (or all-capital) words is looked up in the gazetteer, longest first. A country
counts wherever it is written with a capital, and in lower case after a preposition of place
("i'm from switzerland"). A city that is also an everyday word ("Nice", "Mobile",
"Reading") or a given name ("Florence") is left to the NER model and the address detector, which see
its context.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from rewriters import gazetteer
from rewriters.gazetteer import BIG_CITY, is_common_word, lookup
from rewriters.names import is_given_name
from rewriters.spans import Span

_WORD = r"\p{Lu}[\p{L}\p{M}]*(?:['’-]\p{L}[\p{L}\p{M}]*)*\.?"
_LINK = r"(?:[ ](?:de|da|do|del|de[ ]la|di|du|des|la|le|am|an|im|upon|on|sur|en)(?=[ ]\p{Lu}))?[ ]"
# a run of up to five capitalised words, not glued to an identifier, a path or an address
_RUN = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}_@/.\\-]){_WORD}(?:{_LINK}{_WORD}){{0,4}}(?![\p{{L}}\p{{N}}_@/\\-]|\.\p{{L}})"
)


# up to three lower-case words after a preposition of place, in the six languages
_AFTER_PREPOSITION = regex.compile(
    r"(?<![\p{L}])(?i:from|in|to|at|de|en|à|au|aux|nach|aus|im|desde|hacia)[ ]"
    r"(?P<words>\p{Ll}+(?:[ ]\p{Ll}+){0,2})"
)


def is_place(name: str) -> bool:
    """A place by its name alone: any country, any big city; a smaller city whose name is no everyday
    word and no given name."""
    found = lookup(name)
    if found is None:
        return False
    kind, population = found
    if kind == "country" or population >= BIG_CITY:
        return True
    return not is_common_word(name) and (" " in name or not is_given_name(name))


class PlaceDetector:
    name = "places"

    def __init__(self, score: float) -> None:
        self._score = score
        gazetteer.load()  # at start-up, not in the first request

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        return [self._capitalised(text) + self._lower_case_countries(text) for text in texts]

    def _lower_case_countries(self, text: str) -> list[Span]:
        """A country typed in lower case after a preposition of place ("i'm from switzerland")."""
        spans = []
        for m in _AFTER_PREPOSITION.finditer(text):
            for words in (3, 2, 1):  # longest first: "united kingdom", "costa rica"
                value = " ".join(m.group("words").split(" ")[:words])
                start = m.start("words")
                if text.startswith(" import", start + len(value)):
                    break  # Python's "from china import ...": a module, not a country
                if len(value.split(" ")) == words and (lookup(value) or ("", 0))[0] == "country":
                    spans.append(Span(start, start + len(value), "LOCATION", self._score, self.name))
                    break
        return spans

    def _capitalised(self, text: str) -> list[Span]:
        """Each run of capitalised words, its sub-runs looked up longest first."""
        spans = []
        for run in _RUN.finditer(text):
            # word boundaries inside the run, so every sub-run starts and ends on a whole word
            words = [(m.start(), m.end()) for m in regex.finditer(_WORD, run.group())]
            i = 0
            while i < len(words):
                for j in range(len(words), i, -1):  # longest first
                    s, e = run.start() + words[i][0], run.start() + words[j - 1][1]
                    value = text[s:e].rstrip(".")
                    if is_place(value):
                        spans.append(Span(s, s + len(value), "LOCATION", self._score, self.name))
                        i = j
                        break
                else:
                    i += 1
        return spans
