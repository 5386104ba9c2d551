"""The encoder on CrypTen tensors: weights shared by party 1, token ids one-hot shared by party 0.

Every activation stays secret-shared; only the pooled embedding is revealed, to party 0 alone. Sequence
lengths (and so the padding mask) are public, as in MPCFormer and Ditto. Positions and token types are
public indices, so their embedding rows are sliced from the shares locally; the word embedding is a one-hot
(party 0) times table (party 1) product under MPC. In Ditto mode a `Calibration` replaces CrypTen's generic
inverse square root (LayerNorm) and reciprocal (2Quad softmax) by short ones fitted to calibrated ranges
(`inverse.py`). A classification head (`classify_shared`) runs on the same shares; only its logits are revealed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from secure_infer.mpc.calibrate import Calibration
from secure_infer.mpc.classifier import HeadSpec
from secure_infer.mpc.fixed_mask import FixedMaskWeight, fix_mask, fixed_matmul
from secure_infer.mpc.inverse import InversePlan, inverse_shared
from secure_infer.mpc.reference import QUAD_SHIFT, Approx
from secure_infer.mpc.weights import EncoderSpec

__all__ = [
    "classify_shared",
    "encode_hidden",
    "encode_shared",
    "fix_weight_masks",
    "mean_pool",
    "share_head",
    "share_weights",
]

Shared = Any  # crypten.mpc.MPCTensor (CrypTen ships no type hints)
SIGMOID_GELU = 1.702
SOFTMAX_EXP_ITERS = 9  # (1 + x/512)^512: logits may sit ~90 below the row maximum in MiniLM
# Plain mode: public constants that move each LayerNorm's input variance into the range where 8 Newton
# iterations of CrypTen's inv_sqrt converge (about 0.002 to 130), measured on MiniLM. (Ditto mode calibrates.)
EMBED_VAR_SCALE = 16.0  # embedding sums: 0.002 to 0.03
ATTN_VAR_SCALE = 1.0  # after attention: 0.14 to 1
FFN_VAR_SCALE = 1.0 / 32  # after the feed-forward block: 0.4 to 130 (MiniLM), 1 to 2300 (quadratic GeLU)
LN_NR_ITERS = 8
HEAD_NORM_SCALE = 1.0 / 16  # MiniLM's pooled embeddings have squared norms of about 7 to 51


def share_weights(
    crypten: Any, spec: EncoderSpec, state: dict[str, torch.Tensor] | None, src: int = 1
) -> dict[str, Shared]:
    """Secret-share every weight from party 1 (the only party with `state`); linear weights pre-transposed."""
    shared: dict[str, Shared] = {}
    for name, shape in _shapes(spec).items():
        if state is not None:
            tensor = state[name].float()
            if name.endswith("dense.weight") or (".attention.self." in name and name.endswith(".weight")):
                tensor = tensor.T.contiguous()
            if tuple(tensor.shape) != shape:
                raise ValueError(f"weight {name} has shape {tuple(tensor.shape)}, expected {shape}")
        else:
            tensor = torch.empty(shape)
        shared[name] = crypten.cryptensor(tensor, src=src)
    return shared


def fix_weight_masks(crypten: Any, weights: dict[str, Shared]) -> dict[str, Shared | FixedMaskWeight]:
    """Deal every matmul weight's Beaver mask once (see `fixed_mask`); other weights stay plain shares."""
    out: dict[str, Shared | FixedMaskWeight] = {}
    for key, (name, tensor) in enumerate(weights.items()):
        is_matmul = name == "embeddings.word_embeddings.weight" or (
            name.endswith(".weight") and tensor.dim() == 2 and name.startswith("encoder.")
        )
        out[name] = fix_mask(crypten, tensor, key) if is_matmul else tensor
    return out


def _matmul(crypten: Any, x: Shared, w: Shared | FixedMaskWeight) -> Shared:
    return fixed_matmul(crypten, x, w) if isinstance(w, FixedMaskWeight) else x.matmul(w)


