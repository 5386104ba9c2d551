"""Postal addresses in any of the layouts people paste: one line, comma-separated, or a block of lines.

The policy's patterns find a street line in a language they know ("42 rue de la Paix, 75002 Paris").
This detector reads the structure instead, so it also finds addresses from other countries and the
lines around the street:

    6750 Koskikatu 25 Apt. 864          street: a house number and capitalised words
    Artilleros                          place line (no evidence of its own)
    , CO                                state
    Uruguay 64677                       country and postcode: evidence

An address starts at a street line (or a unit line such as "PSC 3294, Box 9168") and takes every
unit and place line that follows it, split by commas or line breaks; trailing place lines without
evidence (a postcode, a state code, a known place, an all-capital name) are dropped. A street line
with a street type in its place ("McPherson Road", "Rua do Arenque", "Koskikatu") is an address alone;
"0138 Brisas 6802" (numbers around names) needs a line with evidence after it, a bare "number + names"
a unit, postcode or state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import regex

from rewriters import gazetteer
from rewriters.detectors.places import is_place
from rewriters.gazetteer import is_common_word, is_everyday_word
from rewriters.spans import Span

# Street types written as their own word, in the languages we serve and their neighbours (en, fr, es,
# pt, it, de, nl), matched case-insensitively: English, German and Dutch put the type after the name
# ("McPherson Road"), the Romance languages before it ("rue des Lilas", "Rua do Arenque"); a type in
# the wrong place ("3 Way Handshake") makes no street. Compound types are glued to the name ("Koskikatu").
_TYPES_AFTER = r"""
    street|st|avenue|ave|road|rd|boulevard|blvd|lane|ln|drive|dr|court|ct|place|pl|square|sq|terrace|ter
    |way|parkway|pkwy|highway|hwy|crescent|cres|close|circle|cir|row|mews|trail|trl|alley|gardens|grove
    |heights|hill|loop|path|pike|plaza|point|ridge|crossing|xing|expressway|freeway|gateway|green|park
    |walk|view|vista|estates?|creek|ferry|junction|landing|meadows?|rise|route|wharf|bypass|causeway|cove
    |straße|strasse|str|gasse|weg|allee|platz|ring|damm|ufer|chaussee|straat|laan|plein|gracht|kade
"""
_TYPES_BEFORE = r"""
    rue|avenue|av|boulevard|bd|place|route|allée|impasse|chemin|quai|cours|passage|voie|calle|avenida|avda
    |paseo|plaza|camino|ronda|travesía|glorieta|carretera|ctra|rambla|pasaje|callejón|rua|travessa|largo
    |praça|alameda|estrada|rodovia|via|viale|piazza|piazzale|corso|vicolo|strada|contrada|borgo|lungomare
    |jalan|ulica
"""
_TYPES = _TYPES_AFTER + "|" + _TYPES_BEFORE
_COMPOUND = r"""
    straße|strasse|str\.|gasse|weg|allee|platz|damm|ufer|straat|laan|plein|gracht|kade|dijk|vej|gade
    |stræde|gatan|vägen|gränd|torget|gata|gate|veien|vegen|katu|kuja|tie|polku|stræti|straeti|vegur
    |utca|ulica
