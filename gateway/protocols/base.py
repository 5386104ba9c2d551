"""What every wire-format adapter shares: text slots in a body, and restoring answers.

An adapter only translates shapes. It names the model-bound texts of a request body (`extract`),
and restores an answer (`restore_json`) or a stream of events (`StreamTap`). Detection, rewriting
and auditing never know which vendor a text came from.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import BadRequest
from rewriters.restore import Restorer, StreamRestorer

# Keys whose string values are JSON text (tool-call arguments): restored with JSON escaping.
JSON_TEXT_KEYS = frozenset({"arguments", "partial_json"})
# Keys that are protocol identifiers, never model text.
IDENTIFIER_KEYS = frozenset(
    {
        "id",
        "object",
        "type",
        "role",
        "model",
        "call_id",
        "tool_call_id",
        "item_id",
        "finish_reason",
        "stop_reason",
        "system_fingerprint",
        "status",
        "event",
    }
)


@dataclass
class TextSlot:
    """One model-bound string inside a (mutable) request body."""

    container: Any  # the dict or list that holds the string
    key: Any

    def get(self) -> str:
        value = self.container[self.key]
        assert isinstance(value, str)
        return value

    def set(self, value: str) -> None:
        self.container[self.key] = value


@dataclass
class Extraction:
    """The text slots of one request body, and how to write rewritten texts back."""

    slots: list[TextSlot] = field(default_factory=list)
    question_slots: list[int] = field(default_factory=list)  # the last user turn: what the answer must serve
    _finalizers: list[Callable[[], None]] = field(default_factory=list)

    def texts(self) -> list[str]:
        return [s.get() for s in self.slots]

    def mark_question(self, first_slot: int) -> None:
        """The slots added since `first_slot` are the user's latest turn (the last call wins)."""
        if first_slot < len(self.slots):
            self.question_slots = list(range(first_slot, len(self.slots)))

    def apply(self, texts: list[str]) -> None:
        for slot, text in zip(self.slots, texts, strict=True):
            slot.set(text)
        for finalize in self._finalizers:
            finalize()

    def add(self, container: Any, key: Any) -> None:
        """A plain text field; absent or non-string values are not model text and are skipped."""
        if isinstance(container, dict | list) and _has(container, key) and isinstance(container[key], str):
            self.slots.append(TextSlot(container, key))

    def add_tree(self, value: Any) -> None:
        """Every string leaf of a JSON value (tool inputs are objects of arbitrary shape)."""
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        for key, child in items:
            if isinstance(child, str):
                self.slots.append(TextSlot(value, key))
            else:
                self.add_tree(child)

    def add_json_text(self, container: Any, key: Any) -> None:
        """A string holding JSON (tool-call arguments): rewrite its string leaves, then re-serialise.

        Detecting on the raw JSON would miss values behind escapes (\\u00fc, \\") and could cut one.
        """
        if not (_has(container, key) and isinstance(container[key], str)):
            return
        try:
            document = json.loads(container[key])
        except ValueError:
            self.add(container, key)  # not JSON after all: treat it as text
            return
        if not isinstance(document, dict | list):
            self.add(container, key)
            return
        self.add_tree(document)
        self._finalizers.append(lambda: container.__setitem__(key, json.dumps(document, ensure_ascii=False)))


def _has(container: Any, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(container, list) and isinstance(key, int) and 0 <= key < len(container)


def require_list(body: dict[str, Any], key: str) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list):
        raise BadRequest(f"`{key}` must be a list")
    return value


def restore_tree(value: Any, restorer: Restorer, *, json_text: bool = False) -> Any:
    """Restore every string of a JSON answer in place; JSON-text fields get JSON escaping."""
    if not restorer:
        return value
    if isinstance(value, str):
        return restorer.restore(value, json_string=json_text)
    if isinstance(value, dict):
        for key, child in value.items():
            if key not in IDENTIFIER_KEYS:
                value[key] = restore_tree(child, restorer, json_text=key in JSON_TEXT_KEYS)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            value[i] = restore_tree(child, restorer, json_text=json_text)
    return value


class Channels:
    """One stream restorer per channel of a stream (a choice's text, a tool call's arguments...)."""

    def __init__(self, restorer: Restorer) -> None:
        self._restorer = restorer
        self._open: dict[tuple[Any, ...], StreamRestorer] = {}

    def feed(self, key: tuple[Any, ...], fragment: str, *, json_text: bool = False) -> str:
        if key not in self._open:
            self._open[key] = self._restorer.stream(json_string=json_text)
        return self._open[key].feed(fragment)

    def flush(self, key: tuple[Any, ...]) -> str:
        stream = self._open.pop(key, None)
        return stream.flush() if stream else ""

    def open_channels(self) -> list[tuple[Any, ...]]:
        return list(self._open)


@dataclass
class Event:
    """One server-sent event; `data` is parsed JSON, or None for a non-JSON payload like [DONE]."""

    name: str | None
    data: Any
    raw: str

    def encode(self) -> bytes:
        payload = self.raw if self.data is None else json.dumps(self.data, ensure_ascii=False)
        head = f"event: {self.name}\n" if self.name else ""
        return f"{head}data: {payload}\n\n".encode()