def _shapes(spec: EncoderSpec) -> dict[str, tuple[int, ...]]:
    d, f = spec.hidden, spec.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (spec.vocab_size, d),
        "embeddings.position_embeddings.weight": (spec.max_positions, d),
        "embeddings.token_type_embeddings.weight": (spec.type_vocab, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for i in range(spec.layers):
        p = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[f"{p}attention.self.{name}.weight"] = (d, d)  # stored as in x out
            shapes[f"{p}attention.self.{name}.bias"] = (d,)
        shapes[f"{p}attention.output.dense.weight"] = (d, d)
        shapes[f"{p}attention.output.dense.bias"] = (d,)
        shapes[f"{p}intermediate.dense.weight"] = (d, f)
        shapes[f"{p}intermediate.dense.bias"] = (f,)
        shapes[f"{p}output.dense.weight"] = (f, d)
        shapes[f"{p}output.dense.bias"] = (d,)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[f"{p}{ln}.weight"] = (d,)
            shapes[f"{p}{ln}.bias"] = (d,)
    return shapes


def _layer_norm(
    crypten: Any, x: Shared, w: Shared, b: Shared, var_scale: float, plan: InversePlan | None = None
) -> Shared:
    """LayerNorm with CrypTen's Newton inverse square root, run where it converges.

    `var_scale` is a public constant that moves the variance into that range: 1/sqrt(v) = sqrt(s)/sqrt(s*v).
    With a calibrated `plan` (Ditto mode) the short inverse square root of `inverse.py` is used instead.
    """
    mu = x.mean(-1, keepdim=True)
    centred = x - mu
    if plan is not None:
        # (c sqrt(s)) / sqrt(mean((c sqrt(s))^2)) = c / sqrt(var): scaling c first keeps small variances precise
        scaled = centred.mul(math.sqrt(plan.scale))
        return scaled * inverse_shared(crypten, scaled.square().mean(-1, keepdim=True), plan) * w + b
    var = centred.square().mean(-1, keepdim=True).mul(var_scale)
    with crypten.cfg.temp_override({"functions.sqrt_nr_iters": LN_NR_ITERS}):
        inv = var.inv_sqrt().mul(math.sqrt(var_scale))
    return centred * inv * w + b


def _gelu(x: Shared, approx: Approx) -> Shared:
    if approx.gelu == "quad":
        return x.square().mul(0.125) + x.mul(0.25) + 0.5
    # x * sigmoid(1.702x) with CrypTen's sigmoid (a comparison, exp, reciprocal). The tanh form's cubic
    # argument reaches |u| > 1000 on MiniLM's activations, where CrypTen's exp (a (1 + x/2^k)^(2^k) limit) breaks.
    return x * x.mul(SIGMOID_GELU).sigmoid()


def _softmax(
    crypten: Any, scores: Shared, key_mask: torch.Tensor, approx: Approx, plan: InversePlan | None = None
) -> Shared:
    if approx.softmax == "2quad" and plan is not None:
        # the sum, normalised by each row's public length, is calibrated: 1/x by the short reciprocal
        lengths = key_mask.sum(-1, keepdim=True)
        num = (scores + QUAD_SHIFT).square().mul(key_mask * (plan.scale / QUAD_SHIFT**2) / lengths)
        return num * inverse_shared(crypten, num.sum(-1, keepdim=True), plan)
    if approx.softmax == "2quad":
        width = key_mask.shape[-1]
        num = (scores + QUAD_SHIFT).square().mul(key_mask / (width * QUAD_SHIFT**2))
    else:
        top = scores.max(dim=-1, keepdim=True)[0]
        with crypten.cfg.temp_override({"functions.exp_iterations": SOFTMAX_EXP_ITERS}):
            num = (scores - top).exp().mul(key_mask)
    with crypten.cfg.temp_override({"functions.reciprocal_all_pos": True}):
        inv = num.sum(-1, keepdim=True).reciprocal()
    return num * inv


def encode_shared(
    crypten: Any,
    spec: EncoderSpec,
    w: dict[str, Any],
    onehot: Shared,
    mask: torch.Tensor,
    approx: Approx,
    calibration: Calibration | None = None,
) -> Shared:
    """Mean-pooled (n, d) embeddings, still shared. `onehot` is the shared (n, L, V) input; `mask` is public."""
    return mean_pool(encode_hidden(crypten, spec, w, onehot, mask, approx, calibration), mask)


def mean_pool(x: Shared, mask: torch.Tensor) -> Shared:
    """Mean over the real tokens of shared (n, L, d) states; the lengths are public."""
    n, d = mask.shape[0], x.size(-1)
    inv_len = (1.0 / mask.sum(1, keepdim=True)).expand(n, d)
    return x.mul(mask[..., None]).sum(1).mul(inv_len)


def encode_hidden(
    crypten: Any,
    spec: EncoderSpec,
    w: dict[str, Any],
    onehot: Shared,
    mask: torch.Tensor,
    approx: Approx,
    calibration: Calibration | None = None,
) -> Shared:
    """The last layer's (n, L, d) hidden states, still shared.

    A `calibration` (Ditto mode, `calibrate.calibrate`) selects the short inverse square root and reciprocal.
    """
    plans: list[InversePlan | None] = [None] * (2 * spec.layers + 1)
    softmax_plans: list[InversePlan | None] = [None] * spec.layers
    if calibration is not None:
        if len(calibration.layer_norm) != len(plans) or len(calibration.softmax) not in (0, spec.layers):
            raise ValueError("the calibration does not match the model's layers")
        plans = list(calibration.layer_norm)
        softmax_plans = list(calibration.softmax) or softmax_plans
    n, length = mask.shape
    d, h = spec.hidden, spec.heads
    hd = d // h
    x = _matmul(crypten, onehot, w["embeddings.word_embeddings.weight"])
    x = x + w["embeddings.position_embeddings.weight"][:length] + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(
        crypten, x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], EMBED_VAR_SCALE, plans[0]
    )
    key_mask = mask[:, None, None, :]
    for i in range(spec.layers):
        p = f"encoder.layer.{i}."

        def lin(t: Shared, name: str, prefix: str = p) -> Shared:
            return _matmul(crypten, t, w[f"{prefix}{name}.weight"]) + w[f"{prefix}{name}.bias"]

        def heads(t: Shared) -> Shared:
            return t.view(n, length, h, hd).transpose(1, 2)

        q = heads(lin(x, "attention.self.query")).mul(1.0 / math.sqrt(hd))
        k = heads(lin(x, "attention.self.key"))
        v = heads(lin(x, "attention.self.value"))
        probs = _softmax(crypten, q.matmul(k.transpose(-1, -2)), key_mask, approx, softmax_plans[i])
        ctx = probs.matmul(v).transpose(1, 2).reshape(n, length, d)
        x = _layer_norm(
            crypten,
            lin(ctx, "attention.output.dense") + x,
            w[f"{p}attention.output.LayerNorm.weight"],
            w[f"{p}attention.output.LayerNorm.bias"],
            ATTN_VAR_SCALE,
            plans[1 + 2 * i],
        )
        ff = lin(_gelu(lin(x, "intermediate.dense"), approx), "output.dense")
        x = _layer_norm(
            crypten,
            ff + x,
            w[f"{p}output.LayerNorm.weight"],
            w[f"{p}output.LayerNorm.bias"],
            FFN_VAR_SCALE,
            plans[2 + 2 * i],
        )
    return x


