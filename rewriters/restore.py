"""Put the originals back: surrogates in an answer become the app's own values again.

One regex automaton over every surrogate of the request (longest first, word-bounded where the
surrogate starts or ends inside a spaced word, see `rewriters.text`). Answers rarely repeat a
multi-word surrogate verbatim: "4821 Maple Ave, Springfield" comes back as "4821 Maple Ave\\nSpringfield"
or "4821 Maple Ave,\\nSpringfield". So each separator between a surrogate's words also matches one line
break (with the surrounding spaces of an indented or Markdown line, and the comma kept or dropped where
the surrogate had one); a paragraph break, other punctuation or a longer word never matches. In JSON
text a line break is the escape `\\n`, and a surrogate right after such an escape is still word-bounded.
Where the answer broke the line at one of the surrogate's commas and the original has as many commas,
the original gets the same break at its own comma.

For streams, `StreamRestorer` emits everything except the longest tail that could still grow into a
surrogate (or a line-broken form of one), so the client sees text as early as possible and never half
a surrogate.

An answer may also pass through a filter after restoration (PPVD's match-and-replace of memorised
records): prose strings and streamed prose go through it, JSON text (tool-call arguments) does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import regex

from rewriters.text import WORD_CHAR, any_of


class FragmentStream(Protocol):
    def feed(self, fragment: str) -> str: ...

    def flush(self) -> str: ...


class AnswerFilter(Protocol):
    """A rewrite of restored answer text, whole or streamed (the stream holds back as little as it can)."""

    def apply(self, text: str) -> str: ...

    def stream(self) -> FragmentStream: ...


def json_escape(value: str) -> str:
    """A value as it must appear inside a JSON string (tool-call arguments are JSON text)."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


_SEPARATOR = regex.compile(r",?\s+")  # between two words of a surrogate (or of an original)
_INDENT = 8  # spaces or tabs allowed on each side of a line break


@dataclass(frozen=True)
class _Syntax:
    """How the answer writes spaces and line breaks: raw in prose, escaped in JSON text."""

    space: str  # one horizontal space character
    newline: str  # one line break
    head: str  # before a surrogate that starts with a word character
    words: regex.Pattern[str]  # any separator, to read a matched form back into its words
    separator: regex.Pattern[str]  # one separator with at most one line break, for the canonical form
    unfinished: regex.Pattern[str]  # a separator that may still be growing at the end of a buffer
    json: bool

    def line_break(self, comma: bool) -> str:
        around = f"{self.space}{{0,{_INDENT}}}"
        return (",?" if comma else "") + around + self.newline + around


_PROSE = _Syntax(
    space=r"[ \t]",
    newline=r"\r?\n",
    head=rf"(?<!{WORD_CHAR})",
    words=regex.compile(r",?\s+"),
    separator=regex.compile(r",?(?=\s)[^\S\r\n]*(?:\r?\n|\r)?[^\S\r\n]*"),
    unfinished=regex.compile(r",\Z"),
    json=False,
)
_JSON = _Syntax(
    space=r"(?: |\\t)",
    newline=r"(?:\\r)?\\n",
    head=rf"(?:(?<!{WORD_CHAR})|(?<=(?<!\\)\\[nrt]))",
    words=regex.compile(r",?(?:\s|\\[nrt])+"),
    separator=regex.compile(r",?(?=[^\S\r\n]|\\[nrt])(?:[^\S\r\n]|\\t)*(?:(?:\\r)?\\n|\\r)?(?:[^\S\r\n]|\\t)*"),
    unfinished=regex.compile(r",?\\?\Z"),
    json=True,
)


def _inner_separators(value: str) -> list[regex.Match[str]]:
    return [m for m in _SEPARATOR.finditer(value) if m.start() > 0 and m.end() < len(value)]


def _body(value: str, syntax: _Syntax, capture: bool = False) -> str:
    """`value` as a pattern whose inner separators may also be a line break."""
    out, pos = [], 0
    group = "(" if capture else "(?:"
    for m in _inner_separators(value):
        out.append(regex.escape(value[pos : m.start()]))
        out.append(f"{group}{regex.escape(m.group())}|{syntax.line_break(',' in m.group())})")
        pos = m.end()
    out.append(regex.escape(value[pos:]))
    return "".join(out)


def _automaton(values: list[str], syntax: _Syntax) -> regex.Pattern[str] | None:
    """`rewriters.text.any_of` over the line-breakable forms of the values."""
    return any_of(values, body=lambda v: _body(v, syntax), head=syntax.head)


def _words(text: str, syntax: _Syntax) -> tuple[str, ...]:
    return tuple(syntax.words.split(text))


def _canonical(text: str, syntax: _Syntax) -> str:
    """Each separator (one line break at most) as one space, an unfinished one dropped: a prefix of a
    surrogate or of a line-broken form of it becomes a prefix of the surrogate's canonical form."""
    return str(syntax.unfinished.sub("", syntax.separator.sub(" ", text)))


