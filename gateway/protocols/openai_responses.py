"""OpenAI `POST /v1/responses`."""

from __future__ import annotations

import copy
from typing import Any

from gateway.errors import BadRequest, Vendor
from gateway.protocols.base import Channels, Event, Extraction, restore_tree
from rewriters.restore import Restorer

vendor = Vendor.OPENAI
upstream = "openai"
restore_json = restore_tree

_TEXT_PARTS = {"input_text", "output_text", "text"}
_DELTAS = {
    "response.output_text.delta": ("text", False),
    "response.refusal.delta": ("refusal", False),
    "response.function_call_arguments.delta": ("args", True),
}
_DONES = {
    "response.output_text.done": "text",
    "response.refusal.done": "refusal",
    "response.function_call_arguments.done": "args",
}


def _add_text_or_parts(found: Extraction, item: dict[str, Any], key: str) -> None:
    """A field that is a string or a list of text parts (message content, tool outputs)."""
    value = item.get(key)
    if isinstance(value, str):
        found.add(item, key)
    elif isinstance(value, list):
        for part in value:
            if isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
                found.add(part, "text")


def extract(body: dict[str, Any]) -> Extraction:
    found = Extraction()
    found.add(body, "instructions")
    items = body.get("input")
    if isinstance(items, str):
        found.add(body, "input")
        found.mark_question(len(found.slots) - 1)
        return found
    if items is None:
        return found
    if not isinstance(items, list):
        raise BadRequest("`input` must be a string or a list of items")
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = item.get("type", "message")
        first = len(found.slots)
        if kind == "message":
            _add_text_or_parts(found, item, "content")
            if item.get("role") == "user":
                found.mark_question(first)
        elif kind == "function_call":
            found.add_json_text(item, "arguments")
        elif kind in ("function_call_output", "custom_tool_call_output"):
            _add_text_or_parts(found, item, "output")
        elif kind == "custom_tool_call":
            found.add(item, "input")
    return found


def _channel(data: dict[str, Any], kind: str) -> tuple[Any, ...]:
    return (kind, data.get("output_index", 0), data.get("content_index", 0))


class StreamTap:
    """Restores text and argument deltas per output item; `.done` and summary events in full."""

    def __init__(self, restorer: Restorer) -> None:
        self._channels = Channels(restorer)
        self._restorer = restorer
        self._last_delta: dict[tuple[Any, ...], dict[str, Any]] = {}
        self._sequence = 0
        self.finished = False

    def feed(self, event: Event) -> list[Event]:
        data = event.data
        if not isinstance(data, dict):
            return [*self.flush(), event]
        kind = data.get("type", event.name)
        out: list[Event] = []
        if kind in _DELTAS and isinstance(data.get("delta"), str):
            channel_kind, json_text = _DELTAS[kind]
            key = _channel(data, channel_kind)
            data["delta"] = self._channels.feed(key, data["delta"], json_text=json_text)
            self._last_delta[key] = {k: v for k, v in data.items() if k != "delta"}
        else:
            if kind in _DONES:
                out.extend(self._flush_channel(_channel(data, _DONES[kind])))
            elif kind in ("response.completed", "response.failed", "response.incomplete", "error"):
                out.extend(self.flush())
                self.finished = True
            restore_tree(data, self._restorer)
        out.append(event)
        return [self._numbered(e) for e in out]

    def flush(self) -> list[Event]:
        return [e for key in self._channels.open_channels() for e in self._flush_channel(key)]

    def _flush_channel(self, key: tuple[Any, ...]) -> list[Event]:
        text = self._channels.flush(key)
        if not text or key not in self._last_delta:
            return []
        data = {**copy.deepcopy(self._last_delta[key]), "delta": text}
        return [Event(data.get("type"), data, "")]

    def _numbered(self, event: Event) -> Event:
        """Inserted events shift the stream: keep `sequence_number` strictly increasing."""
        if isinstance(event.data, dict) and "sequence_number" in event.data:
            event.data["sequence_number"] = self._sequence
            self._sequence += 1
        return event