def share_head(crypten: Any, head: HeadSpec, state: dict[str, torch.Tensor] | None, src: int = 1) -> dict[str, Shared]:
    """Secret-share the classifier (and pooler) from party 1; matrices pre-transposed to (in, out)."""
    d, c = head.hidden, len(head.labels)
    shapes: dict[str, tuple[int, ...]] = {"classifier.weight": (d, c), "classifier.bias": (c,)}
    if head.pooler:
        shapes |= {"pooler.weight": (d, d), "pooler.bias": (d,)}
    shared: dict[str, Shared] = {}
    for name, shape in shapes.items():
        if state is not None:
            tensor = state[name].T.contiguous() if name.endswith("weight") else state[name]
            if tuple(tensor.shape) != shape:
                raise ValueError(f"head weight {name} has shape {tuple(tensor.shape)}, expected {shape}")
        else:
            tensor = torch.empty(shape)
        shared[name] = crypten.cryptensor(tensor, src=src)
    return shared


def classify_shared(crypten: Any, head: HeadSpec, hw: dict[str, Shared], hidden: Shared, mask: torch.Tensor) -> Shared:
    """(n, labels) logits, still shared, from the encoder's shared (n, L, d) last hidden states."""
    pooled = hidden[:, 0] if head.pooling == "cls" else mean_pool(hidden, mask)
    if head.pooler:
        pooled = (pooled.matmul(hw["pooler.weight"]) + hw["pooler.bias"]).tanh()
    if head.normalize:
        # 1/||v|| by Newton over a public scale: sentence-embedding norms squared sit within about 1..2000
        norm2 = pooled.square().sum(-1, keepdim=True).mul(HEAD_NORM_SCALE)
        with crypten.cfg.temp_override({"functions.sqrt_nr_iters": LN_NR_ITERS}):
            pooled = pooled * norm2.inv_sqrt().mul(math.sqrt(HEAD_NORM_SCALE))
    return pooled.matmul(hw["classifier.weight"]) + hw["classifier.bias"]
