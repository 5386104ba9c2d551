"""Countries and cities the small NER models miss ("Akureyri", "SEINÄJOKI", "Goiânia").

A run of capitalised (or all-capital) words is looked up in the gazetteer, longest first. A country
counts wherever it is written with a capital, and in lower case after a preposition of place
("i'm from switzerland"). A city that is also an everyday word ("Nice", "Mobile",
"Reading") or a given name ("Florence") is left to the NER model and the address detector, which see
its context. A name no gazetteer holds is a place where the sentence says so ("grew up in SUND", "j'habite
à Plouharnel").
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from rewriters import gazetteer
from rewriters.gazetteer import BIG_CITY, is_common_word, is_everyday_word, lookup
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


# what people write before the place where someone lives, comes from or goes, in the six languages
_PLACE_CUE = r"""(?:lives?[ ]in|lived[ ]in|living[ ]in|grew[ ]up[ ]in|born[ ]in|moved[ ](?:here[ ])?(?:from|to)
    |flew[ ]to|flying[ ]to|travell?ed[ ]to|returned[ ]to|arrived[ ](?:at|in)|originally[ ]from|i'?m[ ]in|i[ ]am[ ]in
    |based[ ]in|home[ ](?:city|town)|hometown|relocated[ ]to|j'habite[ ]à|habite[ ]à|je[ ]vis[ ]à|né[ ]à|née[ ]à
    |originaire[ ]de|wohne[ ]in|wohnt[ ]in|geboren[ ]in|komme[ ]aus|kommt[ ]aus|vivo[ ]en|vive[ ]en|nacido[ ]en
    |nacida[ ]en|soy[ ]de|vivo[ ]a|vive[ ]a|abito[ ]a|abita[ ]a|nato[ ]a|nata[ ]a|sono[ ]di)"""
_CUED_LINK = r"(?:[ ](?:de|da|do|del|de[ ]la|di|du|des|la|le|am|an|im|u|el|al|sur|en|y)(?=[ ]\p{Lu}))?[ ]"
_CUED_RUN = regex.compile(
    rf"(?i:(?<![\p{{L}}]){_PLACE_CUE})[ ](?P<place>{_WORD}(?:{_CUED_LINK}{_WORD}){{0,3}})"
    r"(?![\p{L}\p{N}_@/\\'’-]|\.\p{L})",
    regex.X,
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
        out = []
        for text in texts:
            found = self._capitalised(text) + self._lower_case_countries(text) + self._cued(text)
            out.append(list({(s.start, s.end): s for s in found}.values()))  # one span where two rules agree
        return out

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

    def _cued(self, text: str) -> list[Span]:
        """A capitalised name no gazetteer knows, where the sentence says it is a place: "grew up in SUND",
        "flew to Loeches", "originally from ΕΓΚΩΜΗ", "j'habite à Plouharnel". A lone everyday word is
        left ("I'm in Love", "based in Excel")."""
        spans = []
        for m in _CUED_RUN.finditer(text):
            place = m.group("place").rstrip(".")
            one_word = " " not in place
            if place.endswith(("'s", "’s")) or (one_word and (is_everyday_word(place) or is_given_name(place))):
                continue  # "in Sarah's team", "in Marketing"
            spans.append(Span(m.start("place"), m.start("place") + len(place), "LOCATION", self._score, self.name))
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
