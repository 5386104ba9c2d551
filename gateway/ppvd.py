"""PPVD in the request path: memorised records in answers are replaced, prompts that paste one are screened.

The answer side is an `AnswerFilter` on the request's restorer, so it sees exactly what the client
would get (surrogates already restored), whole or streamed, in every wire format. Hits go to the
audit record as store id, passage, sentence and score: never the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from gateway.errors import PolicyRefused
from policies import Policy

if TYPE_CHECKING:  # faiss and an embedder load only where a policy names a store
    from rewriters.ppvd import Hit, PpvdGuard, StreamGuard


def load_guards(policies: Mapping[str, Policy], secret: bytes) -> dict[str, PpvdGuard]:
    """One guard per domain whose policy names a store; raises `PpvdStoreError` for a store that cannot serve."""
    wanted = {name: p.ppvd for name, p in policies.items() if p.ppvd is not None}
    if not wanted:
        return {}
    from rewriters.ppvd import PpvdGuard, derive_key

    key = derive_key(secret)  # the key `privgate ppvd build` encrypted the store with
    loaded: dict[str, PpvdGuard] = {}
    by_store: dict[tuple[Path, float], PpvdGuard] = {}  # domains that share a store share its memory
    for name, config in wanted.items():
        place = (Path(config.store).resolve(), config.threshold)
        if place not in by_store:
            by_store[place] = PpvdGuard.load(place[0], key, config.threshold)
        loaded[name] = by_store[place]
    return loaded


def _report(hits: list[Hit], side: Literal["request", "answer"]) -> list[dict[str, Any]]:
    return [{**asdict(hit), "side": side} for hit in hits]


class AnswerGuard:
    """PPVD as a restorer's answer filter; each hit is appended to `hits` (the audit entry's list)."""

    def __init__(self, guard: PpvdGuard, hits: list[dict[str, Any]]) -> None:
        self._guard = guard
        self._hits = hits

    def apply(self, text: str) -> str:
        result = self._guard.guard_text(text)
        self._hits.extend(_report(result.hits, "answer"))
        return result.text

    def stream(self) -> _GuardedStream:
        return _GuardedStream(self._guard.stream(), self._hits)


class _GuardedStream:
    def __init__(self, stream: StreamGuard, hits: list[dict[str, Any]]) -> None:
        self._stream = stream
        self._hits = hits
        self._reported = 0

    def feed(self, fragment: str) -> str:
        return self._collect(self._stream.feed(fragment))

    def flush(self) -> str:
        return self._collect(self._stream.flush())

    def _collect(self, text: str) -> str:
        new = self._stream.hits[self._reported :]
        self._reported = len(self._stream.hits)
        self._hits.extend(_report(new, "answer"))
        return text


class RecordInPrompt(PolicyRefused):
    """A prompt pasted a high-risk record under `on_request: block`; `hits` go to the audit record."""

    code = "privgate_ppvd_record_in_prompt"

    def __init__(self, hits: list[dict[str, Any]]) -> None:
        super().__init__("the request repeats a record from the domain's high-risk store; not sent")
        self.hits = hits


def screen_prompt(texts: list[str], guard: PpvdGuard, mode: str) -> tuple[list[str], list[dict[str, Any]]]:
    """A prompt that pastes a high-risk record: refused (`block`) or given its sanitised version (`rewrite`)."""
    results = [guard.guard_text(text) for text in texts]
    hits = _report([hit for result in results for hit in result.hits], "request")
    if hits and mode == "block":
        raise RecordInPrompt(hits)
    return [result.text for result in results], hits
