"""Distil the Ditto-style model (2Quad softmax, sigmoid GeLU) from the original, in plaintext torch.

Following MPCFormer: the student starts from the teacher's weights, and is trained to match the teacher's
hidden states layer by layer and its pooled sentence embedding (cosine), on unlabelled text. The word
embedding table is kept frozen (it does not touch an approximated non-linearity). The result is a
safetensors checkpoint of the changed weights that `MpcConfig.checkpoint` names.
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
from secure_infer.mpc.weights import EncoderSpec, load_weights

__all__ = ["DistillReport", "distill", "embed_plain"]

FROZEN = ("embeddings.word_embeddings.weight",)


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


def _mean_cosine(
    student: dict[str, torch.Tensor], teacher: torch.Tensor, spec: EncoderSpec, ids: list[list[int]]
) -> float:
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
    """Train the approximated model to match the original; write only the trained tensors to `out`.

    `save_every` > 0 also writes the checkpoint every that many steps, so a long run can be cut short.
    `hidden_weight` weighs the layer-by-layer hidden-state loss against the embedding cosine loss;
    `attention_weight` adds MPCFormer's attention-map loss (squared error of the probabilities, per key row).
    `init` resumes from an earlier distilled checkpoint instead of the original weights.
    """
    torch.manual_seed(seed)
    rng = random.Random(seed)
    spec, teacher = load_weights(model_dir)
    tokenizer = TextTokenizer(model_dir, max_len)
    all_ids = tokenizer.ids(texts)
    rng.shuffle(all_ids)
    val_ids, train_ids = all_ids[:held_out], all_ids[held_out:]
    if not train_ids:
        raise ValueError("distillation needs more texts than the held-out set")
    val_teacher = embed_plain(teacher, spec, val_ids, ditto=False)
    start = load_weights(model_dir, init)[1] if init is not None else teacher
    student = {k: v.clone().requires_grad_(k not in FROZEN) for k, v in start.items()}
    before = _mean_cosine(student, val_teacher, spec, val_ids)
    params = [v for k, v in student.items() if k not in FROZEN]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    started = time.perf_counter()
    for step in range(steps):
        chunk = rng.sample(train_ids, min(batch, len(train_ids)))
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
        loss = hidden_weight * hidden_loss / spec.layers + 10.0 * cos_loss
        if attention_weight:
            rows = mask[:, None, :, None]  # query rows of real tokens; padded keys are 0 in both
            attn_loss = sum(
                (((s - t) ** 2) * rows).sum(-1).sum() / (rows.sum() * spec.heads)
                for s, t in zip(s_attn, t_attn, strict=True)
            )
            loss = loss + attention_weight * attn_loss / spec.layers
        opt.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if log is not None and (step % 10 == 0 or step == steps - 1):
            log(f"step {step}: loss {loss.item():.4f} (embedding cosine loss {cos_loss.item():.4f})")
        if save_every and (step + 1) % save_every == 0:
            _save(student, out)
    trained = _save(student, out)
    after = _mean_cosine(trained | {k: teacher[k] for k in FROZEN}, val_teacher, spec, val_ids)
    return DistillReport(steps, time.perf_counter() - started, before, after, out)


def _save(student: dict[str, torch.Tensor], out: Path) -> dict[str, torch.Tensor]:
    trained = {k: v.detach().contiguous() for k, v in student.items() if k not in FROZEN}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file(trained, str(tmp))
    tmp.replace(out)  # a reader never sees half a checkpoint
    return trained
