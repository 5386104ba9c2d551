"""Measure the ranges of LayerNorm variances and softmax denominators on public inputs (Ditto mode).

Run by the model owner (party 1) at start-up, in plaintext, on its own weights and public text: the
`default_corpus` sentences plus random token sequences (odd inputs widen the range, so a user's text is
less likely to fall outside it). Only the resulting ranges, turned into `InversePlan`s, are shared with
party 0; they are public constants of the protocol, as Ditto's per-layer quantisation scales are. Padded
positions are left out: whatever they compute never reaches a real token or the pooled output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from secure_infer.mpc.corpus import default_corpus
from secure_infer.mpc.inverse import TOLERANCE, InversePlan, Power, plan_for_range
from secure_infer.mpc.reference import Approx, encode, pad_ids
from secure_infer.mpc.tokenize import TextTokenizer
from secure_infer.mpc.weights import EncoderSpec, State

__all__ = ["Calibration", "calibrate", "calibration_ids", "measure_ranges"]

Range = tuple[float, float]
TOLERANCES = (TOLERANCE, 3e-3, 1e-2)  # relative error of 1/sqrt(x) or 1/x: the first one the range allows


@dataclass(frozen=True)
class Calibration:
    """One plan per LayerNorm (embeddings, then attention and output of each layer) and per softmax."""

    layer_norm: tuple[InversePlan, ...]
    softmax: tuple[InversePlan, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"layer_norm": [p.as_dict() for p in self.layer_norm], "softmax": [p.as_dict() for p in self.softmax]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            tuple(InversePlan(**p) for p in data["layer_norm"]), tuple(InversePlan(**p) for p in data["softmax"])
        )


def calibration_ids(directory: Path, spec: EncoderSpec, texts: int = 96, random_rows: int = 32) -> list[list[int]]:
    """Public calibration inputs: generated sentences and random token sequences, all up to 128 tokens."""
    max_len = min(128, spec.max_positions)
    tokenizer = TextTokenizer(directory, max_len)
    rows = tokenizer.ids(default_corpus(texts, seed=4242))
    cls, sep = tokenizer.ids([""])[0][:1], tokenizer.ids([""])[0][-1:]
    gen = torch.Generator().manual_seed(4242)
    for i in range(random_rows):
        length = 1 + (i * 7) % (max_len - 2)  # 1 .. max_len - 2 tokens between [CLS] and [SEP]
        body = torch.randint(0, spec.vocab_size, (length,), generator=gen).tolist()
        rows.append(cls + body + sep)
    return rows


def measure_ranges(
    state: State, spec: EncoderSpec, ids: list[list[int]], approx: Approx, batch: int = 32
) -> tuple[list[Range], list[Range]]:
    """(min, max) of every LayerNorm's input variance and every 2Quad softmax's denominator, real tokens only."""
    ln: list[Range] = [(float("inf"), 0.0)] * (2 * spec.layers + 1)
    sm: list[Range] = [(float("inf"), 0.0)] * spec.layers
    for lo in range(0, len(ids), batch):
        tensor, mask = pad_ids(ids[lo : lo + batch])
        variances: list[torch.Tensor] = []
        denominators: list[torch.Tensor] = []
        with torch.no_grad():
            encode(state, spec, tensor, mask, approx, variances=variances, denominators=denominators)
        real = mask.bool()
        ln = [_widen(r, v[real]) for r, v in zip(ln, variances, strict=True)]
        if denominators:
            sm = [_widen(r, d.transpose(1, 2)[real]) for r, d in zip(sm, denominators, strict=True)]
    return ln, sm


def _widen(current: Range, values: torch.Tensor) -> Range:
    return min(current[0], float(values.min())), max(current[1], float(values.max()))


def calibrate(state: State, spec: EncoderSpec, directory: Path, approx: Approx) -> Calibration:
    """The plans for this model: LayerNorm inverse square roots, and 2Quad reciprocals where `approx` has them."""
    ln, sm = measure_ranges(state, spec, calibration_ids(directory, spec), approx)
    return Calibration(
        tuple(_plan(lo, hi, "sqrt") for lo, hi in ln),
        tuple(_plan(lo, hi, "reciprocal") for lo, hi in sm) if approx.softmax == "2quad" else (),
    )


def _plan(lo: float, hi: float, power: Power) -> InversePlan:
    """The cheapest plan at the tightest tolerance that 14-bit fixed point reaches on this range.

    A range of ratio r puts the smallest of x and x^-p near r^-1/2, where 14 bits hold only so many digits.
    """
    for tolerance in TOLERANCES:
        try:
            return plan_for_range(max(lo, 1e-6), max(hi, 1e-6), power, tolerance=tolerance)
        except ValueError:
            continue
    raise ValueError(f"a calibrated range is too wide for 14-bit fixed point ({hi / lo:.0f}x)")
