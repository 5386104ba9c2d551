"""The detector protocol: a batch of texts in, one list of spans per text out."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from rewriters.spans import Span


class DetectorError(RuntimeError):
    """A detector could not run; a protected request must then be refused, never sent raw."""


@runtime_checkable
class Detector(Protocol):
    name: str

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        """Spans for each text, in the same order; offsets are code points into that text."""
        ...
