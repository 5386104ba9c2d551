"""PPVD end to end on a fixture corpus: probe a real (loopback) memorising model, build a store with a
policy's own detectors, and guard JSON answers and streams with the real embedder and FAISS."""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from typer.testing import CliRunner

from policies import check_policy_text
from rewriters.detect import DetectionEngine
from rewriters.detectors.patterns import PatternDetector
from rewriters.embedding import Embedder, load_embedder
from rewriters.ppvd import (
    GuardResult,
    PpvdGuard,
    PpvdStoreError,
    Record,
    build_store,
    derive_key,
    policy_sanitiser,
    probe,
    read_corpus,
    read_high_risk,
)
from rewriters.ppvd.cli import app as ppvd_cli
from rewriters.ppvd.probe import PROMPT, split_record
from rewriters.ppvd.sentences import identifying, split_sentences
from tests.servers import LoopbackServer

FIXTURES = Path(__file__).parent / "fixtures" / "ppvd"
MEMORISED = {"n01", "n02", "n04", "n05", "n07", "n09"}  # reproduced verbatim by the fake model
PARAPHRASED = {"n11"}  # reproduced in other words
SECRET = b"test-gateway-secret-0123456789abcdef"
KEY = derive_key(SECRET)

POLICY_YAML = """\
name: clinic
version: "t1"
default_action: mask
detectors:
  presidio:
    enabled: false
  patterns:
    - name: mrn
      label: MEDICAL_RECORD_NUMBER
      regex: '\\b\\d{4}-\\d{4}\\b'
    - name: uk_phone
      label: PHONE_NUMBER
      regex: '\\b0\\d{3} \\d{3} \\d{4}\\b'
    - name: date
      label: DATE_TIME
      regex: '\\b\\d{1,2} (?:January|March|April|May|July|November) \\d{4}\\b'
  deny_lists:
    - label: PERSON
      values: [Harriet Okonkwo, Desmond Achterberg, Tobias Wrenfield, Marjorie, Eleanor Castellanos-Byrne,
               Gideon Falkenrath, Rupert, Lucian Haverstock-Pyne, Ambrose Tillinghast, Priyanka Venkataraman]
actions:
  DATE_TIME: generalize
"""


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def corpus() -> list[Record]:
    return read_corpus(FIXTURES / "notes.jsonl")


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return load_embedder("all-MiniLM-L6-v2")


@pytest.fixture(scope="module")
def sanitise() -> Any:
    policy, issues = check_policy_text(POLICY_YAML)
    assert policy is not None, issues
    engine = DetectionEngine([PatternDetector(policy.detectors.patterns, policy.detectors.deny_lists)])
    return policy_sanitiser(policy, engine)


def paraphrase(text: str) -> str:
    """The fake model's 'other words' for n11, and the paraphrased answer in the guard tests."""
    return (
        text.replace("was raised", "came back elevated")
        .replace("the ECG showed ST depression in the lateral leads", "his ECG had lateral ST depression")
        .replace("He was loaded with", "He received loading doses of")
        .replace("transferred for angiography", "was sent for coronary angiography")
    )


def memorising_app(records: list[Record]) -> Starlette:
    """An OpenAI-compatible model that has memorised some records of the corpus."""
    by_prefix = {split_record(r.text, 0.5)[0]: r for r in records}

    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        prefix = body["messages"][-1]["content"].removeprefix(PROMPT)
        record = by_prefix.get(prefix)
        if record is not None and record.id in MEMORISED:
            content = split_record(record.text, 0.5)[1]
        elif record is not None and record.id in PARAPHRASED:
            content = paraphrase(split_record(record.text, 0.5)[1])
        else:
            content = "I'm sorry, I don't have that document. Could you share more context about the patient?"
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
            }
        )

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.fixture(scope="module")
def upstream(corpus: list[Record]) -> Any:
    with LoopbackServer(memorising_app(corpus)) as server:
        yield server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, corpus: list[Record], embedder: Embedder, sanitise: Any) -> Path:
    out = tmp_path_factory.mktemp("ppvd") / "store-v1"
    high_risk = [r.text for r in corpus if r.id in MEMORISED | PARAPHRASED]
    build_store(high_risk, out, KEY, sanitise, embedder)
    return out


