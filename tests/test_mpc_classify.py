"""The MPC sequence-classification head: a tiny random encoder and head, real party processes, plaintext oracle."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from secure_infer.backend import BackendError, BackendUnsupported
from secure_infer.mpc.backend import MpcBackend
from secure_infer.mpc.classifier import HeadSpec, head_logits_plain, inspect_head, load_head, save_head_file
from secure_infer.mpc.cli import app
from secure_infer.mpc.cluster import ClusterJob, PartyCluster
from secure_infer.mpc.config import MpcConfig
from secure_infer.mpc.reference import DITTO, PLAIN_MPC, Approx, encode, pad_ids
from secure_infer.mpc.tokenize import TextTokenizer
from secure_infer.mpc.weights import random_weights, save_model_dir
from tests.test_mpc import IDS, SPEC, VOCAB

LABELS = ["benign", "medical", "financial"]
TEXTS = ["the patient was admitted with chest pain", "invoice is overdue", "discharged two days later"]
# fixed point (16 bits) and CrypTen's tanh, whose sigmoid takes 3 Newton steps for 1/(1 + e^-x) (up to 0.4%
# relative error), amplified by the pooler and classifier matmuls; the logits of this head are ~0.3 apart
LOGIT_TOL = 3e-2


def _head_tensors(seed: int, pooler: bool) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    d = SPEC.hidden
    state = {
        "classifier.weight": torch.randn(len(LABELS), d, generator=gen) * 0.8,
        "classifier.bias": torch.randn(len(LABELS), generator=gen) * 0.1,
    }
    if pooler:
        state["pooler.weight"] = torch.randn(d, d, generator=gen) * 0.3
        state["pooler.bias"] = torch.randn(d, generator=gen) * 0.1
    return state


@pytest.fixture(scope="module")
def seqcls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BertForSequenceClassification export as HuggingFace writes it: `bert.` keys, pooler, classifier."""
    directory = tmp_path_factory.mktemp("tiny-seqcls")
    encoder = random_weights(SPEC, seed=3)
    head = _head_tensors(11, pooler=True)
    tensors = {f"bert.{k}": v for k, v in encoder.items()}
    tensors["bert.pooler.dense.weight"] = head["pooler.weight"]
    tensors["bert.pooler.dense.bias"] = head["pooler.bias"]
    tensors["classifier.weight"] = head["classifier.weight"]
    tensors["classifier.bias"] = head["classifier.bias"]
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(directory / "model.safetensors"))
    config = SPEC.to_config() | {
        "architectures": ["BertForSequenceClassification"],
        "id2label": {str(i): label for i, label in enumerate(LABELS)},
        "label2id": {label: i for i, label in enumerate(LABELS)},
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return directory


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("tiny-bert"), SPEC, random_weights(SPEC, seed=3), VOCAB)


@pytest.fixture(scope="module")
def head_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    head = _head_tensors(12, pooler=False)
    path = tmp_path_factory.mktemp("head") / "topic-head.safetensors"
    return save_head_file(path, head["classifier.weight"], head["classifier.bias"], LABELS)


def _plain_logits(head_path: Path, ids: list[list[int]], approx: Approx) -> torch.Tensor:
    spec, state = load_head(head_path)
    tensor, mask = pad_ids(ids)
    with torch.no_grad():
        _, hidden = encode(random_weights(SPEC, seed=3), SPEC, tensor, mask, approx)
        return head_logits_plain(spec, state, hidden[-1], mask)


def test_head_formats_are_read_from_metadata_only(seqcls_dir: Path, head_file: Path) -> None:
    assert inspect_head(seqcls_dir) == HeadSpec(tuple(LABELS), SPEC.hidden, pooling="cls", pooler=True)
    assert inspect_head(head_file) == HeadSpec(tuple(LABELS), SPEC.hidden, pooling="mean", normalize=True)
    _, state = load_head(seqcls_dir)
    assert set(state) == {"classifier.weight", "classifier.bias", "pooler.weight", "pooler.bias"}


def test_mpc_logits_match_plaintext_for_a_sequence_classification_directory(seqcls_dir: Path) -> None:
    """[CLS] state, BERT pooler (dense + tanh) and classifier, all on shares; logits revealed to party 0."""
    job = ClusterJob(model_dir=seqcls_dir, mode="plain", precision_bits=16, classifier=seqcls_dir)
    cluster = PartyCluster(job)
    cluster.start()
    try:
        assert cluster.labels == LABELS
        result = cluster.run(IDS, timeout_s=60, op="classify")
        embedded = cluster.run(IDS, timeout_s=60)  # the same parties still serve embeddings
    finally:
        cluster.close()
    expected = _plain_logits(seqcls_dir, IDS, PLAIN_MPC)
    assert result.output.shape == (len(IDS), len(LABELS))
    assert torch.allclose(result.output, expected, atol=LOGIT_TOL), (result.output - expected).abs().max()
    assert torch.equal(result.output.argmax(-1), expected.argmax(-1))
    assert embedded.output.shape == (len(IDS), SPEC.hidden)


