"""`MpcBackend`: OpenAI `/v1/embeddings` (and `/v1/classifications`) served by two-party CrypTen inference.

The gateway is the data owner: it tokenises locally and hands token ids to party 0; party 1 holds the
weights. The party processes start on the first request (or `start()`), are reused, and are killed when a
request fails, so the next request starts a fresh set.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from secure_infer.backend import BackendError, BackendUnsupported, Json
from secure_infer.mpc.classifier import HeadSpec, inspect_head
from secure_infer.mpc.cluster import ClusterJob, PartyCluster, RequestResult
from secure_infer.mpc.config import MpcConfig
from secure_infer.mpc.tokenize import TextTokenizer
from secure_infer.mpc.weights import EncoderSpec, model_dir

__all__ = ["MpcBackend", "build_backend"]


class MpcBackend:
    name = "mpc"

    def __init__(self, config: MpcConfig, *, wiretap_dir: Path | None = None) -> None:
        self.config = config
        self._dir = model_dir(config.model)
        self._tokenizer = TextTokenizer(self._dir, config.max_seq_len)
        # fail at start-up, clearly, on a missing or malformed head (party 1 would only exit later)
        self.head: HeadSpec | None = inspect_head(config.classifier) if config.classifier else None
        if self.head is not None:
            hidden = EncoderSpec.from_config(json.loads((self._dir / "config.json").read_text())).hidden
            if self.head.hidden != hidden:
                raise BackendError(
                    f"the MPC classifier head takes width {self.head.hidden}, the encoder gives {hidden}"
                )
        self._job = ClusterJob(
            model_dir=self._dir,
            mode=config.mode,
            checkpoint=Path(config.checkpoint) if config.checkpoint else None,
            precision_bits=config.precision_bits or (16 if config.mode == "plain" else 14),
            startup_timeout_s=config.startup_timeout_s,
            wiretap_dir=wiretap_dir,
            fixed_masks=config.fixed_weight_masks,
            classifier=Path(config.classifier).expanduser() if config.classifier else None,
        )
        self._cluster: PartyCluster | None = None
        self._lock = asyncio.Lock()

    def models(self) -> list[str]:
        return [self.config.served_name()]

    async def chat(self, body: Json, facts: Json) -> Json:
        raise BackendUnsupported("the MPC backend serves embeddings only")

    def chat_stream(self, body: Json, facts: Json) -> AsyncIterator[Json]:
        raise BackendUnsupported("the MPC backend serves embeddings only")

    async def start(self) -> None:
        """Start the parties now (otherwise the first request does)."""
        async with self._lock:
            await self._ensure_cluster()

    async def _ensure_cluster(self) -> PartyCluster:
        if self._cluster is None or not self._cluster.alive():
            if self._cluster is not None:
                await asyncio.to_thread(self._cluster.kill)
            cluster = PartyCluster(self._job)
            await asyncio.to_thread(cluster.start)
            self._cluster = cluster
        return self._cluster

    @property
    def cluster(self) -> PartyCluster | None:
        return self._cluster

    async def embeddings(self, body: Json, facts: Json) -> Json:
        model = body.get("model")
        if model not in self.models():
            raise BackendUnsupported("model not served by the MPC backend")
        texts = _inputs(body.get("input"))
        fmt = body.get("encoding_format", "float")
        if fmt not in ("float", "base64"):
            raise BackendError("encoding_format must be float or base64")
        ids = self._tokenizer.ids(texts)
        emb = torch.nn.functional.normalize(await self._run(ids, "embed", facts), dim=-1)
        dims = body.get("dimensions")
        if dims is not None and dims != emb.shape[1]:
            raise BackendError(f"this model has {emb.shape[1]} dimensions")
        tokens = sum(len(row) for row in ids)
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": _encode(vec, fmt)} for i, vec in enumerate(emb)],
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def classify(self, body: Json, facts: Json) -> Json:
        """privgate's `/v1/classifications`: a label and per-label probabilities for each input text.

        Only the logits are revealed, to party 0; the softmax is computed here in the clear.
        """
        if self.head is None:
            raise BackendUnsupported("this MPC domain has no classifier head (mpc.classifier)")
        model = body.get("model")
        if model not in self.models():
            raise BackendUnsupported("model not served by the MPC backend")
        ids = self._tokenizer.ids(_inputs(body.get("input")))
        probs = torch.softmax(await self._run(ids, "classify", facts), dim=-1)
        labels = self.head.labels
        data = [
            {
                "object": "classification",
                "index": i,
                "label": labels[int(row.argmax())],
                "scores": {label: float(p) for label, p in zip(labels, row, strict=True)},
            }
            for i, row in enumerate(probs)
        ]
        tokens = sum(len(row) for row in ids)
        return {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    async def _run(self, ids: list[list[int]], op: str, facts: Json) -> torch.Tensor:
        """Run `op` over the ids in batches of `max_batch`; fill the audit facts; the revealed rows."""
        started = time.perf_counter()
        rows: list[torch.Tensor] = []
        rounds = [0, 0]
        nbytes = [0, 0]
        async with self._lock:
            for lo in range(0, len(ids), self.config.max_batch):
                cluster = await self._ensure_cluster()
                result: RequestResult = await asyncio.to_thread(
                    cluster.run, ids[lo : lo + self.config.max_batch], self.config.timeout_s, op
                )
                rows.append(result.output)
                rounds = [a + b for a, b in zip(rounds, result.rounds, strict=True)]
                nbytes = [a + b for a, b in zip(nbytes, result.bytes, strict=True)]
        facts.update(
            {
                "backend": "mpc",
                "mpc_mode": self.config.mode,
                "mpc_op": op,
                "mpc_rounds": rounds,
                "mpc_bytes": nbytes,
                "mpc_seconds": round(time.perf_counter() - started, 4),
            }
        )
        return torch.cat(rows)

    async def aclose(self) -> None:
        async with self._lock:
            if self._cluster is not None:
                await asyncio.to_thread(self._cluster.close)
                self._cluster = None


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise BackendError("input must be a non-empty string or list of non-empty strings")
    return value


def _encode(vec: torch.Tensor, fmt: str) -> list[float] | str:
    if fmt == "base64":
        return base64.b64encode(vec.numpy().astype(np.float32).tobytes()).decode()
    return [float(x) for x in vec]


def build_backend(config: MpcConfig) -> MpcBackend:
    """The gateway's factory (`gateway.secure.FACTORIES["mpc"]`): parties start on the first request."""
    return MpcBackend(config)