@pytest.fixture(scope="module")
def guard(store: Path, embedder: Embedder) -> PpvdGuard:
    return PpvdGuard.load(store, KEY, threshold=0.75, embedder=embedder)


def note(corpus: list[Record], rid: str) -> str:
    return next(r.text for r in corpus if r.id == rid)


# --- stage 1: probe -----------------------------------------------------------------------------------


def test_probe_finds_memorised_records_and_resumes(
    tmp_path: Path, corpus: list[Record], upstream: LoopbackServer, embedder: Embedder
) -> None:
    results = tmp_path / "probe.jsonl"
    summary = asyncio.run(probe(corpus, f"{upstream.url}/v1", "memo", results, embedder=embedder, progress=False))
    assert (summary.probed, summary.failed, summary.skipped) == (12, 0, 0)
    assert read_high_risk(results) == MEMORISED | PARAPHRASED
    rows = {json.loads(line)["id"]: json.loads(line) for line in results.read_text().splitlines()}
    assert all(rows[i]["exact"] for i in MEMORISED)
    assert not rows["n11"]["exact"] and rows["n11"]["similarity"] >= 0.8
    assert "Okonkwo" not in results.read_text()  # ids and scores only
    again = asyncio.run(probe(corpus, upstream.url, "memo", results, embedder=embedder, progress=False))
    assert (again.skipped, again.probed) == (12, 0)
    assert len(results.read_text().splitlines()) == 12


def test_probe_counts_upstream_failures_and_writes_nothing(tmp_path: Path, corpus: list[Record]) -> None:
    results = tmp_path / "probe.jsonl"
    with LoopbackServer(Starlette(routes=[])) as empty:  # every request: 404
        summary = asyncio.run(probe(corpus[:3], empty.url, "memo", results, progress=False))
    assert (summary.failed, summary.probed) == (3, 0)
    assert results.read_text() == ""


# --- stages 2-3: build ----------------------------------------------------------------------------------


def test_build_writes_a_versioned_encrypted_store(store: Path, corpus: list[Record]) -> None:
    meta = json.loads((store / "meta.json").read_text())
    assert meta["format_version"] == 1 and meta["embedder"] == "all-MiniLM-L6-v2"
    assert meta["index_kind"] == "flat-ip" and meta["passages"] == 7 and meta["sentences"] == 11
    assert len(meta["fingerprint"]) == 64
    raw = b"".join(p.read_bytes() for p in store.iterdir())
    for rid in MEMORISED:
        for sentence in split_sentences(note(corpus, rid)):
            assert sentence.encode() not in raw  # texts are encrypted at rest


def test_secure_versions_come_from_the_policy_and_hold_no_original_value(
    guard: PpvdGuard, corpus: list[Record]
) -> None:
    first = split_sentences(note(corpus, "n01"))[0]
    result = guard.guard_text(first)
    assert (
        result.text == "Patient [PERSON], MRN [MEDICAL_RECORD_NUMBER], was admitted on March 2023 with "
        "community-acquired pneumonia."
    )
    phone = split_sentences(note(corpus, "n05"))[2]
    assert guard.guard_text(phone).text == "Her home phone number is [PHONE_NUMBER]."


def test_hnsw_index_above_the_threshold(tmp_path: Path, corpus: list[Record], embedder: Embedder) -> None:
    out = tmp_path / "hnsw"
    meta = build_store(
        [r.text for r in corpus], out, KEY, lambda s: ["[redacted]"] * len(s), embedder, hnsw_threshold=10
    )
    assert meta.index_kind == "hnsw-ip"
    loaded = PpvdGuard.load(out, KEY, threshold=0.85, embedder=embedder)
    said = "Sure. Priyanka Venkataraman, MRN 5520-1187, said her migraine with aura got worse over six weeks."
    result = loaded.guard_text(said)
    assert result.text == "Sure. [redacted]" and not result.hits[0].exact and result.hits[0].score >= 0.85


