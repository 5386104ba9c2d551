"""Put the originals back: surrogates in an answer become the app's own values again.

One regex automaton over every surrogate of the request (longest first, word-bounded where the
surrogate starts or ends inside a spaced word, see `rewriters.text`). For streams, `StreamRestorer` emits everything
except the longest tail that could still grow into a surrogate, so the client sees text as early
as possible and never half a surrogate.

An answer may also pass through a filter after restoration (PPVD's match-and-replace of memorised
records): prose strings and streamed prose go through it, JSON text (tool-call arguments) does not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Protocol

from rewriters.text import any_of


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


class Restorer:
    """Surrogate → original for one request."""

    def __init__(self, mapping: Mapping[str, str], answer_filter: AnswerFilter | None = None) -> None:
        self.mapping = {s: o for s, o in mapping.items() if s}
        self.answer_filter = answer_filter
        ordered = sorted(self.mapping, key=len, reverse=True)
        self._regex = any_of(ordered)
        self._prefixes = {s[:i] for s in ordered for i in range(1, len(s) + 1)}
        self._longest = len(ordered[0]) if ordered else 0

    def __bool__(self) -> bool:
        return self._regex is not None or self.answer_filter is not None

    def with_filter(self, answer_filter: AnswerFilter) -> Restorer:
        return Restorer(self.mapping, answer_filter)

    def restore(self, text: str, *, json_string: bool = False) -> str:
        if not text:
            return text
        if self._regex is not None:
            escape = json_escape if json_string else str
            text = str(self._regex.sub(lambda m: escape(self.mapping[m.group()]), text))
        if self.answer_filter is not None and not json_string:
            text = self.answer_filter.apply(text)
        return text

    def stream(self, *, json_string: bool = False) -> StreamRestorer:
        return StreamRestorer(self, json_string=json_string)

    def holdback_start(self, buffer: str) -> int:
        """Start of the longest suffix of `buffer` that is a prefix of (or equal to) some surrogate."""
        for i in range(max(0, len(buffer) - self._longest), len(buffer)):
            if buffer[i:] in self._prefixes:
                return i
        return len(buffer)


class StreamRestorer:
    """Restores one stream of text fragments (one choice's content, one tool call's arguments)."""

    def __init__(self, restorer: Restorer, *, json_string: bool = False) -> None:
        self._restorer = restorer
        self._json = json_string
        self._buffer = ""
        self._before = ""  # the last character already emitted, for the word-boundary check
        answer_filter = None if json_string else restorer.answer_filter
        self._filter = answer_filter.stream() if answer_filter is not None else None

    def feed(self, fragment: str) -> str:
        if self._restorer._regex is None:
            restored = fragment
        else:
            self._buffer += fragment
            restored = self._emit(self._restorer.holdback_start(self._buffer))
        return self._filter.feed(restored) if self._filter is not None else restored

    def flush(self) -> str:
        restored = self._emit(len(self._buffer), final=True)
        if self._filter is None:
            return restored
        return self._filter.feed(restored) + self._filter.flush()

    def _emit(self, cut: int, final: bool = False) -> str:
        regex, buffer = self._restorer._regex, self._buffer
        if regex is None or not buffer:
            return ""
        # A match may start before the cut and end after it only if it is complete in the buffer.
        text = self._before + buffer
        offset = len(self._before)
        out: list[str] = []
        pos = offset
        end = cut
        for m in regex.finditer(text, offset):
            if m.start() - offset >= cut and not final:
                break
            out.append(text[pos : m.start()])
            original = self._restorer.mapping[m.group()]
            out.append(json_escape(original) if self._json else original)
            pos = m.end()
            end = max(end, m.end() - offset)
        out.append(text[pos : offset + end])
        emitted_raw = buffer[:end]
        self._buffer = buffer[end:]
        if emitted_raw:
            self._before = emitted_raw[-1]
        return "".join(out)