def test_backend_classifications_with_a_head_file_in_ditto_mode(encoder_dir: Path, head_file: Path) -> None:
    """Mean-pooled, L2-normalised under MPC, then the head: the endpoint's answer matches plaintext."""
    config = MpcConfig(model=str(encoder_dir), mode="ditto", classifier=str(head_file), max_seq_len=24, timeout_s=60)
    backend = MpcBackend(config)

    async def scenario() -> tuple[dict[str, object], dict[str, object]]:
        facts: dict[str, object] = {}
        try:
            answer = await backend.classify({"model": backend.models()[0], "input": TEXTS}, facts)
        finally:
            await backend.aclose()
        return answer, facts

    answer, facts = asyncio.run(scenario())
    ids = TextTokenizer(encoder_dir, 24).ids(TEXTS)
    expected = torch.softmax(_plain_logits(head_file, ids, DITTO), dim=-1)
    assert answer["object"] == "list" and answer["model"] == f"mpc/{encoder_dir.name}"
    data = answer["data"]
    assert isinstance(data, list) and [row["index"] for row in data] == [0, 1, 2]
    for row, probs in zip(data, expected, strict=True):
        assert row["object"] == "classification"
        assert row["label"] == LABELS[int(probs.argmax())]
        got = torch.tensor([row["scores"][label] for label in LABELS])
        assert torch.allclose(got, probs, atol=5e-3), (got, probs)
        assert abs(float(got.sum()) - 1.0) < 1e-5
    assert facts["mpc_op"] == "classify" and facts["mpc_mode"] == "ditto"
    assert answer["usage"] == {"prompt_tokens": sum(map(len, ids)), "total_tokens": sum(map(len, ids))}


def test_missing_or_malformed_head_fails_clearly_before_any_party_starts(encoder_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-head.safetensors"
    with pytest.raises(BackendError, match="MPC classifier head not found: 'no-such-head.safetensors'"):
        MpcBackend(MpcConfig(model=str(encoder_dir), classifier=str(missing)))
    unlabelled = tmp_path / "unlabelled.safetensors"
    save_file({"weight": torch.zeros(2, SPEC.hidden), "bias": torch.zeros(2)}, str(unlabelled))
    with pytest.raises(BackendError, match="no `labels` metadata"):
        MpcBackend(MpcConfig(model=str(encoder_dir), classifier=str(unlabelled)))
    mismatch = save_head_file(tmp_path / "three.safetensors", torch.zeros(3, SPEC.hidden), torch.zeros(3), ["a"])
    with pytest.raises(BackendError, match="3 outputs but 1 labels"):
        MpcBackend(MpcConfig(model=str(encoder_dir), classifier=str(mismatch)))
    wrong_width = save_head_file(tmp_path / "wide.safetensors", torch.zeros(2, 7), torch.zeros(2), ["a", "b"])
    with pytest.raises(BackendError, match="width 7"):
        MpcBackend(MpcConfig(model=str(encoder_dir), classifier=str(wrong_width)))
    no_dir_head = tmp_path / "seqcls-without-head"
    save_model_dir(no_dir_head, SPEC, random_weights(SPEC, seed=1))
    with pytest.raises(BackendError, match="id2label"):
        MpcBackend(MpcConfig(model=str(encoder_dir), classifier=str(no_dir_head)))


def test_classifications_need_a_head(encoder_dir: Path) -> None:
    backend = MpcBackend(MpcConfig(model=str(encoder_dir)))
    with pytest.raises(BackendUnsupported, match="no classifier head"):
        asyncio.run(backend.classify({"model": backend.models()[0], "input": "invoice is overdue"}, {}))
    assert backend.cluster is None  # refused before any party process was started


def test_train_head_cli_writes_a_head_the_backend_accepts(encoder_dir: Path, tmp_path: Path) -> None:
    """`privgate secure train-head`: labels from a `label` field or, missing it, from the file's name."""
    gen = torch.Generator().manual_seed(0)
    topics = {"medical": "the patient was admitted with chest pain".split(), "billing": "invoice is overdue".split()}
    for name, words in topics.items():
        rows = []
        for k in range(40):
            picks = torch.randint(len(words), (3 + k % 4,), generator=gen).tolist()
            rows.append(json.dumps({"text": " ".join(words[i] for i in picks), "lang": "en"}))
        (tmp_path / f"{name}.jsonl").write_text("\n".join(rows), encoding="utf-8")
    out = tmp_path / "topics.safetensors"
    args = ["train-head", "--examples", str(tmp_path / "medical.jsonl"), "--examples", str(tmp_path / "billing.jsonl"),
            "--model", str(encoder_dir), "--out", str(out), "--lang", "en", "--max-len", "16"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    held_out = float(result.output.split(" on 64 training examples, ")[1].split()[0])
    assert held_out >= 0.9, result.output
    assert inspect_head(out) == HeadSpec(("billing", "medical"), SPEC.hidden, pooling="mean", normalize=True)
    assert MpcBackend(MpcConfig(model=str(encoder_dir), classifier=str(out))).head is not None
