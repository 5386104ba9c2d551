"""Distil the Ditto-style model (2Quad softmax, sigmoid GeLU) from the original, in plaintext torch.

Following MPCFormer: the student starts from the teacher's weights, and is trained to match the teacher's
hidden states layer by layer, its attention maps and its pooled sentence embedding (cosine), on unlabelled
text, in the stages of `RECIPE`. The word embedding table is kept frozen (it does not touch an approximated
non-linearity). The result is a safetensors checkpoint of the changed weights that `MpcConfig.checkpoint`
names.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save_file

from secure_infer.mpc.reference import DITTO, EXACT, encode, pad_ids
from secure_infer.mpc.tokenize import TextTokenizer
from secure_infer.mpc.weights import EncoderSpec, State, load_weights

__all__ = ["RECIPE", "DistillReport", "RecipeReport", "Stage", "StageReport", "distill", "embed_plain", "run_recipe"]

FROZEN = ("embeddings.word_embeddings.weight",)


@dataclass(frozen=True)
class Stage:
    """One step of the recipe: what is matched (hidden states, attention maps, embedding), how long, how fast."""

    name: str
    steps: int
    lr: float
    max_len: int
    hidden_weight: float = 1.0
    attention_weight: float = 0.0
    batch: int = 16


# The recipe behind the benchmark's Ditto checkpoint, in the order MPCFormer distils (attention and hidden
# states layer by layer first, then the output): each stage starts from the previous one's weights. About
# 700 steps, 25-35 minutes on one busy core; `privgate secure distill` runs it whole, with fixed seeds.
RECIPE: tuple[Stage, ...] = (
    Stage("attention maps and hidden states", steps=150, lr=3e-4, max_len=32, hidden_weight=1.0, attention_weight=1.0),
    Stage("hidden states", steps=250, lr=3e-4, max_len=32, hidden_weight=1.0),
    Stage("hidden states, long inputs", steps=200, lr=1e-4, max_len=64, hidden_weight=1.0),
    Stage("sentence embedding", steps=100, lr=3e-5, max_len=64, hidden_weight=0.1),
)


@dataclass(frozen=True)
class StageReport:
    name: str
    steps: int
    first_loss: float  # mean over the stage's first tenth of steps
    last_loss: float  # mean over its last tenth
    cosine: float  # held-out cosine to the teacher after the stage


@dataclass(frozen=True)
class RecipeReport:
    stages: list[StageReport]
    seconds: float
    cosine_before: float
    cosine_after: float
    checkpoint: Path


@dataclass(frozen=True)
class DistillReport:
    steps: int
    seconds: float
    cosine_before: float  # mean cosine, student vs teacher, on the held-out texts
    cosine_after: float
    checkpoint: Path


def embed_plain(state: dict[str, torch.Tensor], spec: EncoderSpec, ids: list[list[int]], ditto: bool) -> torch.Tensor:
    """L2-normalised embeddings of the plaintext model (exact or Ditto-approximated)."""
    tensor, mask = pad_ids(ids)
    with torch.no_grad():
        pooled, _ = encode(state, spec, tensor, mask, DITTO if ditto else EXACT)
    return torch.nn.functional.normalize(pooled, dim=-1)


def _mean_cosine(student: State, teacher: torch.Tensor, spec: EncoderSpec, ids: list[list[int]]) -> float:
    return float((embed_plain(student, spec, ids, ditto=True) * teacher).sum(-1).mean())


def distill(
    model_dir: Path,
    texts: list[str],
    out: Path,
    *,
    steps: int = 300,
    batch: int = 16,
    max_len: int = 64,
    lr: float = 1e-4,
    held_out: int = 64,
    seed: int = 0,
    save_every: int = 0,
    hidden_weight: float = 1.0,
    attention_weight: float = 0.0,
    init: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> DistillReport:
    """Train the approximated model to match the original in one stage; write only the trained tensors to `out`.

    `save_every` > 0 also writes the checkpoint every that many steps, so a long run can be cut short.
    `hidden_weight` weighs the layer-by-layer hidden-state loss against the embedding cosine loss;
    `attention_weight` adds MPCFormer's attention-map loss (squared error of the probabilities, per key row).
    `init` resumes from an earlier distilled checkpoint instead of the original weights.
    """
    stage = Stage("single", steps, lr, max_len, hidden_weight, attention_weight, batch)
    report = run_recipe(
        model_dir, texts, out, (stage,), held_out=held_out, seed=seed, save_every=save_every, init=init, log=log
    )
    return DistillReport(steps, report.seconds, report.cosine_before, report.cosine_after, out)


def run_recipe(
    model_dir: Path,
    texts: list[str],
    out: Path,
    stages: tuple[Stage, ...] = RECIPE,
    *,
    held_out: int = 64,
    seed: int = 0,
    save_every: int = 0,
    init: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> RecipeReport:
    """Run `stages` in order, each from the previous one's weights, with fixed seeds: same inputs, same checkpoint.

    The held-out texts (the first `held_out` after a seeded shuffle) are never trained on; the cosine is
    measured on them at the longest stage length.
    """
    spec, teacher = load_weights(model_dir)
    order = list(texts)
    random.Random(seed).shuffle(order)
    val_texts, train_texts = order[:held_out], order[held_out:]
    if not train_texts or not val_texts:
        raise ValueError("distillation needs more texts than the held-out set")
    val_ids = TextTokenizer(model_dir, max(st.max_len for st in stages)).ids(val_texts)
    val_teacher = embed_plain(teacher, spec, val_ids, ditto=False)
    start = load_weights(model_dir, init)[1] if init is not None else teacher
    student = {k: v.clone().requires_grad_(k not in FROZEN) for k, v in start.items()}
    before = _mean_cosine(student, val_teacher, spec, val_ids)
    started = time.perf_counter()
    reports: list[StageReport] = []
    for index, stage in enumerate(stages):
        torch.manual_seed(seed + index)
        rng = random.Random(seed + index)
        train_ids = TextTokenizer(model_dir, stage.max_len).ids(train_texts)
        if log is not None:
            log(
                f"stage {index + 1}/{len(stages)} ({stage.name}): {stage.steps} steps, lr {stage.lr:g}, "
                f"batch {stage.batch}, max_len {stage.max_len}"
            )
        losses = _train_stage(student, teacher, spec, train_ids, stage, rng, out, save_every, log)
        cosine = _mean_cosine(student, val_teacher, spec, val_ids)
        tenth = max(1, len(losses) // 10)
        report = StageReport(stage.name, stage.steps, _mean(losses[:tenth]), _mean(losses[-tenth:]), cosine)
        reports.append(report)
        if log is not None:
            log(
                f"stage {index + 1}/{len(stages)} done: loss {report.first_loss:.4f} -> {report.last_loss:.4f}, "
                f"held-out cosine {cosine:.4f}"
            )
    _save(student, out)
    after = _mean_cosine(student, val_teacher, spec, val_ids)
    return RecipeReport(reports, time.perf_counter() - started, before, after, out)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _train_stage(
    student: State,
    teacher: State,
    spec: EncoderSpec,
    train_ids: list[list[int]],
    stage: Stage,
    rng: random.Random,
    out: Path,
    save_every: int,
    log: Callable[[str], None] | None,
) -> list[float]:
    """Train `student` in place for one stage; the loss of every step."""
    params = [v for k, v in student.items() if k not in FROZEN]
    opt = torch.optim.AdamW(params, lr=stage.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=stage.lr, total_steps=stage.steps, pct_start=0.1)
    losses: list[float] = []
    for step in range(stage.steps):
        chunk = rng.sample(train_ids, min(stage.batch, len(train_ids)))
        ids, mask = pad_ids(chunk)
        t_attn: list[torch.Tensor] = []
        s_attn: list[torch.Tensor] = []
        with torch.no_grad():
            t_pooled, t_hidden = encode(teacher, spec, ids, mask, EXACT, t_attn)
        s_pooled, s_hidden = encode(student, spec, ids, mask, DITTO, s_attn)
        m = mask[..., None]
        pairs = zip(s_hidden[1:], t_hidden[1:], strict=True)
        hidden_loss = sum((((s - t) ** 2) * m).sum() / (m.sum() * spec.hidden) for s, t in pairs)
        cos_loss = 1.0 - torch.nn.functional.cosine_similarity(s_pooled, t_pooled, dim=-1).mean()
        loss = stage.hidden_weight * hidden_loss / spec.layers + 10.0 * cos_loss
        if stage.attention_weight:
            rows = mask[:, None, :, None]  # query rows of real tokens; padded keys are 0 in both
            attn_loss = sum(
                (((s - t) ** 2) * rows).sum(-1).sum() / (rows.sum() * spec.heads)
                for s, t in zip(s_attn, t_attn, strict=True)
            )
            loss = loss + stage.attention_weight * attn_loss / spec.layers
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
        if log is not None and (step % 10 == 0 or step == stage.steps - 1):
            log(f"  step {step}: loss {loss.item():.4f} (embedding cosine loss {cos_loss.item():.4f})")
        if save_every and (step + 1) % save_every == 0:
            _save(student, out)
    return losses


def _save(student: dict[str, torch.Tensor], out: Path) -> dict[str, torch.Tensor]:
    trained = {k: v.detach().contiguous() for k, v in student.items() if k not in FROZEN}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(trained, str(tmp))
    tmp.replace(out)  # a reader never sees half a checkpoint
    return trained
