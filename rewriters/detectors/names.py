"""Names no NER model here reads: a run of capitalised words led by a known given name.

German, Italian and Vietnamese have no spaCy NER on PyPI, and the small English model misses many
names from other cultures ("Begoña Etxeberria" in a German sentence). Faker's public lists of given
names (every locale) and of leading family names (Vietnamese, Hungarian) mark where a name starts; the
capitalised words that follow it are the rest of the name. A name's shape says it too, whatever its
origin: a middle initial between two words that are no everyday words ("Ravil G Yefimov").

Typed in lower case, in a sentence that does not start with a capital (who capitalises sentences
capitalises names), a name is a given name then a word that is no everyday word ("eva kleist"), or a
word after a title ("mr. elliott").

A single given name is a person only where its place in the sentence says so:
- the subject of a verb only people do ("Sofie lives on ...", "jessica said", "Sophie hat gesagt");
- the one a message is for ("tell kenji and haruka", "dile a valentina", "sag jonas");
- a line's speaker ("Halldór: ...", 'mika: "who are you?"') or the person addressed ("Danial, can I");
- the owner of a relative or an occasion ("Amanda's daughter");
- the name that signs a message, on the line after its closing ("Best,\nJoy", "LG\nStefan");
- a capitalised word inside a sentence ("did Babajide ever send") that is no everyday word and no place;
- an item of a list of given names ("silvana, adam, christopher and caleb");
- a speaker of a transcript whose other speakers are given names ("Vinka: What a wife.\nLisa: ...").
A family name alone counts before a speech verb ("Rintanen said"). Stop words never count, nor a word
in lower case that is a frequent English word ("ask grace", "email support"), and the speaker and
addressed forms without quotes need a rare name ("Max: 10").
"""

from __future__ import annotations

from collections.abc import Sequence

import regex

from rewriters.gazetteer import BIG_CITY, is_everyday_word, is_frequent_english_word, lookup
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
# of those, the ones no company, product or place does ("Rintanen began writing"; not "Acme works")
_ONLY_PEOPLE = regex.compile(
    r"said|says|told|wrote|asked|replied|was[ ]born|began[ ]writing|a[ ]dit|sagte|dijo|ha[ ]detto"
)
# a single capitalised word at the start of a text, line or sentence, followed by a speaker's colon,
# a vocative comma, or a people verb
_SINGLE = regex.compile(
    rf"""(?x)(?:^|(?<=\n)|(?<=[.!?][ ]))[ \t>]*(?P<name>{_WORD})
    (?: :[ ] | ,[ ](?=\p{{Ll}}) | [ ](?P<verb>{_PEOPLE_VERBS})\b )"""
)


_ANY_WORD = r"\p{L}[\p{Ll}\p{M}]+(?:['’-]\p{L}[\p{Ll}\p{M}]+)*"  # "kenji", "Jean-Luc", "léa"
# what people write before the one a message is for, in the six languages
_FOR = r"""(?:tell|ask|asked|email|e-mail|text|ping|message|remind|invite|thank|call|say[ ]hi[ ]to|says[ ]hi[ ]to
    |talk[ ]to|speak[ ]to|write[ ]to|said[ ]to|shouted[ ]at|yelled[ ]at|follow[ ]up[ ]with|catch[ ]up[ ]with|meet[ ]with
    |heard[ ]from|covering[ ]for|dis[ ]à|demande[ ]à|écris[ ]à|envoie[ ]à|appelle|préviens|chez|sag|frag|schreib|grüß
    |ruf|dile[ ]a|pregúntale[ ]a|escríbele[ ]a|avísale[ ]a|avisa[ ]a|llama[ ]a|escribe[ ]a|pregunta[ ]a|dì[ ]a|di'[ ]a
    |chiedi[ ]a|scrivi[ ]a|avvisa|chiama|saluta)"""
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


