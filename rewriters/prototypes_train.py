"""Train a domain's privacy prototypes from labelled examples (JSONL, the shared data format).

Steps, each small and on CPU: (1) candidates of every example, each labelled with the gold label it
matches exactly, `NOT_PRIVATE` where it touches no gold span, or left out where it half-overlaps one
(neither right nor wrong: boundaries are settled at detection by best-score suppression); (2) frozen
encoder vectors for them, computed once; (3) a projection head trained with a supervised contrastive
loss (Khosla et al. 2020) on class-balanced batches; (4) k-means prototypes per class with FAISS;
(5) per-label thresholds chosen for best F0.5 on a held-out split of the examples, never guessed.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from rewriters.detectors.prototypes import (
    MAX_WORDS,
    NOT_PRIVATE,
    Matrix,
    PrototypeModel,
    SpanEncoder,
    candidate_spans,
)


@dataclass(frozen=True)
class Example:
    text: str
    spans: list[tuple[int, int, str]]


@dataclass
class TrainConfig:
    hidden: int = 256
    out_dim: int = 128
    epochs: int = 30
    batch_size: int = 256
    lr: float = 2e-3
    temperature: float = 0.1
    negatives_per_positive: float = 8.0
    prototypes_per_label: int = 6
    prototypes_not_private: int = 48
    holdout: float = 0.2
    min_threshold: float = 0.3
    seed: int = 0
    log: Callable[[str], None] = field(default=lambda _msg: None)


def read_examples(path: Path | str) -> list[Example]:
    """Examples from JSONL lines {"text": ..., "spans": [{"start", "end", "label"}]}; offsets checked."""
    examples = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        record = json.loads(line)
        text = record["text"]
        spans = [(int(s["start"]), int(s["end"]), str(s["label"])) for s in record.get("spans", [])]
        for s, e, _ in spans:
            if not 0 <= s < e <= len(text):
                raise ValueError(f"{path}:{number}: span {s}:{e} outside the text")
        examples.append(Example(text, spans))
    return examples


def label_candidates(example: Example, max_words: int = MAX_WORDS) -> tuple[list[tuple[int, int]], list[str]]:
    """Candidates (gold spans always among them) with their training label; half-overlaps are dropped."""
    gold = {(s, e): label for s, e, label in example.spans}
    spans, labels = list(gold), list(gold.values())
    for s, e in candidate_spans(example.text, max_words):
        if (s, e) in gold:
            continue
        if any(s < ge and gs < e for gs, ge in gold):
            continue
        spans.append((s, e))
        labels.append(NOT_PRIVATE)
    return spans, labels


def featurise(
    encoder: SpanEncoder, examples: Sequence[Example], max_words: int, batch: int = 16
) -> tuple[Matrix, list[str], list[int]]:
    """Encoder vectors of every labelled candidate, their labels, and the example each came from."""
    feats, labels, owners = [], [], []
    for at in range(0, len(examples), batch):
        chunk = examples[at : at + batch]
        labelled = [label_candidates(ex, max_words) for ex in chunk]
        vectors = encoder.encode([ex.text for ex in chunk], [spans for spans, _ in labelled])
        for k, ((_, labs), vec) in enumerate(zip(labelled, vectors, strict=True)):
            keep = np.abs(vec).sum(axis=1) > 0  # a span the encoder could not place (truncated away)
            feats.append(vec[keep])
            labels += [lab for lab, ok in zip(labs, keep, strict=True) if ok]
            owners += [at + k] * int(keep.sum())
    dim = encoder.dim
    return (np.concatenate(feats) if feats else np.zeros((0, dim), np.float32)), labels, owners


def _supcon(z: Any, y: Any, temperature: float) -> Any:
    """Supervised contrastive loss over one batch of L2-normalised projections."""
    import torch

    sim = z @ z.T / temperature
    eye = torch.eye(len(y), dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (y[:, None] == y[None, :]) & ~eye
    count = positive.sum(1)
    has = count > 0
    return -((log_prob * positive).sum(1)[has] / count[has]).mean()


def train_head(
    feats: Matrix, labels: Sequence[str], classes: list[str], config: TrainConfig
) -> tuple[dict[str, Matrix], list[float]]:
    """The projection head, trained on class-balanced batches: numpy weights for inference, loss per epoch."""
    import torch

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    y_all = np.array([classes.index(lab) for lab in labels])
    first, second = torch.nn.Linear(feats.shape[1], config.hidden), torch.nn.Linear(config.hidden, config.out_dim)
    head = torch.nn.Sequential(first, torch.nn.ReLU(), second)
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=1e-4)
    by_class = [np.flatnonzero(y_all == c) for c in range(len(classes))]
    by_class = [ids for ids in by_class if len(ids)]
    per_class = max(config.batch_size // len(by_class), 2)
    x_all = torch.from_numpy(feats)
    steps = max(len(feats) // config.batch_size, 1)
    losses: list[float] = []
    for epoch in range(config.epochs):
        total = 0.0
        for _ in range(steps):
            idx = np.concatenate([rng.choice(ids, per_class, replace=len(ids) < per_class) for ids in by_class])
            x = x_all[idx] + 0.01 * torch.randn(len(idx), feats.shape[1])
            z = torch.nn.functional.normalize(head(x), dim=1)
            loss = _supcon(z, torch.from_numpy(y_all[idx]), config.temperature)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach())
        losses.append(total / steps)
        if epoch % 10 == 0 or epoch == config.epochs - 1:
            config.log(f"epoch {epoch:3d}  supcon loss {total / steps:.4f}")
    weights = {
        "w1": np.ascontiguousarray(first.weight.detach().numpy().T),
        "b1": first.bias.detach().numpy().copy(),
        "w2": np.ascontiguousarray(second.weight.detach().numpy().T),
        "b2": second.bias.detach().numpy().copy(),
    }
    return weights, losses


def make_prototypes(projected: Matrix, labels: Sequence[str], config: TrainConfig) -> tuple[Matrix, list[str]]:
    """k-means centroids per class (more for the broad `NOT_PRIVATE` class), L2-normalised."""
    protos, names = [], []
    lab = np.array(labels)
    for name in sorted(set(labels)):
        members = np.ascontiguousarray(projected[lab == name])
        wanted = config.prototypes_not_private if name == NOT_PRIVATE else config.prototypes_per_label
        k = max(1, min(wanted, len(members) // 8))
        if k == 1:
            centroids = members.mean(axis=0, keepdims=True)
        else:
            kmeans = faiss.Kmeans(members.shape[1], k, niter=25, seed=config.seed, spherical=True)
            kmeans.cp.min_points_per_centroid = 1  # few examples per class is the normal case here
            kmeans.train(members)
            centroids = kmeans.centroids
        centroids = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)
        protos.append(centroids.astype(np.float32))
        names += [name] * len(centroids)
    return np.ascontiguousarray(np.concatenate(protos)), names


def calibrate(
    sims: npt.NDArray[np.float32], predicted: Sequence[str], truth: Sequence[str], labels: list[str], floor: float
) -> dict[str, float]:
    """For each private label, the similarity threshold with the best F0.5 on held-out candidates."""
    thresholds: dict[str, float] = {}
    truth_arr, pred_arr = np.array(truth), np.array(predicted)
    for label in labels:
        positives = int((truth_arr == label).sum())
        mine = pred_arr == label
        if not positives or not mine.any():
            thresholds[label] = max(floor, 0.5)
            continue
        order = np.argsort(-sims[mine])
        ordered_sims, correct = sims[mine][order], (truth_arr[mine] == label)[order]
        tp = np.cumsum(correct)
        precision, recall = tp / np.arange(1, len(tp) + 1), tp / positives
        # F0.5: precision counts double, because text in use is far more varied than held-out examples
        f_half = 1.25 * precision * recall / np.maximum(0.25 * precision + recall, 1e-12)
        # the lowest threshold within 0.02 of the best score: a small held-out split is noisy at the top
        best = int(np.flatnonzero(f_half >= f_half.max() - 0.02)[-1])
        # halfway to the next (rejected) candidate: the widest margin that keeps the best held-out score
        below = ordered_sims[best + 1] if best + 1 < len(ordered_sims) else floor
        thresholds[label] = float(max(floor, (ordered_sims[best] + below) / 2))
    return thresholds


def split_by_terms(examples: Sequence[Example], holdout: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Held-out examples whose private values never occur in the training part.

    Thresholds calibrated on examples that repeat the training terms would be tuned for memory, not
    for the unseen diagnoses, charges and amounts the detector meets in use; so whole values are held
    out: every example that mentions a held-out value goes to the held-out part.
    """
    rng = random.Random(seed)
    values = sorted({ex.text[s:e].lower() for ex in examples for s, e, _ in ex.spans})
    rng.shuffle(values)
    held_values: set[str] = set()
    held_ids: set[int] = set()
    target = max(1, int(len(examples) * holdout))
    for value in values:
        if len(held_ids) >= target:
            break
        held_values.add(value)
        held_ids |= {i for i, ex in enumerate(examples) if any(ex.text[s:e].lower() == value for s, e, _ in ex.spans)}
    negatives = [i for i, ex in enumerate(examples) if not ex.spans]
    held_ids |= set(rng.sample(negatives, int(len(negatives) * holdout)))
    held = [ex for i, ex in enumerate(examples) if i in held_ids]
    kept = [ex for i, ex in enumerate(examples) if i not in held_ids]
    if not held or not kept:
        raise ValueError("too few distinct labelled values to hold some out for calibration")
    return held, kept


