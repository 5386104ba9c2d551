"""Anthropic `POST /v1/messages`."""

from __future__ import annotations

from typing import Any

from gateway.errors import BadRequest, Vendor
from gateway.protocols.base import Channels, Event, Extraction, require_list, restore_tree
from rewriters.restore import Restorer

vendor = Vendor.ANTHROPIC
upstream = "anthropic"
restore_json = restore_tree

_DELTA_FIELDS = {"text_delta": ("text", False), "input_json_delta": ("partial_json", True)}


def _add_blocks(found: Extraction, blocks: list[Any]) -> None:
    for block in blocks:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            found.add(block, "text")
        elif kind == "tool_use":
            found.add_tree(block.get("input"))
        elif kind == "document" and isinstance(block.get("source"), dict) and block["source"].get("type") == "text":
            found.add(block["source"], "data")
        elif kind == "tool_result":
            content = block.get("content")
            if isinstance(content, str):
                found.add(block, "content")
            elif isinstance(content, list):
                _add_blocks(found, content)


def extract(body: dict[str, Any]) -> Extraction:
    found = Extraction()
    system = body.get("system")
    if isinstance(system, str):
        found.add(body, "system")
    elif isinstance(system, list):
        _add_blocks(found, system)
    elif system is not None:
        raise BadRequest("`system` must be a string or a list of text blocks")
    for message in require_list(body, "messages"):
        if not isinstance(message, dict):
            continue
        first = len(found.slots)
        if isinstance(message.get("content"), str):
            found.add(message, "content")
        elif isinstance(message.get("content"), list):
            _add_blocks(found, message["content"])
        if message.get("role") == "user":
            found.mark_question(first)
    return found


class StreamTap:
    """Restores text and tool-input JSON deltas per content block; flushes at `content_block_stop`."""

    def __init__(self, restorer: Restorer) -> None:
        self._channels = Channels(restorer)
        self._restorer = restorer
        self._delta_type: dict[int, str] = {}
        self.finished = False

    def feed(self, event: Event) -> list[Event]:
        data = event.data
        if not isinstance(data, dict):
            return [event]
        kind = data.get("type")
        if kind == "content_block_delta":
            delta = data.get("delta") or {}
            field = _DELTA_FIELDS.get(delta.get("type", ""))
            if field and isinstance(delta.get(field[0]), str):
                index = data.get("index", 0)
                self._delta_type[index] = delta["type"]
                delta[field[0]] = self._channels.feed((index,), delta[field[0]], json_text=field[1])
            return [event]
        out = self._flush_block(data.get("index", 0)) if kind == "content_block_stop" else []
        if kind in ("message_stop", "error"):
            out = self.flush()
            self.finished = True
        restore_tree(data, self._restorer)
        return [*out, event]

    def flush(self) -> list[Event]:
        return [e for (index,) in self._channels.open_channels() for e in self._flush_block(index)]

    def _flush_block(self, index: int) -> list[Event]:
        text = self._channels.flush((index,))
        if not text:
            return []
        delta_type = self._delta_type.get(index, "text_delta")
        data = {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": delta_type, _DELTA_FIELDS[delta_type][0]: text},
        }
        return [Event("content_block_delta", data, "")]
