"""The encoder in plain torch: the plaintext baseline, the test oracle, and the student in distillation.

Same arithmetic as the MPC encoder (`mpc_encoder.py`), with the non-linearities chosen by `Approx`, so the
Ditto-style model can be trained in plaintext and then run under MPC unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

from secure_infer.mpc.weights import EncoderSpec, State

__all__ = [
    "EXACT",
    "PLAIN_MPC",
    "DITTO",
    "MPCFORMER_QUAD",
    "Approx",
    "encode",
    "quad_gelu",
    "two_quad_softmax",
    "pad_ids",
]

QUAD_SHIFT = 5.0  # MPCFormer's 2Quad: (x + c)^2 with c = 5


@dataclass(frozen=True)
class Approx:
    gelu: Literal["erf", "sigmoid", "quad"] = "erf"
    softmax: Literal["exact", "2quad"] = "exact"


EXACT = Approx()
PLAIN_MPC = Approx(gelu="sigmoid")  # what the plain MPC path computes (CrypTen has no GeLU of its own)
# The Ditto-style mode keeps the sigmoid GeLU and replaces only softmax by 2Quad. Measured on MiniLM (200
# sentences, cosine to the exact model, no retraining): quadratic GeLU alone -0.00, ReLU alone 0.54,
# sigmoid GeLU 0.997, 2Quad softmax alone 0.73; distillation closes the 2Quad gap but not the quadratic one.
DITTO = Approx(gelu="sigmoid", softmax="2quad")
MPCFORMER_QUAD = Approx(gelu="quad", softmax="2quad")  # MPCFormer's Quad+2Quad: cheapest, kept for ablations


def pad_ids(ids: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(n, L) token ids padded with 0 and the (n, L) 0/1 mask; lengths are public in this protocol."""
    width = max(len(row) for row in ids)
    out = torch.zeros(len(ids), width, dtype=torch.long)
    mask = torch.zeros(len(ids), width)
    for i, row in enumerate(ids):
        out[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1.0
    return out, mask


def quad_gelu(x: torch.Tensor) -> torch.Tensor:
    """MPCFormer's "Quad" GeLU replacement: 0.125x^2 + 0.25x + 0.5 (one multiplication under MPC)."""
    return 0.125 * x * x + 0.25 * x + 0.5


def two_quad_softmax(scores: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
    """2Quad: (x + c)^2 normalised over the keys; padded keys are zeroed by the public mask."""
    num = (scores + QUAD_SHIFT) ** 2 * key_mask
    return num / num.sum(-1, keepdim=True)


def _gelu(x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "quad":
        return quad_gelu(x)
    if kind == "sigmoid":
        return x * torch.sigmoid(1.702 * x)
    return torch.nn.functional.gelu(x)


def _layer_norm(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float, variances: list[torch.Tensor] | None = None
) -> torch.Tensor:
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    if variances is not None:
        variances.append(var.detach()[..., 0])
    return (x - mu) / torch.sqrt(var + eps) * w + b


def encode(
    state: State,
    spec: EncoderSpec,
    ids: torch.Tensor,
    mask: torch.Tensor,
    approx: Approx = EXACT,
    attention: list[torch.Tensor] | None = None,
    variances: list[torch.Tensor] | None = None,
    denominators: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mean-pooled (n, d) embeddings (not normalised) and every layer's hidden states (for distillation).

    A list passed as `attention` receives each layer's (n, heads, L, L) attention probabilities, one passed
    as `variances` each LayerNorm's (n, L) input variances, in order, and one passed as `denominators` each
    2Quad softmax's (n, heads, L) sums, as the MPC encoder normalises them (for `calibrate`).
    """
    n, length = ids.shape
    d, h = spec.hidden, spec.heads
    hd = d // h
    x = (
        state["embeddings.word_embeddings.weight"][ids]
        + state["embeddings.position_embeddings.weight"][:length]
        + state["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, state["embeddings.LayerNorm.weight"], state["embeddings.LayerNorm.bias"], spec.eps, variances)
    hidden = [x]
    key_mask = mask[:, None, None, :]
    for i in range(spec.layers):
        p = f"encoder.layer.{i}."

        def lin(t: torch.Tensor, name: str, prefix: str = p) -> torch.Tensor:
            return t @ state[f"{prefix}{name}.weight"].T + state[f"{prefix}{name}.bias"]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(n, length, h, hd).transpose(1, 2)

        q, k, v = (heads(lin(x, f"attention.self.{m}")) for m in ("query", "key", "value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)
        if approx.softmax == "2quad":
            probs = two_quad_softmax(scores, key_mask)
            if denominators is not None:
                sums = ((scores + QUAD_SHIFT) ** 2 * key_mask).sum(-1)
                denominators.append(sums.detach() / (mask.sum(-1)[:, None, None] * QUAD_SHIFT**2))
        else:
            probs = torch.softmax(scores + (1.0 - key_mask) * -1e4, dim=-1)
        if attention is not None:
            attention.append(probs)
        ctx = (probs @ v).transpose(1, 2).reshape(n, length, d)
        x = _layer_norm(
            lin(ctx, "attention.output.dense") + x,
            state[f"{p}attention.output.LayerNorm.weight"],
            state[f"{p}attention.output.LayerNorm.bias"],
            spec.eps,
            variances,
        )
        ff = lin(_gelu(lin(x, "intermediate.dense"), approx.gelu), "output.dense")
        x = _layer_norm(
            ff + x, state[f"{p}output.LayerNorm.weight"], state[f"{p}output.LayerNorm.bias"], spec.eps, variances
        )
        hidden.append(x)
    pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    return pooled, hidden
