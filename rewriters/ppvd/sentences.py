"""Sentence boundaries for PPVD: one splitter for the store, whole answers and streams.

The store and the guard must cut text at the same places, or a memorised sentence would not be
found again. Boundaries are local (they look one character ahead at most), so a stream cut at a
confirmed boundary segments exactly like the whole text would.
"""

from __future__ import annotations

import unicodedata

import regex

# `.!?` (then closing quotes/brackets) followed by white space; `。！？` need no space; newlines.
_BOUNDARY = regex.compile(
    r"[.!?]+[\"'”’)\]]*(?=\s)|[。！？]+[\"'”’」』）)]*|\n+",
    regex.V1,
)
# A word before a full stop that does not end a sentence: titles, common abbreviations, initials.
_ABBREVIATIONS = frozenset(
    "dr mr mrs ms prof st sr jr vs no nr approx e.g i.e fig dept mt ca cf al inc ltd co corp".split()
)
# Capitalised but never identifying: titles before a name.
_TITLES = frozenset("dr mr mrs ms miss mx prof sir dame rev st jr sr herr frau sig sra mme mlle".split())
_LAST_WORD = regex.compile(r"([\p{L}.'’]+)$", regex.V1)
_STRIP = " \t\r\n\"'“”‘’.,;:!?。！？、，；：「」『』()（）[]"
_TOKENS = regex.compile(r"[\p{L}\p{N}]+", regex.V1)
_UNSPACED = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]+", regex.V1)

MIN_CHARS = 12  # shorter fragments ("Thanks.", "Dr.") are never matched: too common to mean a record


def _ends_sentence(text: str, match: regex.Match[str]) -> bool:
    if not match.group().startswith("."):
        return True
    word = _LAST_WORD.search(text, 0, match.start())
    if word is None:
        return True
    token = word.group(1).rstrip(".").casefold()
    return not (token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha()))


def boundaries(text: str) -> list[int]:
    """Offsets just after each sentence-ending mark (a newline run counts as one)."""
    return [m.end() for m in _BOUNDARY.finditer(text) if _ends_sentence(text, m)]


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence with its surrounding white space trimmed; text between spans is blank."""
    spans: list[tuple[int, int]] = []
    start = 0
    for end in [*boundaries(text), len(text)]:
        piece = text[start:end]
        core = piece.strip()
        if core:
            left = start + piece.index(core[0])
            spans.append((left, left + len(core)))
        start = end
    return spans


def split_sentences(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def stream_cut(buffer: str) -> int:
    """How much of a stream buffer is made of finished sentences: the last boundary with a character after it.

    The character after is needed because a boundary could still grow ("?" then "!", "。" then "」").
    """
    cuts = [end for end in boundaries(buffer) if end < len(buffer)]
    return cuts[-1] if cuts else 0


def normalise(sentence: str) -> str:
    """The form exact matching compares: NFKC, case-folded, white space collapsed, outer punctuation off."""
    folded = unicodedata.normalize("NFKC", sentence).casefold()
    return " ".join(folded.split()).strip(_STRIP)


def matchable(sentence: str) -> bool:
    return len(normalise(sentence)) >= MIN_CHARS


def identifying(sentence: str) -> set[str]:
    """Tokens that could point at a person or record: capitalised words after the sentence's first
    word (names, places), numbers of four or more digits (record numbers, phone groups), and the
    character pairs of Chinese/Japanese/Korean runs (no capitals there). Case-folded."""
    text = unicodedata.normalize("NFKC", sentence)
    found = set()
    for i, word in enumerate(_TOKENS.findall(_UNSPACED.sub(" ", text))):
        digits = sum(c.isdigit() for c in word)
        if digits >= 4 or (digits == 0 and i > 0 and len(word) >= 2 and word[0].isupper()):
            found.add(word.casefold())
    found -= _TITLES
    for run in _UNSPACED.findall(text.casefold()):
        found.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return found


def tokens(sentence: str) -> set[str]:
    """Words of spaced scripts, and character pairs of Chinese/Japanese/Korean runs (no spaces there)."""
    folded = unicodedata.normalize("NFKC", sentence).casefold()
    words = {w for w in _TOKENS.findall(_UNSPACED.sub(" ", folded)) if len(w) >= 2}
    for run in _UNSPACED.findall(folded):
        words.update(run[i : i + 2] for i in range(max(1, len(run) - 1)))
    return words
