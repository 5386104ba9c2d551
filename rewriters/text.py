"""What counts as a word edge, for every exact-value search privgate does.

Latin, Greek and Cyrillic words are delimited by non-word characters, so "Ann" must not match
inside "Annabelle". Chinese and Japanese are written without spaces: a name there is bounded by
nothing, and a word-boundary rule would never match it. One definition serves the restorer, the
value propagation, the leak scan and span expansion, so they can never disagree.
"""

from __future__ import annotations

import re

# Scripts written without spaces between words (CJK ideographs, kana, hangul).
_UNSPACED = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
# A character that continues a spaced word: a word character of a script that uses spaces.
WORD_CHAR = rf"[^\W{_UNSPACED}]"
_WORD_CHAR = re.compile(WORD_CHAR)


def is_word_char(ch: str) -> bool:
    return bool(_WORD_CHAR.match(ch))


def bounded(value: str) -> str:
    """A regex for `value` that cannot start or end in the middle of a spaced word."""
    head = rf"(?<!{WORD_CHAR})" if is_word_char(value[0]) else ""
    tail = rf"(?!{WORD_CHAR})" if is_word_char(value[-1]) else ""
    return head + re.escape(value) + tail


def any_of(values: list[str] | set[str]) -> re.Pattern[str] | None:
    """One regex for many values, longest first, each word-bounded; fast-rejects by first character.

    Values are grouped by which edges need a boundary, so each boundary class is compiled once
    per group rather than once per value (compiling it per value cost ~2 ms a value).
    """
    if not values:
        return None
    groups: dict[tuple[bool, bool], list[str]] = {}
    for value in sorted(values, key=len, reverse=True):
        groups.setdefault((is_word_char(value[0]), is_word_char(value[-1])), []).append(value)
    branches = []
    for (head, tail), members in sorted(groups.items(), reverse=True):
        body = "|".join(re.escape(v) for v in members)
        branches.append((rf"(?<!{WORD_CHAR})" if head else "") + f"(?:{body})" + (rf"(?!{WORD_CHAR})" if tail else ""))
    first = "".join(sorted({re.escape(v[0]) for v in values}))
    return re.compile(f"(?=[{first}])(?:" + "|".join(branches) + ")")


def word_set(text: str) -> set[str]:
    """The spaced words of a text, to test a candidate surrogate's words against it in O(1)."""
    return set(re.findall(rf"{WORD_CHAR}+", text))
