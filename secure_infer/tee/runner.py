"""The client side of split inference: its slice, the link to the enclave, and the generation loop."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from secure_infer.backend import BackendError
from secure_infer.tee.attestation import DevRootVerifier, load_dev_root_public
from secure_infer.tee.client import EnclaveLink
from secure_infer.tee.config import TeeConfig
from secure_infer.tee.measure import measure, measured_config
from secure_infer.tee.models import Loaded, client_slice, enclave_slice, load
from secure_infer.tee.split import ClientDecoder, encoder_client


def allowed_measurements(cfg: TeeConfig, loaded: Loaded) -> set[str]:
    """The policy's allow-list; in spawn mode with none given, the measurement of the local build."""
    if cfg.allowed_measurements:
        return set(cfg.allowed_measurements)
    if cfg.enclave_address is None and cfg.trust_local_build:
        return {measure(measured_config(cfg, loaded.kind), enclave_slice(loaded, cfg.split_layers))}
    raise BackendError("no enclave measurement is allowed: set `allowed_measurements`")


class SplitRunner:
    """Runs the first k layers here and the rest in the attested enclave."""

    def __init__(self, cfg: TeeConfig, loaded: Loaded | None = None) -> None:
        self.cfg = cfg
        self.loaded = loaded or load(cfg.model)
        self.kind = self.loaded.kind
        self.tokenizer = self.loaded.tokenizer
        self.client = client_slice(self.loaded, cfg.split_layers)
        verifier = DevRootVerifier(load_dev_root_public(cfg.public_key_path))
        self.link = EnclaveLink(cfg, verifier, allowed_measurements(cfg, self.loaded))

    def generate(
        self,
        input_ids: list[int],
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop_ids: set[int] | None = None,
        on_token: Callable[[int], bool] | None = None,
        timings: dict[str, Any] | None = None,
    ) -> list[int]:
        """New token ids; one encrypted round trip per token. `on_token` returning False stops early."""
        if self.kind != "decoder":
            raise BackendError("this model is an encoder: it has no generation")
        started = time.perf_counter()
        decoder = ClientDecoder(self.client)
        hidden = decoder.prefill(torch.tensor([input_ids], dtype=torch.long))
        header: dict[str, Any] = {"op": "prefill", "temperature": temperature, "top_p": top_p}
        if seed is not None:
            header["seed"] = seed
        reply, _ = self.link.call(header, {"hidden": hidden.numpy()})
        out: list[int] = []
        for i in range(max_new_tokens):
            token = int(reply["token"])
            if i == 0 and timings is not None:
                timings["ttft_s"] = time.perf_counter() - started
            if stop_ids and token in stop_ids:
                break
            out.append(token)
            if (on_token is not None and on_token(token) is False) or i == max_new_tokens - 1:
                break
            reply, _ = self.link.call({"op": "next"}, {"hidden": decoder.step(token).numpy()})
        if timings is not None:
            timings["total_s"] = time.perf_counter() - started
        return out

    def prefill_logits(self, input_ids: list[int]) -> np.ndarray:
        """The enclave's logits for every prompt position (tests compare them with the whole model's)."""
        hidden = ClientDecoder(self.client).prefill(torch.tensor([input_ids], dtype=torch.long))
        _, arrays = self.link.call({"op": "prefill", "return_logits": True}, {"hidden": hidden.numpy()})
        return np.asarray(arrays["logits"])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Pooled, L2-normalised sentence embeddings: the first k layers here, the rest and pooling there."""
        if self.kind != "encoder":
            raise BackendError("this model is a decoder: it serves no embeddings")
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = encoder_client(self.client, batch["input_ids"], batch["attention_mask"])
        _, arrays = self.link.call({"op": "embed"}, {"hidden": hidden.numpy(), "mask": batch["attention_mask"].numpy()})
        return np.asarray(arrays["embedding"], dtype=np.float32)

    def close(self) -> None:
        self.link.close()
