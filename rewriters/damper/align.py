"""Prototype-Guided Preference Alignment: DPO on a LoRA adapter over the base rewriter's own samples.

`align_domain` runs the whole recipe behind `privgate damper align`: sample and judge (pairs.py), train
with trl's `DPOTrainer` (peft LoRA r=8 on the attention projections, CPU), measure the DPO loss and the
chosen-over-rejected reward margin on held-out pairs before and after, and write the artifact.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rewriters.damper.artifact import seal
from rewriters.damper.model import base_model_sha256, load_base, quiet_peft
from rewriters.damper.pairs import Pair, build_pairs, read_rows, span_items
from rewriters.damper.rewriter import SpanRewriter
from rewriters.damper.scoring import PrototypeJudge, ScoringConfig

# A chosen phrase joins the public vocabulary if it repeats nothing of its original and is this close to its
# label's centroid: the base model's noise ("un détour de légion") wins pairs by being far from every
# prototype, and must not become a candidate for everyone.
VOCABULARY_ON_CATEGORY = 0.55


@dataclass(frozen=True)
class AlignConfig:
    spans: int = 160  # training spans sampled from the domain's examples
    samples: int = 6  # candidates per span the judge ranks
    epochs: int = 2
    learning_rate: float = 5e-4
    beta: float = 0.1
    batch: int = 4
    lora_r: int = 8
    lora_alpha: int = 16
    max_length: int = 512
    held_out: float = 0.15
    seed: int = 0


def _dataset(pairs: Sequence[Pair], sees_span: bool) -> Any:
    from datasets import Dataset

    return Dataset.from_list([p.to_dpo(sees_span) for p in pairs])


def train_dpo(
    model: Any,
    tokenizer: Any,
    train: Sequence[Pair],
    held_out: Sequence[Pair],
    config: AlignConfig,
    sees_span: bool = True,
    work_dir: Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    """Train a LoRA adapter with DPO; returns the peft model and before/after held-out metrics."""
    os.environ.setdefault("WANDB_DISABLED", "true")
    from peft import LoraConfig
    from trl.trainer.dpo_config import DPOConfig
    from trl.trainer.dpo_trainer import DPOTrainer

    args = DPOConfig(
        output_dir=str(work_dir or Path("/tmp/privgate-dpo")),
        use_cpu=True,
        per_device_train_batch_size=config.batch,
        per_device_eval_batch_size=config.batch,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        beta=config.beta,
        max_length=config.max_length,
        activation_checkpointing=False,  # a 135M model fits: checkpointing would only cost time
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        seed=config.seed,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=0.0,
        target_modules=["q_proj", "v_proj"],
        task_type="CAUSAL_LM",
    )
    with quiet_peft():
        trainer = DPOTrainer(
            model=model,
            args=args,
            train_dataset=_dataset(train, sees_span),
            eval_dataset=_dataset(held_out or train, sees_span),
            processing_class=tokenizer,
            peft_config=lora,
        )
        before = trainer.evaluate()
        started = time.monotonic()
        trainer.train()
        seconds = time.monotonic() - started
        after = trainer.evaluate()

    def pick(m: dict[str, float]) -> dict[str, float]:
        keys = ("eval_loss", "eval_rewards/margins", "eval_rewards/accuracies")
        return {k.removeprefix("eval_"): round(float(m[k]), 4) for k in keys if k in m}

    metrics = {
        "before": pick(before),
        "after": pick(after),
        "train_seconds": round(seconds, 1),
        "steps": int(trainer.state.global_step),
    }
    return trainer.model, metrics


def vocabulary_of(pairs: Sequence[Pair], judge: PrototypeJudge) -> dict[str, list[str]]:
    """Chosen phrases that repeat none of their original's words and stay on their label's meaning, per label:
    a public candidate set (made from the shipped synthetic examples, never from user text)."""
    by_label: dict[str, dict[str, None]] = {}
    for pair in pairs:
        verdict = judge.judge(pair.item, [pair.chosen])[0]
        if verdict is not None and verdict.leak == 0 and verdict.on_category >= VOCABULARY_ON_CATEGORY:
            by_label.setdefault(pair.item.label, {})[pair.chosen] = None
    return {label: sorted(phrases) for label, phrases in sorted(by_label.items())}


def align_domain(
    domain: str,
    examples: Path | str,
    judge: PrototypeJudge,
    out: Path | str,
    base: str,
    config: AlignConfig = AlignConfig(),
    sees_span: bool = True,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """The whole recipe for one domain; returns the metrics written into the artifact."""
    import torch

    torch.manual_seed(config.seed)
    labels = judge.detector.model.labels
    items = span_items(read_rows(examples), labels)
    if not items:
        raise ValueError(f"no spans labelled {', '.join(labels)} in {examples}")
    judge.fit_centroids(items)
    model, tokenizer = load_base(base)
    rewriter = SpanRewriter(model, tokenizer, sees_span=sees_span)
    started = time.monotonic()
    pairs = build_pairs(
        items,
        rewriter,
        judge,
        samples=config.samples,
        limit=config.spans,
        seed=config.seed,
        progress=lambda done, total, n: say(f"sampled {done}/{total} spans, {n} pairs"),
    )
    sampling_seconds = time.monotonic() - started
    if len(pairs) < 2:
        raise ValueError("the judge found fewer than 2 preference pairs: sample more spans")
    shuffled = list(pairs)
    random.Random(config.seed).shuffle(shuffled)
    cut = max(1, int(len(shuffled) * config.held_out))
    held_out, train = shuffled[:cut], shuffled[cut:]
    say(f"{len(train)} training pairs, {len(held_out)} held out; DPO on a LoRA adapter")
    out_dir = Path(out)
    work = out_dir.with_name(out_dir.name + ".work")
    peft_model, dpo = train_dpo(model, tokenizer, train, held_out, config, sees_span, work)
    shutil.rmtree(work, ignore_errors=True)
    metrics = {
        "pairs": len(pairs),
        "spans": min(len(items), config.spans),
        "sampling_seconds": round(sampling_seconds, 1),
        **dpo,
    }
    meta = {
        "domain": domain,
        "labels": labels,
        "base_model": base,
        "base_model_sha256": base_model_sha256(base),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "sees_span": sees_span,
        "examples": Path(examples).name,
        "align": asdict(config),
        "scoring": judge.config.to_dict(),
        "judge": {"prototypes": judge.detector.model.meta.get("version"), "embedder": judge.embedder.name},
        "metrics": metrics,
    }
    write_artifact(out_dir, peft_model, pairs, vocabulary_of(pairs, judge), meta)
    return metrics


def write_artifact(
    out_dir: Path, peft_model: Any, pairs: Sequence[Pair], vocabulary: dict[str, list[str]], meta: dict[str, Any]
) -> None:
    """The adapter, the vocabulary, the pairs, and meta.json sealing them (replaces `out_dir`)."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "adapter").mkdir(parents=True)
    with warnings.catch_warnings():  # peft looks for the base's config beside a GGUF file, and says so
        warnings.filterwarnings("ignore", message="Could not find a config file", category=UserWarning)
        peft_model.save_pretrained(str(out_dir / "adapter"))
    for extra in out_dir.joinpath("adapter").glob("README.md"):
        extra.unlink()  # peft's model card template: not ours to ship
    (out_dir / "vocabulary.json").write_text(json.dumps(vocabulary, indent=1, ensure_ascii=False) + "\n", "utf-8")
    with (out_dir / "pairs.jsonl").open("w", encoding="utf-8") as handle:
        for pair in pairs:
            handle.write(json.dumps(pair.to_json(), ensure_ascii=False) + "\n")
    seal(out_dir, meta)


def default_judge(prototypes_dir: Path | str, scoring: ScoringConfig | None = None) -> PrototypeJudge:
    """The domain's own prototype detector and a MiniLM sentence embedder."""
    from rewriters.detectors.prototypes import PrototypeDetector
    from rewriters.embedding import load_embedder

    return PrototypeJudge(PrototypeDetector.open(prototypes_dir), load_embedder("all-MiniLM-L6-v2"), scoring)
