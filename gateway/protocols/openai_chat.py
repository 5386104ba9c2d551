"""OpenAI `POST /v1/chat/completions`."""

from __future__ import annotations

import copy
from typing import Any

from gateway.errors import Vendor
from gateway.protocols.base import Channels, Event, Extraction, require_list, restore_tree
from rewriters.restore import Restorer

vendor = Vendor.OPENAI
upstream = "openai"
restore_json = restore_tree


def extract(body: dict[str, Any]) -> Extraction:
    found = Extraction()
    for message in require_list(body, "messages"):
        if not isinstance(message, dict):
            continue
        first = len(found.slots)
        content = message.get("content")
        if isinstance(content, str):
            found.add(message, "content")
        elif isinstance(content, list):  # multi-part: text parts only (images and audio are not text)
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    found.add(part, "text")
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                found.add_json_text(call["function"], "arguments")
        if isinstance(message.get("function_call"), dict):  # the legacy single-function form
            found.add_json_text(message["function_call"], "arguments")
        if message.get("role") == "user":
            found.mark_question(first)
    return found


class StreamTap:
    """Restores `delta.content` and tool-call argument deltas per choice, holding back only tails."""

    def __init__(self, restorer: Restorer) -> None:
        self._channels = Channels(restorer)
        self._restorer = restorer
        self._template: dict[str, Any] | None = None  # the last chunk's envelope, for flush chunks
        self.finished = False  # [DONE] (or an error) seen: a stream that ends before it was cut

    def feed(self, event: Event) -> list[Event]:
        chunk = event.data
        if not isinstance(chunk, dict):  # [DONE]
            self.finished = self.finished or event.raw.strip() == "[DONE]"
            return [*self.flush(), event]
        if "error" in chunk:
            self.finished = True
            return [Event(event.name, restore_tree(chunk, self._restorer), event.raw)]
        self._template = {k: v for k, v in chunk.items() if k not in ("choices", "usage")}
        before: list[Event] = []
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                delta["content"] = self._channels.feed(("content", index), delta["content"])
            if isinstance(delta.get("refusal"), str):
                delta["refusal"] = self._channels.feed(("refusal", index), delta["refusal"])
            for call in delta.get("tool_calls") or []:
                function = call.get("function") or {}
                if isinstance(function.get("arguments"), str):
                    key = ("tool", index, call.get("index", 0))
                    function["arguments"] = self._channels.feed(key, function["arguments"], json_text=True)
            if choice.get("finish_reason") is not None:
                before.extend(self._flush_choice(index))
        return [*before, event]

    def flush(self) -> list[Event]:
        indexes = sorted({key[1] for key in self._channels.open_channels()})
        return [e for i in indexes for e in self._flush_choice(i)]

    def _flush_choice(self, index: int) -> list[Event]:
        events = []
        for key in [k for k in self._channels.open_channels() if k[1] == index]:
            text = self._channels.flush(key)
            if not text:
                continue
            if key[0] == "tool":
                delta: dict[str, Any] = {"tool_calls": [{"index": key[2], "function": {"arguments": text}}]}
            else:
                delta = {key[0]: text}
            chunk = {
                **copy.deepcopy(self._template or {}),
                "choices": [{"index": index, "delta": delta, "finish_reason": None}],
            }
            events.append(Event(None, chunk, ""))
        return events