"""
_CAP = r"\p{Lu}[\p{L}\p{M}'’.-]*"
_LINK = r"(?:de|da|do|dos|das|del|della|di|du|des|la|le|les|el|los|las|y|e|van|von|der|den|am|an|im|of|the)"
_NAME = rf"{_CAP}(?:[ ](?:{_LINK}[ ])*{_CAP}){{0,4}}"
_NUM = r"\d{1,6}[A-Za-z]?(?:[-/]\d{1,4}[A-Za-z]?)?"


def _alternatives(words: str) -> str:
    return words.replace("\n", "").replace(" ", "")


_TYPE_WORD = rf"(?i:{_alternatives(_TYPES)})\.?"
_TYPE_AFTER = regex.compile(rf"(?i:{_alternatives(_TYPES_AFTER)})\.?")
_TYPE_BEFORE = regex.compile(rf"(?i:{_alternatives(_TYPES_BEFORE)})\.?")
_COMPOUND_WORD = rf"[\p{{L}}\p{{M}}'’-]{{2,}}(?i:{_alternatives(_COMPOUND)})"

# typed in lower case ("12 rue des lilas", "5 calle mayor"), only these types are unmistakable
_LOWER_TYPE = r"(?:rue|calle|avenida|avda\.|rua|travessa|praça|piazza|viale|carrer)"

# a street line, anchored on its house number (a building number may come first: "13813 3784
# Archwood Avenue"); "typed" when it has a street type
_STREET = regex.compile(
    rf"""(?x)(?<![\p{{L}}\p{{N}}_./:#-])
    (?: (?:\d{{1,6}}[ ](?=\d))?(?P<num>{_NUM}),?[ ]
        (?: (?P<lower>{_LOWER_TYPE}(?:[ ]\p{{Ll}}[\p{{L}}\p{{M}}'’-]*){{1,4}})(?![ ]\p{{Lu}})
          | (?P<words>(?:(?:{_LINK}|{_TYPE_WORD}|{_CAP}|{_COMPOUND_WORD})(?![\p{{L}}\p{{N}}])[ ]?){{1,6}}) )
          (?:[ ](?P<num2>{_NUM}))?
      | (?P<words2>(?:(?=\p{{Lu}}){_TYPE_WORD}[ ](?:(?:{_LINK}|{_CAP})[ ]){{0,5}}{_CAP}|{_COMPOUND_WORD}
                    |(?:\p{{Lu}}[\p{{L}}\p{{M}}'’.-]{{2,}}[ ]){{1,4}}{_TYPE_WORD}))
        ,?[ ](?:n[º°o]\.?[ ]?)?(?P<num3>{_NUM}) )
    (?![\p{{L}}\p{{N}}_]|[.,]\d)"""
)
_UNIT = r"""(?:(?i:apt|apartment|suite|ste|unit|flat|floor|fl|box|psc|cmr|room|rm|bldg|building|piso|puerta|
    dpto|depto|étage|etage|app|appt|whg|wohnung|interno|int|scala|esc|escalera)\.?[ ]?\#?[ ]?\d[\w-]*
    (?:,?[ ](?i:box)[ ]\d+)?)"""
_POSTCODE = r"""(?:\d{5}-\d{4}|\d{4}-\d{3}|\d{2}-\d{3}|\d{3}[ ]\d{2}|\d{4,6}|[A-Z]{1,2}\d[A-Z\d]?[ ]\d[A-Z]{2}
    |[A-Z]\d[A-Z][ ]?\d[A-Z]\d|\d{4}[ ]?[A-Z]{2})"""
# place words: a full stop may end a word ("St."), but no place name runs on past one ("Goiânia. She")
_PLACE_WORD = r"\p{Lu}[\p{L}\p{M}'’-]*\.?"
_PLACE_WORDS = rf"{_PLACE_WORD}(?:(?<!\.)[ -](?:{_LINK}[ ])*{_PLACE_WORD}){{0,3}}(?:[ ]\([^()\n]{{1,30}}\))?"
_PART = regex.compile(
    rf"""(?x)
    (?: [ ](?P<unit0>{_UNIT})
      | [ \t]*(?:,[ \t]*(?:\r?\n[ \t,>]*)?|\r?\n(?:[ \t>]*\r?\n)?[ \t,>]*)
    (?: (?P<military>(?i:apo|fpo|dpo)[ ](?i:aa|ae|ap)[ ]\d{{5}})
      | (?P<unit>{_UNIT})
      | (?P<pc1>{_POSTCODE})(?:[ ](?P<place1>{_PLACE_WORDS}))?
      | (?P<place2>{_PLACE_WORDS})(?:,?[ ](?P<state>\p{{Lu}}{{2,3}}))?(?:,?[ ](?P<pc2>{_POSTCODE}))?
      | (?P<state2>\p{{Lu}}{{2}}) ) )
    (?![\p{{L}}\p{{N}}_]|[.,]\d)"""
)
_UNIT_START = regex.compile(rf"(?x)(?<![\p{{L}}\p{{N}}_./:#-]){_UNIT}(?![\p{{L}}\p{{N}}_]|[.,]\d)")
_YEAR = regex.compile(r"(?:1[89]|20)\d\d")
# words that say an address follows: a form field, or living / being located at, in six languages
_CUE = regex.compile(
    r"""(?x)(?i:
        (?:address|adresse|anschrift|direcci[óo]n|domicilio|indirizzo|endere[çc]o|morada|地址)[ \t]*[:：]
      | (?:lives?|living|resides?|residing|located)[ ]at | wohnt[ ]in | habite[ ](?:au|à) | vive[ ]en
      | abita[ ]in | (?:moved|moving)[ ]to )
    [ \t]*\r?\n?[ \t]*$"""
)
_COMPOUND_ONLY = regex.compile(_COMPOUND_WORD)
_LINE_END = regex.compile(r"[ \t]*(?:\r?\n|$|[.;!?)](?:\s|$))")


def _is_street_compound(word: str) -> bool:
    """'Koskikatu', 'Magrethevej', 'hersnapvej': not an English or other everyday word that happens to
    end like a street type ('aggregate', 'brigade', 'arcade', 'bowtie')."""
    return not is_everyday_word(word)


# a flat or suite number says where someone lives or works even alone ("Apt. 022", "Suite 680")
_DWELLING = regex.compile(r"(?:Apt|Apartment|Suite|Ste)\b")


def _unit_strength(unit: str) -> str:
    return "dwelling" if _DWELLING.match(unit) else "unit"


@dataclass
class _Part:
    end: int
    evidence: bool  # a unit, postcode, state, known place or all-capital name
    postal: bool  # a unit, postcode or state: evidence even for a street line without a street type


class AddressDetector:
    name = "addresses"

    def __init__(self, score: float) -> None:
        self._score = score
        gazetteer.load()  # at start-up, not in the first request

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        return [self._one(text) for text in texts]

    def _one(self, text: str) -> list[Span]:
        spans: list[Span] = []
        taken = 0
        anchors = sorted(
            [(m.start(), m.end(), self._street_strength(m)) for m in _STREET.finditer(text)]
            + [(m.start(), m.end(), _unit_strength(m.group())) for m in _UNIT_START.finditer(text)]
        )
        for start, end, strength in anchors:
            if start < taken or strength is None:
                continue
            if strength == "numbered" and _CUE.search(text, max(0, start - 40), start):
                strength = "typed"  # "Address: 5366 Pivovarská 276", "lives at 92597 Jahu 80"
            parts = self._parts_after(text, end)
            kept = len(parts)
            while kept and not parts[kept - 1].evidence:
                kept -= 1
            before = parts[kept - 1].end if kept else end
            if strength == "typed" and kept < len(parts) and self._is_locality(text, parts[kept], before):
                kept += 1  # "lives at 333 Golfskálinn 78, Borgarnes": the town that ends the line
            parts = parts[:kept]
            if self._accepted(strength, parts):
                stop = parts[-1].end if parts else end
                while text[stop - 1] in "., \t":  # the sentence's full stop is not the address's
                    stop -= 1
                spans.append(Span(start, stop, "STREET_ADDRESS", self._score, self.name))
                taken = stop
        return spans

    @staticmethod
    def _is_locality(text: str, part: _Part, start: int) -> bool:
        """A place line with no evidence of its own is still the town when it ends the line right after a
        typed street, and is not an everyday word ("Thanks", "Regards")."""
        if not _LINE_END.match(text, part.end):
            return False
        name = text[start : part.end].strip(" \t,\n>").rstrip(".")
        return bool(name) and not all(is_everyday_word(w) for w in name.split())

    @staticmethod
    def _accepted(strength: str, parts: list[_Part]) -> bool:
        """A typed street or a dwelling ("Apt. 022") stands alone; a numbered street or another unit
        ("Box 9168") needs a line with evidence after it, a bare street a unit, postcode or state."""
        if strength == "typed":
            return True
        if strength == "dwelling":
            return True
        if strength in ("numbered", "unit"):
            return bool(parts)
        return any(p.postal for p in parts)

    @staticmethod
    def _street_strength(m: regex.Match[str]) -> str | None:
        """'typed' (a street type is there), 'numbered' (a number before and after its names: "0138
        Brisas 6802"), 'bare' (a number and names), None (not a street)."""
        if m.group("lower") is not None:
            return "typed"
        words2 = m.group("words2")
        if words2 is not None:  # type-first, compound or "Name Type": typed unless the compound is a word
            return "typed" if not _COMPOUND_ONLY.fullmatch(words2) or _is_street_compound(words2) else None
        words = m.group("words").split()
        # after a house number a compound is capitalised: "6750 Koskikatu 25", not "--gid 10001 privgate"
        if any(w[:1].isupper() and _COMPOUND_ONLY.fullmatch(w) and _is_street_compound(w) for w in words):
            return "typed"
        after_a_name = any(_TYPE_AFTER.fullmatch(w) for w in words[1:])
        if after_a_name or (len(words) >= 2 and _TYPE_BEFORE.fullmatch(words[0])):
            return "typed"
        if _YEAR.fullmatch(m.group("num")):
            return None
        names = [w for w in words if w[:1].isupper()]
        if not names:
            return None
        if m.group("num2"):
            return "numbered"
        if any(not is_common_word(w.strip(".,")) for w in names):
            return "bare"
        return None

    @staticmethod
    def _parts_after(text: str, pos: int) -> list[_Part]:
        parts: list[_Part] = []
        for _ in range(6):
            m = _PART.match(text, pos)
            if m is None:
                break
            place = m.group("place1") or m.group("place2")
            postal = any(m.group(g) for g in ("unit0", "unit", "military", "pc1", "pc2", "state", "state2"))
            place = (place or "").rstrip(".")
            known = bool(place and (is_place(place) or any(is_place(w) for w in place.split()) or place.isupper()))
            parts.append(_Part(m.end(), postal or known, postal))
            pos = m.end()
        return parts
