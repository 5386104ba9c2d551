"""OpenAI `POST /v1/embeddings`: the input is rewritten; vectors have nothing to restore."""

from __future__ import annotations

from typing import Any

from gateway.errors import BadRequest, Vendor
from gateway.protocols.base import Event, Extraction
from rewriters.restore import Restorer

vendor = Vendor.OPENAI
upstream = "openai"


def extract(body: dict[str, Any]) -> Extraction:
    found = Extraction()
    value = body.get("input")
    if isinstance(value, str):
        found.add(body, "input")
    elif isinstance(value, list):
        for i in range(len(value)):
            found.add(value, i)  # strings only; token-id arrays carry no text we can read
    else:
        raise BadRequest("`input` must be a string or a list")
    return found


def restore_json(value: Any, restorer: Restorer) -> Any:
    return value


class StreamTap:
    finished = True  # embeddings are never streamed

    def __init__(self, restorer: Restorer) -> None:
        pass

    def feed(self, event: Event) -> list[Event]:
        return [event]

    def flush(self) -> list[Event]:
        return []
