"""The sensitive corpus: JSONL, one record a line, `{"id": ..., "text": ...}`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Record:
    id: str
    text: str


class CorpusError(ValueError):
    """A corpus file that cannot be read; says the line, never its text."""


def read_corpus(path: Path) -> list[Record]:
    records: list[Record] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
                record = Record(str(data["id"]), str(data["text"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise CorpusError(f"{path}: line {number} is not a JSON object with `id` and `text`") from exc
            if record.id in seen:
                raise CorpusError(f"{path}: line {number} repeats an id")
            seen.add(record.id)
            records.append(record)
    return records