def test_build_refuses_an_existing_store(store: Path, embedder: Embedder) -> None:
    with pytest.raises(PpvdStoreError, match="not empty"):
        build_store(["Patient Harriet Okonkwo was admitted."], store, KEY, lambda s: ["[PERSON]"], embedder)


# --- stage 4: match and replace ---------------------------------------------------------------------------


def test_memorised_sentence_in_a_json_answer_is_replaced(guard: PpvdGuard, corpus: list[Record]) -> None:
    leaked = split_sentences(note(corpus, "n07"))
    answer = f"Here is what I recall about that case.\n\n{leaked[0]} {leaked[1]}\nLet me know if you need more."
    result = guard.guard_text(answer)
    assert "Falkenrath" not in result.text and "7702-3318" not in result.text
    assert result.text.startswith("Here is what I recall about that case.\n\nMr [PERSON], MRN [MEDICAL_RECORD_NUMBER]")
    assert result.text.endswith(f"{leaked[1]}\nLet me know if you need more.")  # nothing protected in it: kept
    assert [h.exact for h in result.hits] == [True]
    assert {h.store_id for h in result.hits} == {guard.store_id}
    assert "Falkenrath" not in repr(result.hits)


def test_paraphrased_leak_is_replaced_by_near_match(guard: PpvdGuard) -> None:
    reworded = "Mr Ambrose Tillinghast (MRN 9925-4471) came in with chest pain that radiated to his left arm."
    result = guard.guard_text(reworded)
    assert result.hits and not result.hits[0].exact and 0.75 <= result.hits[0].score < 1.0
    assert (
        result.text == "Mr [PERSON], MRN [MEDICAL_RECORD_NUMBER], attended with chest pain radiating to the left arm."
    )


def test_a_look_alike_sentence_about_someone_else_is_kept(guard: PpvdGuard) -> None:
    other = "Mr Barnaby Quist, MRN 1234-9876, attended with chest pain radiating to the left arm."
    assert guard.guard_text(other) == GuardResult(other, [])


def test_unrelated_answer_passes_unchanged(guard: PpvdGuard, corpus: list[Record]) -> None:
    answers = [
        "Community-acquired pneumonia is usually treated with antibiotics. Most patients improve within a week!",
        "Atrial fibrillation raises the risk of stroke, so anticoagulation is often advised. Ask your GP.",
        note(corpus, "n03"),  # a record the model did not memorise is not in the store
        "患者需要按时服药。请在三个月后复诊！",
    ]
    for answer in answers:
        result = guard.guard_text(answer)
        assert (result.text, result.hits) == (answer, [])


def test_stream_split_across_chunks_is_replaced(guard: PpvdGuard, corpus: list[Record]) -> None:
    leaked = split_sentences(note(corpus, "n01"))
    answer = f"Certainly! {leaked[0]} {leaked[2]} Is there anything else?"
    whole = guard.guard_text(answer)
    rng = random.Random(7)
    for _ in range(5):
        stream = guard.stream()
        out, pos = [], 0
        while pos < len(answer):
            step = rng.randint(1, 9)
            out.append(stream.feed(answer[pos : pos + step]))
            pos += step
        out.append(stream.flush())
        assert "".join(out) == whole.text
        assert "Okonkwo" not in "".join(out) and "0161 496 0732" not in "".join(out)
        assert [h.sentence for h in stream.hits] == [h.sentence for h in whole.hits] and len(stream.hits) == 2


def test_stream_holds_back_only_the_unfinished_sentence(guard: PpvdGuard) -> None:
    stream = guard.stream()
    assert stream.feed("Hello there") == ""
    assert stream.feed(". How can I help tod") == "Hello there."
    assert stream.feed("ay?") == ""  # "?" could still be followed by "!"
    assert stream.feed("\n你好。") == " How can I help today?\n"
    assert stream.flush() == "你好。"


def test_sentence_boundaries_skip_abbreviations_and_initials() -> None:
    text = "Dr. Okafor saw J. Smith at St Mary's. BP 120/80 on 3.5.2021! Next?\n次回は来週です。ok"
    assert split_sentences(text) == [
        "Dr. Okafor saw J. Smith at St Mary's.",
        "BP 120/80 on 3.5.2021!",
        "Next?",
        "次回は来週です。",
        "ok",
    ]


