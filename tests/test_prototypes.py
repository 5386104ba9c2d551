"""DAMPER-style prototypes: candidates, training on a small fixture, the artifact, and the failure modes."""

from __future__ import annotations

import json
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from rewriters.detectors.prototypes import (
    NOT_PRIVATE,
    PrototypeArtifactError,
    PrototypeDetector,
    PrototypeModel,
    TokenPoolEncoder,
    WindowEncoder,
    candidate_spans,
)
from rewriters.embedding import load_embedder
from rewriters.prototypes_cli import app
from rewriters.prototypes_train import Example, TrainConfig, read_examples, train

torch.set_num_threads(1)

# Disjoint term sets: the detector is trained on TRAIN_* and must flag HELD_* it never saw.
TRAIN_CONDITIONS = [
    "type 2 diabetes",
    "breast cancer",
    "major depression",
    "epilepsy",
    "hepatitis C",
    "asthma",
    "Crohn's disease",
    "bipolar disorder",
    "lung cancer",
    "multiple sclerosis",
    "HIV",
    "psoriasis",
    "atrial fibrillation",
    "anorexia",
    "glaucoma",
]
HELD_CONDITIONS = ["pancreatic adenocarcinoma", "schizophrenia", "chronic kidney disease", "lupus"]
TRAIN_DRUGS = [
    "metformin",
    "sertraline",
    "insulin",
    "lithium",
    "warfarin",
    "methadone",
    "prednisone",
    "tamoxifen",
    "olanzapine",
    "levothyroxine",
    "atorvastatin",
    "fluoxetine",
    "adalimumab",
    "apixaban",
    "tramadol",
]
HELD_DRUGS = ["gemcitabine", "clozapine", "hydroxychloroquine", "furosemide"]
TEMPLATES = [
    "{name} was diagnosed with {c} last spring and now takes {d} every morning.",
    "My father has {c}; his doctor prescribed {d} after the visit.",
    "Patient with {c}, discharged on {d}, follow up in two weeks.",
    "I stopped taking {d} because my {c} got better.",
    "Can you help me write to my boss? I have {c} and I am on {d}.",
]
NEGATIVES = [
    "The hospital cafeteria is open from seven until noon on weekdays.",
    "Please book a meeting room for the quarterly budget review.",
    "Write a short poem about autumn leaves and the river.",
    "The pharmacy on Main Street closes early on Sundays.",
    "Summarize this article about the history of the printing press.",
]
NAMES = ["Anna Weber", "Tom Baker", "Lucia Ferri", "Omar Haddad", "Julie Martin"]


def example(template: str, condition: str, drug: str) -> Example:
    """Fill {c} and {d} in the order they appear, recording each value's offsets."""
    values = {"{c}": (condition, "CONDITION"), "{d}": (drug, "MEDICATION")}
    text, spans, rest = "", [], template
    while True:
        slots = [(rest.find(k), k) for k in values if k in rest]
        if not slots:
            return Example(text + rest, spans)
        at, slot = min(slots)
        value, label = values[slot]
        text += rest[:at]
        spans.append((len(text), len(text) + len(value), label))
        text += value
        rest = rest[at + len(slot) :]


def fixture_examples(conditions: list[str], drugs: list[str], count: int, seed: int) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        if i % 4 == 3:
            out.append(Example(rng.choice(NEGATIVES), []))
            continue
        template = rng.choice(TEMPLATES).replace("{name}", rng.choice(NAMES))
        out.append(example(template, rng.choice(conditions), rng.choice(drugs)))
    return out


@pytest.fixture(scope="module")
def encoder() -> TokenPoolEncoder:
    return TokenPoolEncoder(load_embedder("all-MiniLM-L6-v2"))


@pytest.fixture(scope="module")
def trained(encoder: TokenPoolEncoder) -> tuple[PrototypeModel, dict[str, object]]:
    config = TrainConfig(epochs=25, prototypes_per_label=3, prototypes_not_private=8, negatives_per_positive=3, seed=1)
    return train(fixture_examples(TRAIN_CONDITIONS, TRAIN_DRUGS, 120, seed=0), encoder, config, domain="fixture")


def test_candidates_are_content_word_runs_that_stop_at_punctuation() -> None:
    text = "She has stage III HER2-positive carcinoma, treated with metformin 500 mg."
    found = {text[s:e] for s, e in candidate_spans(text)}
    assert {"stage III HER2-positive carcinoma", "metformin 500 mg", "metformin", "treated with metformin"} <= found
    assert not any("," in f or f.split()[0].lower() in {"with", "has"} for f in found)
    assert all(len(f.split()) <= 5 for f in found)
    chinese = "患者被诊断为糖尿病，服用二甲双胍。"
    words = {chinese[s:e] for s, e in candidate_spans(chinese)}
    assert "糖尿病" in words and not any("，" in w for w in words)


