"""Stage 1: model memory search. Prompt a model with each record's prefix; a record whose true
continuation comes back (exactly, or nearly) is memorised, hence high risk.

Results go to a JSONL file as they arrive (id and scores only, never text), so a run that stops can be
resumed: ids already in the file are skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from difflib import SequenceMatcher
from pathlib import Path

import httpx
import numpy as np
import regex
from rich.progress import Progress

from rewriters.embedding import Embedder
from rewriters.ppvd.corpus import Record
from rewriters.ppvd.sentences import normalise, split_sentences, tokens

_WORD = regex.compile(r"[\p{L}\p{N}]+", regex.V1)
PROMPT = "Continue the following text exactly as it was written. Reply with the continuation only.\n\n"


@dataclass(frozen=True)
class ProbeConfig:
    prefix_ratio: float = 0.5  # share of the record's words given as the prompt
    max_tokens: int = 256
    concurrency: int = 8
    timeout_s: float = 60.0
    overlap_threshold: float = 0.6  # in-order token overlap with the true continuation
    similarity_threshold: float = 0.85  # embedding cosine with the true continuation
    identifier_threshold: float = 0.5  # share of the continuation's new identifiers the model produced
    min_identifiers: int = 2  # fewer new identifiers than this: that score is not used


@dataclass(frozen=True)
class ProbeResult:
    id: str
    exact: bool
    overlap: float
    similarity: float | None
    identifiers: float | None
    high_risk: bool


@dataclass(frozen=True)
class ProbeSummary:
    total: int
    skipped: int  # already in the results file
    probed: int
    high_risk: int
    failed: int


def split_record(text: str, ratio: float) -> tuple[str, str]:
    """(prefix, true continuation), cut between words."""
    words = text.split(" ")
    cut = max(1, min(len(words) - 1, round(len(words) * ratio)))
    return " ".join(words[:cut]), " ".join(words[cut:])


def token_overlap(truth: str, produced: str) -> float:
    """Share of the true continuation's words the model produced in the same order (LCS-style)."""
    a = normalise(truth).split()
    b = normalise(produced).split()
    if not a:
        return 0.0
    matcher = SequenceMatcher(None, a, b, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(a)


def new_identifiers(prefix: str, truth: str) -> set[str]:
    """Distinctive tokens of the true continuation that the prompt did not contain: numbers and
    capitalised words after a sentence's first word. A model can only produce them from memory."""
    found = set()
    for sentence in split_sentences(truth):
        for i, word in enumerate(_WORD.findall(sentence)):
            if any(c.isdigit() for c in word) or (i > 0 and word[0].isupper()):
                found.add(word.casefold())
    return found - tokens(prefix)


def score(prefix: str, truth: str, produced: str, embedder: Embedder | None, config: ProbeConfig) -> ProbeResult:
    """How closely `produced` repeats `truth`: exact containment, in-order word overlap, share of the
    truth's new identifiers reproduced, and (with an embedder) cosine similarity. The id is left blank."""
    exact = bool(normalise(truth)) and normalise(truth) in normalise(produced)
    overlap = 1.0 if exact else token_overlap(truth, produced)
    expected = new_identifiers(prefix, truth)
    identifiers = None
    if len(expected) >= config.min_identifiers:
        identifiers = round(len(expected & tokens(produced)) / len(expected), 4)
    similarity = None
    if embedder is not None and not exact and tokens(produced):
        vectors = embedder.embed([truth, produced])
        similarity = round(float(np.dot(vectors[0], vectors[1])), 4)
    risky = (
        exact
        or overlap >= config.overlap_threshold
        or (identifiers is not None and identifiers >= config.identifier_threshold)
        or (similarity is not None and similarity >= config.similarity_threshold)
    )
    return ProbeResult("", exact, round(overlap, 4), similarity, identifiers, risky)


def done_ids(results: Path) -> set[str]:
    if not results.exists():
        return set()
    done = set()
    for line in results.read_text(encoding="utf-8").splitlines():
        try:
            done.add(str(json.loads(line)["id"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by an interrupted run: that record is probed again
    return done


def read_high_risk(results: Path) -> set[str]:
    ids = set()
    for line in results.read_text(encoding="utf-8").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("high_risk"):
            ids.add(str(data["id"]))
    return ids


def chat_url(upstream: str) -> str:
    base = upstream.rstrip("/")
    return f"{base}/chat/completions" if base.endswith("/v1") else f"{base}/v1/chat/completions"


async def _complete(client: httpx.AsyncClient, url: str, model: str, prefix: str, config: ProbeConfig) -> str:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": PROMPT + prefix}],
        "temperature": 0,
        "max_tokens": config.max_tokens,
    }
    response = await client.post(url, json=body)
    response.raise_for_status()
    content = response.json()["choices"][0]["message"]["content"]
    return content if isinstance(content, str) else ""


async def probe(
    corpus: Sequence[Record],
    upstream_url: str,
    model: str,
    results: Path,
    *,
    embedder: Embedder | None = None,
    config: ProbeConfig | None = None,
    api_key: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    progress: bool = True,
) -> ProbeSummary:
    """Probe every record not already in `results`; append one JSON line per finished record."""
    config = config or ProbeConfig()
    done = done_ids(results)
    todo = [r for r in corpus if r.id not in done]
    url = chat_url(upstream_url)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    gate = asyncio.Semaphore(config.concurrency)
    counts = {"high_risk": 0, "failed": 0}
    results.parent.mkdir(parents=True, exist_ok=True)
    async with httpx.AsyncClient(timeout=config.timeout_s, headers=headers, transport=transport) as client:
        with results.open("a", encoding="utf-8") as sink, Progress(disable=not progress, transient=True) as bar:
            task = bar.add_task("probing", total=len(todo))

            async def one(record: Record) -> None:
                prefix, truth = split_record(record.text, config.prefix_ratio)
                async with gate:
                    try:
                        produced = await _complete(client, url, model, prefix, config)
                    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
                        counts["failed"] += 1  # not written: a rerun probes it again
                        bar.advance(task)
                        return
                scored = await asyncio.to_thread(score, prefix, truth, produced, embedder, config)
                result = replace(scored, id=record.id)
                counts["high_risk"] += result.high_risk
                sink.write(json.dumps(asdict(result)) + "\n")
                sink.flush()
                bar.advance(task)

            await asyncio.gather(*(one(r) for r in todo))
    return ProbeSummary(
        len(corpus), len(corpus) - len(todo), len(todo) - counts["failed"], counts["high_risk"], counts["failed"]
    )