def train(
    examples: Sequence[Example], encoder: SpanEncoder, config: TrainConfig | None = None, domain: str = ""
) -> tuple[PrototypeModel, dict[str, Any]]:
    """Train, calibrate on a held-out split, and return the model with its held-out report."""
    config = config or TrainConfig()
    started = time.perf_counter()
    held, kept = split_by_terms(examples, config.holdout, config.seed)
    feats, labels, _ = featurise(encoder, kept, MAX_WORDS)
    config.log(f"{len(kept)} training examples -> {len(labels)} candidates {dict(Counter(labels))}")
    positives = sum(lab != NOT_PRIVATE for lab in labels)
    rng = np.random.default_rng(config.seed)
    negatives = np.flatnonzero(np.array(labels) == NOT_PRIVATE)
    budget = int(positives * config.negatives_per_positive)
    if len(negatives) > budget:  # keep the class sizes sane; the batches are balanced anyway
        drop = set(rng.choice(negatives, len(negatives) - budget, replace=False).tolist())
        keep = [i for i in range(len(labels)) if i not in drop]
        feats, labels = feats[keep], [labels[i] for i in keep]
    classes = sorted(set(labels))
    weights, losses = train_head(feats, labels, classes, config)
    model = PrototypeModel(weights, np.zeros((1, config.out_dim), np.float32), [NOT_PRIVATE], {}, {})
    protos, names = make_prototypes(model.project(feats), labels, config)
    model.prototypes, model.prototype_labels = protos, names
    held_feats, held_labels, _ = featurise(encoder, held, MAX_WORDS)
    sims, idx = model.index().search(model.project(held_feats), 1)
    predicted = [names[i] for i in idx[:, 0]]
    private = [c for c in classes if c != NOT_PRIVATE]
    model.thresholds = calibrate(sims[:, 0], predicted, held_labels, private, config.min_threshold)
    report = _held_out_report(sims[:, 0], predicted, held_labels, model.thresholds)
    model.meta = {
        "domain": domain,
        "labels": private,
        "embedder": encoder.name,
        "embedder_fingerprint": encoder.fingerprint(),
        "encoder": encoder.kind,
        "max_words": MAX_WORDS,
        "examples": len(examples),
        "held_out_examples": len(held),
        "held_out": report,
        "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
        "train_seconds": round(time.perf_counter() - started, 1),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": {k: v for k, v in vars(config).items() if k != "log"},
    }
    config.log(f"held-out candidates: {report}")
    return model, report


def _held_out_report(
    sims: npt.NDArray[np.float32], predicted: Sequence[str], truth: Sequence[str], thresholds: dict[str, float]
) -> dict[str, Any]:
    """Candidate-level precision/recall/F1 per label on the held-out split, at the chosen thresholds."""
    report: dict[str, Any] = {}
    for label, threshold in sorted(thresholds.items()):
        flagged = [p == label and s >= threshold for p, s in zip(predicted, sims, strict=True)]
        gold = [t == label for t in truth]
        tp = sum(f and g for f, g in zip(flagged, gold, strict=True))
        p, r = tp / max(sum(flagged), 1), tp / max(sum(gold), 1)
        f1 = 2 * p * r / max(p + r, 1e-12)
        report[label] = {"p": round(float(p), 3), "r": round(float(r), 3), "f1": round(float(f1), 3)}
    return report