def test_identifying_tokens_are_names_and_long_numbers_not_titles() -> None:
    found = identifying("Yesterday Dr Okafor phoned Mrs Jane Doe on 0161 496 0732 about 3 doses.")
    assert found == {"okafor", "jane", "doe", "0161", "0732"}


# --- failing loudly at start-up ---------------------------------------------------------------------------


def copy_store(store: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(store, target)
    return target


def test_corrupt_texts_fail_at_load(store: Path, tmp_path: Path, embedder: Embedder) -> None:
    broken = copy_store(store, tmp_path)
    blob = bytearray((broken / "texts.bin").read_bytes())
    blob[40] ^= 0x01
    (broken / "texts.bin").write_bytes(bytes(blob))
    with pytest.raises(PpvdStoreError, match="corrupt"):
        PpvdGuard.load(broken, KEY, embedder=embedder)


def test_corrupt_index_fails_at_load(store: Path, tmp_path: Path, embedder: Embedder) -> None:
    broken = copy_store(store, tmp_path)
    index = broken / "index.faiss"
    index.write_bytes(index.read_bytes()[:100])
    with pytest.raises(PpvdStoreError, match="index.faiss is corrupt"):
        PpvdGuard.load(broken, KEY, embedder=embedder)


def test_wrong_key_missing_store_bad_metadata_and_other_embedder(
    store: Path, tmp_path: Path, embedder: Embedder
) -> None:
    with pytest.raises(PpvdStoreError, match="wrong key"):
        PpvdGuard.load(store, derive_key(b"another-secret-0123456789"), embedder=embedder)
    with pytest.raises(PpvdStoreError, match="no PPVD store"):
        PpvdGuard.load(tmp_path / "nowhere", KEY, embedder=embedder)
    broken = copy_store(store, tmp_path)
    meta = json.loads((broken / "meta.json").read_text())
    (broken / "meta.json").write_text(json.dumps({**meta, "fingerprint": "0" * 64}))
    with pytest.raises(PpvdStoreError, match="embedder"):
        PpvdGuard.load(broken, KEY, embedder=embedder)
    (broken / "meta.json").write_text("{not json")
    with pytest.raises(PpvdStoreError, match="not valid PPVD metadata"):
        PpvdGuard.load(broken, KEY, embedder=embedder)


# --- the CLI ----------------------------------------------------------------------------------------------


def test_cli_probe_then_build_from_a_policy(tmp_path: Path, upstream: LoopbackServer, embedder: Embedder) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "clinic.yaml").write_text(POLICY_YAML)
    secret = tmp_path / "secret.key"
    secret.write_bytes(SECRET + b"\n")
    results, out = tmp_path / "probe.jsonl", tmp_path / "store"
    corpus = str(FIXTURES / "notes.jsonl")
    runner = CliRunner()
    probed = runner.invoke(
        ppvd_cli,
        ["probe", "--corpus", corpus, "--upstream", f"{upstream.url}/v1", "--model", "m", "--out", str(results)],
    )
    assert probed.exit_code == 0, probed.output
    args = ["build", "--corpus", corpus, "--policy", "clinic", "--out", str(out), "--policy-dir", str(policies)]
    built = runner.invoke(ppvd_cli, [*args, "--high-risk", str(results), "--secret-file", str(secret)])
    assert built.exit_code == 0, built.output
    assert "7 passages, 11 sentences" in " ".join(built.output.split())
    loaded = PpvdGuard.load(out, KEY, threshold=0.75, embedder=embedder)
    assert loaded.meta.passages == 7
    neither = runner.invoke(ppvd_cli, [*args, "--secret-file", str(secret)])
    assert neither.exit_code == 2
    env = {k: v for k, v in os.environ.items() if k != "PRIVGATE_SECRET_KEY"}
    no_key = runner.invoke(ppvd_cli, [*args, "--all", "--out", str(tmp_path / "other")], env=env)
    assert no_key.exit_code == 2 and "secret" in no_key.output