def _reference_vectors(text: str, spans: list[tuple[int, int]], context: int = 12, window: int = 256) -> np.ndarray:
    """The span vectors written the slow, obvious way: the eager int8 model over the text's overlapping
    windows (one batch: int8 activations are scaled per batch), and a plain mean per span, read from
    the first window that holds it."""
    from transformers import AutoModel, AutoTokenizer

    model_dir = str(load_embedder("all-MiniLM-L6-v2").model_dir)  # type: ignore[attr-defined]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    with warnings.catch_warnings():  # the same int8 quantisation as the encoder, which announces its move too
        warnings.simplefilter("ignore")
        model = torch.ao.quantization.quantize_dynamic(AutoModel.from_pretrained(model_dir).eval(), {torch.nn.Linear})
    enc = tokenizer(
        [text], return_offsets_mapping=True, return_overflowing_tokens=True, truncation=True, max_length=window,
        stride=window // 4, padding=True, return_tensors="pt",
    )
    offsets = enc.pop("offset_mapping").numpy()
    enc.pop("overflow_to_sample_mapping")
    with torch.inference_mode():
        states = model(**enc).last_hidden_state.numpy()
    rows = []
    for s, e in spans:
        for row in range(len(states)):
            real = (offsets[row, :, 1] > offsets[row, :, 0]) & enc["attention_mask"][row].numpy().astype(bool)
            if s >= offsets[row, real, 0].min() and e <= offsets[row, real, 1].max():
                break
        inside = np.flatnonzero(real & (offsets[row, :, 0] < e) & (offsets[row, :, 1] > s))
        around = real.copy()
        around[: max(inside[0] - context, 0)], around[inside[-1] + context + 1 :], around[inside] = False, False, False
        span_vec, ctx_vec = states[row, inside].mean(axis=0), states[row, around].mean(axis=0)
        rows.append(np.concatenate([span_vec / np.linalg.norm(span_vec), ctx_vec / np.linalg.norm(ctx_vec)]))
    return np.array(rows)


def test_token_pool_encoder_matches_the_plain_eager_computation(encoder: TokenPoolEncoder) -> None:
    """The traced graph and the running-sum pooling are speed-ups only: same vectors as the eager model."""
    text = "Ana Souza was diagnosed with lupus in March; she now takes hydroxychloroquine 200 mg daily."
    spans = candidate_spans(text)
    got = encoder.encode([text], [spans])[0]
    assert got.shape == (len(spans), encoder.dim)
    np.testing.assert_allclose(got, _reference_vectors(text, spans), atol=1e-5)
    # a text longer than one window is read in overlapping windows, and every candidate gets its vector
    long = text + " " + " ".join(f"Visit {i} was routine." for i in range(80))
    some = candidate_spans(long)[::7]
    assert len(some) > 40
    np.testing.assert_allclose(encoder.encode([long], [some])[0], _reference_vectors(long, some), atol=1e-5)


def test_training_converges_and_flags_held_out_terms_not_negatives(
    trained: tuple[PrototypeModel, dict[str, object]], encoder: TokenPoolEncoder
) -> None:
    model, report = trained
    first, last = model.meta["loss_first_last"]
    assert last < first * 0.9, (first, last)
    assert set(model.labels) == {"CONDITION", "MEDICATION"} and NOT_PRIVATE in model.prototype_labels
    assert all(0.3 <= t <= 1.0 for t in model.thresholds.values())
    detector = PrototypeDetector(model, encoder)
    held = fixture_examples(HELD_CONDITIONS, HELD_DRUGS, 24, seed=7)
    positives = [ex for ex in held if ex.spans]
    found = detector.detect([ex.text for ex in positives])
    gold = [(s, e) for ex in positives for s, e, _ in ex.spans]
    hit = [
        any(sp.start < e and s < sp.end for sp in spans)
        for ex, spans in zip(positives, found, strict=True)
        for s, e, _ in ex.spans
    ]
    assert sum(hit) / len(gold) >= 0.7, f"recall on unseen terms {sum(hit)}/{len(gold)}"
    labelled = [
        (sp.label, ex.text[sp.start : sp.end]) for ex, spans in zip(positives, found, strict=True) for sp in spans
    ]
    right = sum((label == "CONDITION") == (value in " ".join(HELD_CONDITIONS)) for label, value in labelled)
    assert right / max(len(labelled), 1) >= 0.7, labelled
    quiet = detector.detect(NEGATIVES + ["The weather in Paris was lovely and we walked along the river."])
    assert sum(len(spans) for spans in quiet) <= 1, quiet