class Restorer:
    """Surrogate → original for one request."""

    def __init__(self, mapping: Mapping[str, str], answer_filter: AnswerFilter | None = None) -> None:
        self.mapping = {s: o for s, o in mapping.items() if s}
        self.answer_filter = answer_filter
        ordered = sorted(self.mapping, key=len, reverse=True)
        self._ordered = ordered
        self._automata: dict[bool, regex.Pattern[str] | None] = {}  # compiled on first use: JSON text is rare
        canonical = {c for s in ordered for c in (_canonical(s, _PROSE), _SEPARATOR.sub(" ", s))}
        self._prefixes = {c[:i] for c in canonical for i in range(1, len(c) + 1)}
        self._firsts = {s[0] for s in ordered}
        # the longest text a line-broken form can take: each separator at most a break with full indents
        self._reach = max((len(s) + 40 * len(_inner_separators(s)) for s in ordered), default=0)
        by_words: dict[tuple[str, ...], str | None] = {}
        for s in ordered:
            words = _words(s, _PROSE)
            by_words[words] = None if words in by_words else s  # two surrogates with the same words: ambiguous
        self._by_words = by_words
        self._captures: dict[tuple[str, bool], regex.Pattern[str]] = {}

    def __bool__(self) -> bool:
        return bool(self.mapping) or self.answer_filter is not None

    def with_filter(self, answer_filter: AnswerFilter) -> Restorer:
        return Restorer(self.mapping, answer_filter)

    def restore(self, text: str, *, json_string: bool = False) -> str:
        if not text:
            return text
        automaton = self.automaton(json_string)
        if automaton is not None:
            text = str(automaton.sub(lambda m: self.replacement(m.group(), json_string), text))
        if self.answer_filter is not None and not json_string:
            text = self.answer_filter.apply(text)
        return text

    def stream(self, *, json_string: bool = False) -> StreamRestorer:
        return StreamRestorer(self, json_string=json_string)

    def automaton(self, json_string: bool = False) -> regex.Pattern[str] | None:
        """The regex over every surrogate and its line-broken forms, for prose or for JSON text."""
        if json_string not in self._automata:
            self._automata[json_string] = _automaton(self._ordered, _JSON if json_string else _PROSE)
        return self._automata[json_string]

    def replacement(self, matched: str, json_string: bool = False) -> str:
        """What a matched (possibly line-broken) surrogate becomes; itself where its words are ambiguous."""
        syntax = _JSON if json_string else _PROSE
        key = matched if matched in self.mapping else self._by_words.get(_words(matched, syntax))
        if key is None:
            return matched
        original = self.mapping[key] if matched == key else self._broken_like(key, matched, syntax)
        return json_escape(original) if json_string else original

    def _broken_like(self, key: str, matched: str, syntax: _Syntax) -> str:
        """The original, with a line break at its k-th comma where the answer broke the surrogate at its k-th."""
        original = self.mapping[key]
        capture = self._captures.get((key, syntax.json))
        if capture is None:
            capture = self._captures[(key, syntax.json)] = regex.compile(_body(key, syntax, capture=True), regex.V1)
        found = capture.fullmatch(matched)
        if found is None:
            return original
        ours = _inner_separators(key)
        commas = [j for j, m in enumerate(ours) if "," in m.group()]
        theirs = [m for m in _inner_separators(original) if "," in m.group()]
        if len(commas) != len(theirs):
            return original
        for j, m in reversed(list(zip(commas, theirs, strict=True))):
            seen = found.group(j + 1)
            if seen != ours[j].group():  # the answer broke the line here
                raw = json.loads(f'"{seen}"') if syntax.json else seen
                original = original[: m.start()] + raw + original[m.end() :]
        return original

    def holdback_start(self, buffer: str, *, json_string: bool = False) -> int:
        """Start of the longest suffix of `buffer` that is a prefix of (or equal to) some surrogate,
        or of a line-broken form of one."""
        syntax = _JSON if json_string else _PROSE
        for i in range(max(0, len(buffer) - self._reach), len(buffer)):
            if buffer[i] in self._firsts and _canonical(buffer[i:], syntax) in self._prefixes:
                return i
        return len(buffer)


class StreamRestorer:
    """Restores one stream of text fragments (one choice's content, one tool call's arguments)."""

    def __init__(self, restorer: Restorer, *, json_string: bool = False) -> None:
        self._restorer = restorer
        self._json = json_string
        self._regex = restorer.automaton(json_string)
        self._buffer = ""
        self._before = ""  # the last characters already emitted, for the word-boundary check
        answer_filter = None if json_string else restorer.answer_filter
        self._filter = answer_filter.stream() if answer_filter is not None else None

    def feed(self, fragment: str) -> str:
        if self._regex is None:
            restored = fragment
        else:
            self._buffer += fragment
            restored = self._emit(self._restorer.holdback_start(self._buffer, json_string=self._json))
        return self._filter.feed(restored) if self._filter is not None else restored

    def flush(self) -> str:
        restored = self._emit(len(self._buffer), final=True)
        if self._filter is None:
            return restored
        return self._filter.feed(restored) + self._filter.flush()

    def _emit(self, cut: int, final: bool = False) -> str:
        automaton, buffer = self._regex, self._buffer
        if automaton is None or not buffer:
            return ""
        # A match may start before the cut and end after it only if it is complete in the buffer.
        text = self._before + buffer
        offset = len(self._before)
        out: list[str] = []
        pos = offset
        end = cut
        for m in automaton.finditer(text, offset):
            if m.start() - offset >= cut and not final:
                break
            out.append(text[pos : m.start()])
            out.append(self._restorer.replacement(m.group(), self._json))
            pos = m.end()
            end = max(end, m.end() - offset)
        out.append(text[pos : offset + end])
        emitted_raw = buffer[:end]
        self._buffer = buffer[end:]
        self._before = (self._before + emitted_raw)[-3:]  # 3: a JSON escape before a word ("\\n")
        return "".join(out)
