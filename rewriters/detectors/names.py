"""Names no NER model here reads: a run of capitalised words led by a known given name.

German, Italian and Vietnamese have no spaCy NER on PyPI, and the small English model misses many
names from other cultures ("Begoña Etxeberria" in a German sentence). Faker's public lists of given
names (every locale) and of leading family names (Vietnamese, Hungarian) mark where a name starts; the
capitalised words that follow it are the rest of the name.

A single given name is a person only where its place in the sentence says so: the subject of a verb
only people do ("Sofie lives on ..."), a line's speaker ("Halldór: ...") or the person addressed
("Danial, can I ..."); the last two only for a name that is no everyday word ("Max: 10 retries").
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from rewriters.gazetteer import is_everyday_word
from rewriters.names import can_start_a_name, is_given_name, is_name_word
from rewriters.spans import Span
from rewriters.text import is_stop_word

# 2 to 4 words, each a capital then lower-case letters, with inner hyphens or apostrophes ("O'Connell")
_WORD = r"\p{Lu}\p{Ll}+(?:['’-]\p{Lu}?\p{Ll}+)*"
# a middle initial may sit between two words ("Ella H. Snider", "Mijail C Adomo")
_INITIAL = r"(?:[ ]\p{Lu}\.?(?=[ ]\p{Lu}))?"
_RUN = regex.compile(rf"(?<![\p{{L}}\p{{N}}]){_WORD}(?:{_INITIAL}[ ]{_WORD}){{1,3}}(?![\p{{L}}\p{{N}}])")
# verbs whose subject is a person, in the six languages' most common forms
_PEOPLE_VERBS = r"""(?:lives|lived|works|worked|said|says|told|wrote|writes|asked|replied|is[ ]from|was[ ]born
    |is[ ]a[ ]very|is[ ]very|began[ ]writing|spent|habite|travaille|a[ ]dit|wohnt|arbeitet|sagte|vive|trabaja|dijo
    |abita|lavora|ha[ ]detto)"""
# a single capitalised word at the start of a text, line or sentence, followed by a speaker's colon,
# a vocative comma, or a people verb
_SINGLE = regex.compile(
    rf"""(?x)(?:^|(?<=\n)|(?<=[.!?][ ]))[ \t>]*(?P<name>{_WORD})
    (?: :[ ] | ,[ ](?=\p{{Ll}}) | [ ](?P<verb>{_PEOPLE_VERBS})\b )"""
)


class NameDetector:
    name = "names"

    def __init__(self, score: float) -> None:
        self._score = score

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        return [self._runs(text) + self._single(text) for text in texts]

    def _runs(self, text: str) -> list[Span]:
        """In each run of capitalised words, the name starts at the first word that can start one
        ("Thanks Begoña Etxeberria") and takes the rest of the run; a name has two words at least."""
        spans = []
        for run in _RUN.finditer(text):
            words = run.group().split(" ")
            start = run.start()
            for word, after in zip(words, words[1:], strict=False):
                # a given name that is also a function word ("Ella", "Le", "Sie") starts a name only
                # before an initial or another name ("Ella H. Snider"; not "Le Gouvernement")
                if can_start_a_name(regex.split(r"['’-]", word)[0]) and (
                    not is_stop_word(word) or len(after.rstrip(".")) == 1 or is_name_word(after)
                ):
                    spans.append(Span(start, run.end(), "PERSON", self._score, self.name))
                    break
                start += len(word) + 1
        return spans

    def _single(self, text: str) -> list[Span]:
        """One given name that its place says is a person: the subject of a verb only people do
        ("Sofie lives on ...", "Darren is a very ..."), or, when the name is no everyday word, a
        line's speaker ("Vsevolod: Who are you?") or the person addressed ("Danial, can I ...")."""
        spans = []
        for m in _SINGLE.finditer(text):
            word = m.group("name")
            if not is_given_name(word) or is_stop_word(word):
                continue
            if m.group("verb") is None and is_everyday_word(word, "en"):
                continue
            spans.append(Span(m.start("name"), m.end("name"), "PERSON", self._score, self.name))
        return spans
