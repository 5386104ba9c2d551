"""DAMPER's rewriting policy: prototype-judged preference pairs, DPO on a LoRA adapter, artifacts, fallbacks.

The judge is real (the shipped medical prototypes and MiniLM); the rewriter is a tiny random Llama built
here and taught one answer, so DPO and generation run in seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from gateway import create_app
from gateway.runtime import Runtime, StartupError, load_dampers
from policies import SHIPPED_DIR
from policies.loader import load_policy
from rewriters.damper.align import AlignConfig, train_dpo, write_artifact
from rewriters.damper.artifact import DamperArtifact, DamperArtifactError
from rewriters.damper.model import base_model_sha256, load_base
from rewriters.damper.pairs import Pair, best_and_worst
from rewriters.damper.prompt import SpanItem, clean, messages
from rewriters.damper.rewriter import SpanRewriter
from rewriters.damper.scoring import PrototypeJudge, leak
from rewriters.detectors.prototypes import PrototypeDetector
from rewriters.embedding import load_embedder
from tests.conftest import make_settings
from tests.damper_models import build_tiny_lm, teach
from tests.servers import FakeLLM, LoopbackServer

torch.set_num_threads(1)
TAUGHT = "a serious illness"
PROMPT = "He was diagnosed with stage III HER2-positive carcinoma last spring. What should he ask his oncologist?"
ITEMS = [
    SpanItem("He was diagnosed with stage III HER2-positive carcinoma last spring.", 22, 55, "CONDITION"),
    SpanItem("My father has type 2 diabetes and takes metformin.", 14, 29, "CONDITION"),
    SpanItem("She was treated for Hodgkin lymphoma in 2019.", 20, 36, "CONDITION"),
    SpanItem("Il souffre d'une sclérose en plaques depuis 2015.", 17, 36, "CONDITION"),
]


@pytest.fixture(scope="module")
def judge() -> PrototypeJudge:
    detector = PrototypeDetector.open(SHIPPED_DIR.parent / "artifacts" / "medical")
    judge = PrototypeJudge(detector, load_embedder("all-MiniLM-L6-v2"))
    judge.fit_centroids(ITEMS)
    return judge


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LM that answers every rewriting prompt with TAUGHT."""
    directory = build_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))
    _, tokenizer = load_base(str(directory))
    taught = [*ITEMS, SpanItem(PROMPT, 22, 55, "CONDITION")]
    prompts = [tokenizer.apply_chat_template(messages(i), tokenize=False, add_generation_prompt=True) for i in taught]
    teach(directory, prompts, TAUGHT)
    return directory


def _pairs() -> list[Pair]:
    return [Pair(item, TAUGHT, f"the patient has {item.value}", 0.4, -0.6) for item in ITEMS * 2]


