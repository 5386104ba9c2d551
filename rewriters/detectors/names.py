"""Names no NER model here reads: a run of capitalised words led by a known given name.

German, Italian and Vietnamese have no spaCy NER on PyPI, and the small English model misses many
names from other cultures ("Begoña Etxeberria" in a German sentence). Faker's public lists of given
names (every locale) and of leading family names (Vietnamese, Hungarian) mark where a name starts; the
capitalised words that follow it are the rest of the name.

A single given name is a person only where its place in the sentence says so:
- the subject of a verb only people do ("Sofie lives on ...", "jessica said", "Sophie hat gesagt");
- the one a message is for ("tell kenji and haruka", "dile a valentina", "sag jonas");
- a line's speaker ("Halldór: ...", 'mika: "who are you?"') or the person addressed ("Danial, can I");
- the owner of a relative or an occasion ("Amanda's daughter");
- the name that signs a message, on the line after its closing ("Best,\nJoy", "LG\nStefan");
- a capitalised word inside a sentence ("did Babajide ever send") that is no everyday word and no place.
Stop words never count, nor a word in lower case that is a frequent English word ("ask grace",
"email support"), and the speaker and addressed forms without quotes need a rare name ("Max: 10").
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from rewriters.gazetteer import is_everyday_word, is_frequent_english_word, lookup
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


_ANY_WORD = r"\p{L}[\p{Ll}\p{M}]+(?:['’-]\p{L}[\p{Ll}\p{M}]+)*"  # "kenji", "Jean-Luc", "léa"
# what people write before the one a message is for, in the six languages
_FOR = r"""(?:tell|ask|asked|email|e-mail|text|ping|message|remind|invite|thank|say[ ]hi[ ]to|says[ ]hi[ ]to|talk[ ]to
    |speak[ ]to|write[ ]to|said[ ]to|shouted[ ]at|yelled[ ]at|follow[ ]up[ ]with|catch[ ]up[ ]with|meet[ ]with
    |heard[ ]from|covering[ ]for|dis[ ]à|demande[ ]à|écris[ ]à|chez|sag|frag|schreib|grüß
    |dile[ ]a|pregúntale[ ]a|escríbele[ ]a|avísale[ ]a|dì[ ]a|di'[ ]a|chiedi[ ]a|scrivi[ ]a|saluta)"""
_ADDRESSED = regex.compile(
    rf"""(?xi)(?<![\p{{L}}\p{{N}}])(?-i:{_FOR})[ ]+(?P<name>{_ANY_WORD})
    (?:[ ]+(?:and|und|et|y|e)[ ]+(?P<name2>{_ANY_WORD}))?(?![\p{{L}}\p{{N}}@.]|\.\w)"""
)
# a people verb after a name anywhere in a sentence ("lol yeah jessica said", "Sophie hat gesagt")
_SUBJECT = regex.compile(
    rf"""(?x)(?<![\p{{L}}\p{{N}}@./_-])(?P<name>{_ANY_WORD})[ ]+
    (?:(?P<speech>said|says|posted|texted|emailed|replied|wrote|told|hat[ ]gesagt|a[ ]dit|dijo|ha[ ]detto)
      |{_PEOPLE_VERBS})\b"""
)
# one capitalised word inside a sentence: after a lower-case word that is no name particle ("de Svea",
# "San Cosme" are places), and not the start of a longer capitalised run
_PARTICLES = "de|del|della|delle|di|da|dal|du|des|dos|das|do|van|von|der|den|la|le|st|san|santa|santo|saint|of|the"
_INSIDE = regex.compile(
    rf"(?<=(?<![\p{{L}}\p{{N}}'’-])(?!(?:{_PARTICLES})[ ])\p{{Ll}}+[,]?[ ])(?P<name>\p{{Lu}}\p{{Ll}}+)"
    r"(?![\p{L}\p{N}'’-]|[ ]\p{Lu}|\.\w)"
)


# a line's speaker in quoted dialogue ('Elizabeth:"I'm ...', 'mika: "who are you?"')
_SPEAKER = regex.compile(rf"""(?m)^[ \t>]*(?P<name>{_ANY_WORD}):[ ]?["“]""")
# a person's relatives and belongings ("Asya's kid", "Amanda's daughter", "olga krylova's killers")
_KIN = regex.compile(
    rf"""(?<![\p{{L}}\p{{N}}@./_-])(?P<name>{_ANY_WORD})['’]s[ ](?:kids?|sons?|daughters?|wife|husband|mother|mom|mum
    |father|dad|parents|brother|sister|boyfriend|girlfriend|partner|friends?|boss|family|children|killers?|birthday
    |funeral|wedding)\b""",
    regex.X,
)
# a message's signature: a closing line, then a line that is only a name ("Best,\nJoy", "LG\nStefan")
_SIGNED = regex.compile(
    r"""(?xm)^[ \t>]*(?i:best|best[ ]regards|regards|kind[ ]regards|cheers|thanks|thank[ ]you|many[ ]thanks
        |sincerely|yours|lg|vg|mfg|viele[ ]grüße|liebe[ ]grüße|beste[ ]grüße|mit[ ]freundlichen[ ]grüßen|gruß
        |grüße|cordialement|bien[ ]à[ ]vous|amitiés|bisous|merci|saludos|un[ ]saludo|atentamente|abrazos
        |un[ ]abrazo|gracias|cordiali[ ]saluti|saluti|un[ ]saluto|grazie|a[ ]presto|ciao)[ \t,.!]*\n
        (?:[ \t>]*\n)?[ \t>]*(?P<name>\p{Lu}\p{Ll}+(?:[ -]\p{Lu}\p{Ll}+){0,2})[ \t]*$"""
)


class NameDetector:
    name = "names"

    def __init__(self, score: float) -> None:
        self._score = score

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        out = []
        for text in texts:
            found = self._runs(text) + self._single(text) + self._placed(text)
            out.append(list({(s.start, s.end): s for s in found}.values()))  # one span where two rules agree
        return out

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

    def _placed(self, text: str) -> list[Span]:
        """A given name, in any case, where the sentence says it is a person: the one a message is for,
        the subject of a people verb, a signature, or a capitalised word inside a sentence (`_INSIDE`,
        the weakest evidence, so only for names that are no everyday word: "did Babajide ever", not
        "about Rose")."""
        spans = []
        rules = (
            (_ADDRESSED, ("name", "name2")),
            (_SUBJECT, ("name",)),
            (_SPEAKER, ("name",)),
            (_KIN, ("name",)),
            (_SIGNED, ("name",)),
            (_INSIDE, ("name",)),
        )
        for pattern, groups in rules:
            for m in pattern.finditer(text):
                for group in groups:
                    if m.group(group) is None:
                        continue
                    first = regex.split(r"[ -]", m.group(group))[0]  # "Mary-Ann", "Ana Souza": the given name
                    if not is_given_name(first) or is_stop_word(first):
                        continue
                    if pattern in (_SUBJECT, _INSIDE) and lookup(first) is not None:  # "Paris is", "in Florence"
                        continue
                    # a capital alone, or a lower-case word before "works" ("the server works"), is weak evidence
                    weak = pattern is _INSIDE or (pattern is _SUBJECT and first.islower() and not m.group("speech"))
                    if weak and is_everyday_word(first):
                        continue
                    if first.islower() and is_frequent_english_word(first):  # "ask grace", "email support"
                        continue
                    end = _with_family_name(text, m.end(group)) if pattern is not _SIGNED else m.end(group)
                    spans.append(Span(m.start(group), end, "PERSON", self._score, self.name))
        return spans


_NEXT_WORD = regex.compile(rf"[ ](?P<word>{_ANY_WORD})(?![\p{{L}}\p{{N}}])")


def _with_family_name(text: str, end: int) -> int:
    """A given name's span takes the family name that follows it ("patricia desrosiers"), when that is
    no everyday word too."""
    m = _NEXT_WORD.match(text, end)
    if m is None:
        return end
    word: str = m.group("word")
    if is_stop_word(word) or not is_name_word(word) or is_everyday_word(word):  # not "jessica said"
        return end
    return end + 1 + len(word)