# a lower-case name after a title ("mr. elliott", "dott.ssa bianchi"); capitalised ones are the
# titled_person pattern's. "ms", "dr" and "sr" need their full stop: "17 ms median", "12 main dr smithfield"
_TITLED = regex.compile(
    r"(?<![\p{L}.])(?i:(?:mr|mrs|prof|herr|frau|dott|dott\.ssa|sig|sig\.ra|avv|mme|mlle)\.?|(?:ms|dr|sr|sra)\.)[ ]"
    r"(?!(?:med|rer|phil|jur|nat|dent|vet|habil|univ)\.)"  # a degree: "Dr. med. Jürgen Albrecht"
    r"(?P<name>\p{Ll}[\p{Ll}\p{M}]+(?:['’-]\p{Ll}[\p{Ll}\p{M}]+)*)(?![\p{L}\p{N}@]|\.\w)"
)
_LOWER_WORD = r"\p{Ll}[\p{Ll}\p{M}]+(?:['’-]\p{Ll}[\p{Ll}\p{M}]+)*"
# a given name, an optional initial, a family name, all in lower case
_LOWER_PAIR = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}@./_'’<$#{{\[=-])(?P<given>{_LOWER_WORD})(?:[ ]\p{{Ll}}\.?)?[ ](?P<family>{_LOWER_WORD})"
    r"(?![\p{L}\p{N}@_=(]|[.-]\p{L}|['’]\p{L}{2})"
)
_VOWEL = regex.compile(r"[aeiouyàáâãäåèéêëìíîïòóôõöøùúûüýæœ]")
# three or more single words in a list: "leonti, terrence, pamela and brian", "Efimiya, Mary, Ariana"
_NAME_LIST = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}@./_-]){_ANY_WORD}(?:(?:,[ ]|,?[ ](?:and|or|&|et|und|y|e)[ ]){_ANY_WORD}){{2,}}"
    r"(?![\p{L}\p{N}@_]|[.'’-]\p{L})"
)
# a transcript's line: a speaker of one or two capitalised words, a colon, then what they say
_SCRIPT_LINE = regex.compile(
    r"(?m)^[ \t>]*(?P<name>\p{Lu}\p{Ll}[\p{Ll}\p{M}'’-]*(?:[ ]\p{Lu}\p{Ll}[\p{Ll}\p{M}'’-]*)?):[ ]+\S"
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
            found = [
                *self._runs(text),
                *self._single(text),
                *self._placed(text),
                *self._lower_case(text),
                *self._script(text),
                *self._listed(text),
            ]
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
            else:
                if _has_middle_initial(words):  # "Ravil G Yefimov": the shape of a name, whatever its origin
                    spans.append(Span(run.start(), run.end(), "PERSON", self._score, self.name))
        return spans

    def _script(self, text: str) -> list[Span]:
        """In a transcript ("Lisa: Remember me?\nVinka: What a wife."), where two speakers or more are
        given names, every speaker that is no everyday word is a person too, known name or not."""
        lines = [m for m in _SCRIPT_LINE.finditer(text)]
        speakers = {m.group("name") for m in lines}
        if len(speakers) < 2 or sum(is_given_name(n.split()[0]) for n in speakers) < 2:
            return []
        def is_person(name: str) -> bool:
            return not any(is_stop_word(w) or (is_everyday_word(w) and not is_given_name(w)) for w in name.split())

        people = [m for m in lines if is_person(m.group("name"))]
        return [Span(m.start("name"), m.end("name"), "PERSON", self._score, self.name) for m in people]

    def _listed(self, text: str) -> list[Span]:
        """A list of three or more given names in any case ("silvana, adam, christopher and caleb"): one
        of them may be a frequent English word ("chad") and one a big city, not more ("april, may and
        june"; "Paris, Rome and Sydney"); in a list of four or more, one may be a name no table holds
        ("leonti") if it is no everyday word."""
        spans: list[Span] = []
        for m in _NAME_LIST.finditer(text):
            items = [i for i in regex.finditer(_ANY_WORD, m.group()) if not is_stop_word(i.group())]
            words = [i.group() for i in items]
            unknown = [w for w in words if not is_given_name(w)]
            if len(unknown) > (len(words) >= 4) or any(is_everyday_word(w) for w in unknown):
                continue
            if sum(is_frequent_english_word(w) for w in words) > 1 or sum(_is_big_place(w) for w in words) > 1:
                continue
            spans.extend(
                Span(m.start() + i.start(), m.start() + i.end(), "PERSON", self._score, self.name) for i in items
            )
        return spans

    def _lower_case(self, text: str) -> list[Span]:
        """A name typed in lower case where nothing else says it is one: a title before it ("mr. elliott",
        "dr. okafor"), or a given name that is no frequent English word, an optional initial, and a word
        that is no everyday word of our languages ("eva kleist", "leidy t muris"; not "grace kelly
        said", "maria pls")."""
        spans = []
        for m in _TITLED.finditer(text):
            word = m.group("name")
            if not is_stop_word(word) and not is_frequent_english_word(word):
                spans.append(Span(m.start("name"), m.end("name"), "PERSON", self._score, self.name))
        for m in _LOWER_PAIR.finditer(text, overlapped=True):
            given, family = m.group("given"), m.group("family")
            if (
                is_given_name(given)
                and not is_frequent_english_word(given)
                and not is_stop_word(given)
                and not is_stop_word(family)
                and not is_everyday_word(family)
                and lookup(family) is None
                and _VOWEL.search(family) is not None  # not "maria tmrw"
                # last, being a search back through the text: who capitalises sentences capitalises
                # names ("la vena femoral", "colon descendente")
                and not _in_capitalised_sentence(text, m.start())
            ):
                spans.append(Span(m.start(), m.end(), "PERSON", self._score, self.name))
        return spans

    def _single(self, text: str) -> list[Span]:
        """One given name that its place says is a person: the subject of a verb only people do
        ("Sofie lives on ...", "Darren is a very ..."), or, when the name is no everyday word, a
        line's speaker ("Vsevolod: Who are you?") or the person addressed ("Danial, can I ..."). A
        family name alone counts before a speech verb or "was born" ("Rintanen began writing")."""
        spans = []
        for m in _SINGLE.finditer(text):
            word = m.group("name")
            if is_stop_word(word):
                continue
            if not is_given_name(word):
                # a family name alone ("Rintanen began writing") only before what only people do
                verb = m.group("verb") or ""
                if not _ONLY_PEOPLE.fullmatch(verb) or is_everyday_word(word) or lookup(word) is not None:
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


_SENTENCE_START = regex.compile(r"(?:^|[.!?:;]\s+|\n)[^\p{L}\n]*(?P<first>\p{L})", regex.REVERSE)


def _in_capitalised_sentence(text: str, pos: int) -> bool:
    """Whether the sentence (or line) holding `pos` starts with a capital letter."""
    m = _SENTENCE_START.search(text, 0, pos + 1)
    return m is not None and m.group("first").isupper()


def _is_big_place(word: str) -> bool:
    found = lookup(word)
    return found is not None and (found[0] == "country" or found[1] >= BIG_CITY)


def _has_middle_initial(words: list[str]) -> bool:
    """Three words whose middle one is an initial, the others no everyday words ("Ravil G Yefimov";
    not "Plan B Consulting")."""
    return (
        len(words) == 3
        and len(words[1].rstrip(".")) == 1
        and not any(is_stop_word(w) or is_everyday_word(w) or lookup(w) is not None for w in (words[0], words[2]))
    )


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