def test_artifact_round_trips(trained: tuple[PrototypeModel, dict[str, object]], tmp_path: Path) -> None:
    model, _ = trained
    model.save(tmp_path / "art")
    loaded = PrototypeModel.load(tmp_path / "art")
    assert loaded.prototype_labels == model.prototype_labels and loaded.thresholds == model.thresholds
    assert np.allclose(loaded.prototypes, model.prototypes)
    assert all(np.array_equal(loaded.weights[k], model.weights[k]) for k in model.weights)
    meta = json.loads((tmp_path / "art" / "meta.json").read_text())
    assert meta["embedder"] == "all-MiniLM-L6-v2" and len(meta["embedder_fingerprint"]) == 64
    text = "My aunt has lupus and takes clozapine daily."
    before = PrototypeDetector(model, TokenPoolEncoder(load_embedder("all-MiniLM-L6-v2"))).detect([text])
    after = PrototypeDetector.load(tmp_path / "art", load_embedder("all-MiniLM-L6-v2")).detect([text])
    assert before == after


def test_missing_corrupt_or_foreign_artifacts_fail_clearly(
    trained: tuple[PrototypeModel, dict[str, object]], tmp_path: Path
) -> None:
    model, _ = trained
    embedder = load_embedder("all-MiniLM-L6-v2")
    with pytest.raises(PrototypeArtifactError, match="missing"):
        PrototypeDetector.load(tmp_path / "nowhere", embedder)
    art = model.save(tmp_path / "art")
    head = art / "head.npz"
    head.write_bytes(head.read_bytes()[:-7] + b"garbage")
    with pytest.raises(PrototypeArtifactError, match="checksum"):
        PrototypeDetector.load(art, embedder)
    art = model.save(tmp_path / "art2")
    meta = json.loads((art / "meta.json").read_text())
    meta["embedder_fingerprint"] = "0" * 64
    (art / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(PrototypeArtifactError, match="retrain"):
        PrototypeDetector.load(art, embedder)
    (art / "prototypes.faiss").unlink()
    with pytest.raises(PrototypeArtifactError, match="prototypes.faiss is missing"):
        PrototypeDetector.load(art, embedder)


def test_cli_trains_an_artifact_that_loads(tmp_path: Path) -> None:
    data = tmp_path / "ex.jsonl"
    rows = fixture_examples(TRAIN_CONDITIONS, TRAIN_DRUGS, 40, seed=3)
    lines = [
        json.dumps({"text": ex.text, "spans": [{"start": s, "end": e, "label": lab} for s, e, lab in ex.spans]})
        for ex in rows
    ]
    data.write_text("\n".join(lines))
    assert len(read_examples(data)) == 40
    out = tmp_path / "artifact"
    result = CliRunner().invoke(
        app, ["train", "--domain", "t", "--examples", str(data), "--out", str(out), "--epochs", "5", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    assert "held-out" in result.output and (out / "meta.json").is_file()
    assert PrototypeModel.load(out).meta["domain"] == "t"
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "short", "spans": [{"start": 2, "end": 40, "label": "X"}]}))
    assert CliRunner().invoke(app, ["train", "--domain", "t", "--examples", str(bad), "--out", str(out)]).exit_code == 2


SHIPPED = Path(__file__).resolve().parent.parent / "policies"


@pytest.mark.parametrize("domain", ["medical", "finance", "legal"])
def test_shipped_artifacts_load_and_are_small(domain: str) -> None:
    art = SHIPPED / "artifacts" / domain
    size = sum(p.stat().st_size for p in art.iterdir())
    assert size < 2_000_000
    model = PrototypeModel.load(art)
    assert model.meta["domain"] == domain and model.labels


def test_window_encoder_serves_the_multilingual_embedder() -> None:
    encoder = WindowEncoder(load_embedder("multilingual-e5-small"))
    text = "患者被诊断为糖尿病，服用二甲双胍。"
    spans = candidate_spans(text)
    (vectors,) = encoder.encode([text], [spans])
    assert vectors.shape == (len(spans), encoder.dim) == (len(spans), 768)
    assert np.allclose(np.linalg.norm(vectors[:, :384], axis=1), 1.0, atol=1e-4)
    assert encoder.kind == "window" and len(encoder.fingerprint()) == 64