@pytest.fixture(scope="module")
def artifact_dir(base_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    model, tokenizer = load_base(str(base_dir))
    peft_model, _ = train_dpo(model, tokenizer, _pairs(), _pairs()[:4], AlignConfig(epochs=1, batch=4, max_length=2048))
    out = tmp_path_factory.mktemp("damper") / "medical"
    meta = {"domain": "medical", "labels": ["CONDITION"], "base_model": str(base_dir),
            "base_model_sha256": base_model_sha256(str(base_dir)), "sees_span": True}  # fmt: skip
    write_artifact(out, peft_model, _pairs(), {}, meta)  # no vocabulary: every candidate is the rewriter's
    return out


def test_clean_keeps_phrases_and_drops_sentences() -> None:
    assert clean(' "a blood cancer."\nExplanation: ...') == "a blood cancer"
    assert clean("Replacement: an anticoagulant") == "an anticoagulant"
    assert clean("Here's a possible rewording: the patient has a condition") is None
    assert clean("") is None and clean("bad \ufffd bytes") is None


def test_a_strict_rewriter_never_sees_the_value() -> None:
    item = ITEMS[0]
    shown = "\n".join(m["content"] for m in messages(item, sees_span=False))
    assert item.value not in shown and "[CONDITION]" in shown and "last spring" in shown
    assert item.value in messages(item)[-1]["content"]


def test_pairs_choose_the_candidate_the_prototypes_score_best(judge: PrototypeJudge) -> None:
    item = ITEMS[0]
    answers = [TAUGHT, item.value, "Here's a possible rewording: the patient", "stage III breast carcinoma"]
    verdicts = [v for v in judge.judge(item, [clean(a) for a in answers]) if v is not None]
    pair = best_and_worst(item, answers, judge)
    assert pair is not None
    best = max(verdicts, key=lambda v: v.score)
    assert pair.chosen == best.candidate and pair.chosen_score == round(best.score, 4)
    assert pair.chosen == TAUGHT  # generalised, repeats nothing
    assert pair.rejected_score == min(-1.0, *(v.score for v in verdicts))  # the answer that was no phrase
    copy = next(v for v in verdicts if v.candidate == item.value)
    assert copy.leak == 1.0 and copy.proximity > 0.9  # the original is what the prototypes flag
    assert leak(item.value, "stage III breast carcinoma") > 0.3


def test_dpo_lowers_the_loss_and_raises_the_margin(base_dir: Path) -> None:
    model, tokenizer = load_base(str(base_dir))
    config = AlignConfig(epochs=4, batch=4, learning_rate=5e-3, max_length=2048)
    _, metrics = train_dpo(model, tokenizer, _pairs(), _pairs(), config)
    before, after = metrics["before"], metrics["after"]
    assert before["loss"] == pytest.approx(0.6931, abs=1e-3)  # LoRA starts as the identity: policy == reference
    assert after["loss"] < before["loss"] - 0.05
    assert after["rewards/margins"] > before["rewards/margins"]


def test_artifact_round_trips_and_its_rewriter_proposes(artifact_dir: Path) -> None:
    artifact = DamperArtifact.load(artifact_dir)
    assert artifact.labels == ["CONDITION"] and artifact.vocabulary == {}
    rewriter = artifact.open_rewriter(max_new_tokens=8)
    assert isinstance(rewriter, SpanRewriter)
    proposals = rewriter.propose(ITEMS[:2], 4)
    assert all(TAUGHT in p for p in proposals)
    assert all(item.value not in " ".join(p) for item, p in zip(ITEMS, proposals, strict=False))


def test_corrupt_or_foreign_artifacts_are_refused(artifact_dir: Path, base_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(artifact_dir, broken)
    weights = broken / "adapter" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(DamperArtifactError, match="corrupt"):
        DamperArtifact.load(broken)
    with pytest.raises(DamperArtifactError, match="no meta.json"):
        DamperArtifact.load(tmp_path / "nowhere")
    foreign_base = tmp_path / "other-base"
    shutil.copytree(base_dir, foreign_base)
    (foreign_base / "config.json").write_text((base_dir / "config.json").read_text() + "\n")
    moved = tmp_path / "moved"
    shutil.copytree(artifact_dir, moved)
    meta = (moved / "meta.json").read_text().replace(str(base_dir), str(foreign_base))
    (moved / "meta.json").write_text(meta)
    with pytest.raises(DamperArtifactError, match="other weights"):
        DamperArtifact.load(moved).open_rewriter()
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(f"name: p\nversion: t1\ndamper:\n  artifact: {broken}\n")
    with pytest.raises(StartupError, match="corrupt"):
        load_dampers({"p": load_policy(policy_file)})


def _policy(name: str, artifact: Path, extra: str = "") -> str:
    return f"""\
name: {name}
version: "t1"
detectors:
  presidio:
    enabled: false
  deny_lists:
    - label: CONDITION
      values: ["stage III HER2-positive carcinoma"]
actions:
  CONDITION: dp_rewrite
dp:
  epsilon: 20.0
  budget: 1000.0
damper:
  artifact: {artifact}
  candidates: 4
  max_new_tokens: 8
{extra}"""


@pytest.fixture(scope="module")
def damper_gateway(
    fake_llm: FakeLLM, artifact_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LoopbackServer]:
    policies = tmp_path_factory.mktemp("damper-policies")
    (policies / "general.yaml").write_text('name: general\nversion: "t1"\n')
    (policies / "dpmed.yaml").write_text(_policy("dpmed", artifact_dir))
    (policies / "slow-mask.yaml").write_text(_policy("slow-mask", artifact_dir, "  timeout_s: 0.000001\n"))
    slow_block = "  timeout_s: 0.000001\n  on_failure: block\n"
    (policies / "slow-block.yaml").write_text(_policy("slow-block", artifact_dir, slow_block))
    settings = make_settings(fake_llm, policies, tmp_path_factory.mktemp("data"))
    with LoopbackServer(create_app(runtime=Runtime.build(settings))) as server:
        yield server


def _ask(gateway: LoopbackServer, domain: str) -> httpx.Response:
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    headers = {"X-Privgate-Domain": domain, "Authorization": "Bearer sk-damper-test"}
    return httpx.post(f"{gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=60)


def test_dp_rewrite_sends_a_rewriter_candidate_and_restores_the_answer(
    damper_gateway: LoopbackServer, records: FakeLLM
) -> None:
    reply = _ask(damper_gateway, "dpmed")
    assert reply.status_code == 200, reply.text
    sent = records.received()
    assert "carcinoma" not in sent and "[CONDITION" not in sent
    assert f"diagnosed with {TAUGHT} last spring" in sent  # the rewriter's answer, drawn by the mechanism
    assert reply.json()["choices"][0]["message"]["content"] == PROMPT  # the echo comes back restored


def test_a_rewriter_that_cannot_answer_in_time_gets_the_policys_fallback(
    damper_gateway: LoopbackServer, records: FakeLLM
) -> None:
    masked = _ask(damper_gateway, "slow-mask")
    assert masked.status_code == 200, masked.text
    assert "carcinoma" not in records.received() and "[CONDITION_1]" in records.received()
    assert masked.json()["choices"][0]["message"]["content"] == PROMPT
    records.records.clear()
    blocked = _ask(damper_gateway, "slow-block")
    assert blocked.status_code == 403 and blocked.json()["error"]["code"] == "privgate_policy_refused"
    assert "carcinoma" not in blocked.text and not records.records
