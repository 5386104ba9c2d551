"""Given names of every locale Faker ships, with their gender where the locale records one.

A public list, loaded once: the NER correction uses it to tell a person from an organisation, the
name detector to find names no NER model here reads (German, Vietnamese...), and surrogates so that
"Sophie" becomes a woman's name and the model's pronouns still fit.
"""

from __future__ import annotations

import functools
import importlib
from typing import Literal

from faker.config import AVAILABLE_LOCALES

Gender = Literal["female", "male"]
# Faker's given-name lists: the plain ones, and those some locales keep apart (romanised Japanese,
# Islamic and Hindu names in the Indian and Pakistani locales, Russian names in the Kazakh one...)
_KINDS = ("", "_common", "_est", "_rus", "_islamic", "_hinduism", "_unisex", "_nonbinary")
_GENDERS: tuple[tuple[str, Gender | None], ...] = (("", None), ("_male", "male"), ("_female", "female"))
_ATTRIBUTES: dict[str, Gender | None] = {
    f"{stem}{infix}{kind}": gender
    for stem in ("first_names", "first_romanized_names")
    for infix, gender in _GENDERS
    for kind in _KINDS
}
# Locales that write the family name first ("Nguyễn Thị Minh Khai", "Nagy Gábor"): there a name starts with it.
FAMILY_NAME_FIRST = ("vi_VN", "hu_HU")


@functools.cache
def _tables() -> tuple[frozenset[str], dict[str, Gender]]:
    names: set[str] = set()
    seen: dict[str, set[str]] = {"female": set(), "male": set()}
    for locale in AVAILABLE_LOCALES:
        provider = _provider(locale)
        if provider is None:
            continue
        for attribute, gender in _ATTRIBUTES.items():
            values = provider.__dict__.get(attribute)  # a class attribute; some locales define a property
            if not isinstance(values, list | tuple | dict | set | frozenset):
                continue
            folded = {n.casefold() for n in values if isinstance(n, str)}
            names.update(folded)
            if gender is not None:
                seen[gender].update(folded)
    genders: dict[str, Gender] = {n: "female" for n in seen["female"] - seen["male"]}
    genders.update({n: "male" for n in seen["male"] - seen["female"]})
    return frozenset(names), genders


def _provider(locale: str) -> type | None:
    try:
        provider: type = importlib.import_module(f"faker.providers.person.{locale}").Provider
    except (ImportError, AttributeError):
        return None
    return provider


@functools.cache
def _leading_family_names() -> frozenset[str]:
    found: set[str] = set()
    for locale in FAMILY_NAME_FIRST:
        values = (_provider(locale) or object).__dict__.get("last_names")
        if isinstance(values, list | tuple | dict):
            found.update(n.casefold() for n in values if isinstance(n, str))
    return frozenset(found)


_FAMILY_ATTRIBUTES = (
    "last_names",
    "last_romanized_names",
    "last_names_common",
    "last_names_islamic",
    "last_names_hinduism",
)


@functools.cache
def _family_names() -> frozenset[str]:
    found: set[str] = set()
    for locale in AVAILABLE_LOCALES:
        for attribute in _FAMILY_ATTRIBUTES:
            values = (_provider(locale) or object).__dict__.get(attribute)
            if isinstance(values, list | tuple | dict | set | frozenset):
                found.update(n.casefold() for n in values if isinstance(n, str))
    return frozenset(found)


def is_name_word(word: str) -> bool:
    """A given or family name of some Faker locale ("María", "García", "Okonkwo")."""
    return is_given_name(word) or word.casefold() in _family_names()


def is_given_name(word: str) -> bool:
    return word.casefold() in _tables()[0]


def can_start_a_name(word: str) -> bool:
    """A given name, or a family name of a locale that writes it first."""
    return is_given_name(word) or word.casefold() in _leading_family_names()


def gender_of(given_name: str) -> Gender | None:
    """'female' or 'male' where every locale that lists the name agrees; None otherwise."""
    return _tables()[1].get(given_name.casefold())
