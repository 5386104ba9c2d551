"""The enclave process: loads its slice, measures it, attests to each client, then serves encrypted requests.

Run as `python -m secure_infer.tee.enclave --config JSON` (the backend spawns it on loopback) or through
`privgate secure enclave`. It prints one line `PRIVGATE-ENCLAVE READY port=... measurement=...` when it listens.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from secure_infer.tee import lora, sealing, wire
from secure_infer.tee.attestation import DEV_ROOT, DevRootAttester, b64, load_dev_root, make_report, unb64
from secure_infer.tee.channel import SecureChannel, derive_keys, transcript_hash
from secure_infer.tee.config import TeeConfig
from secure_infer.tee.measure import measure, measured_config
from secure_infer.tee.models import enclave_slice, load
from secure_infer.tee.split import EnclaveDecoder, encoder_enclave, sample

log = logging.getLogger("privgate.tee.enclave")
READY = "PRIVGATE-ENCLAVE READY"


class RequestRefused(Exception):
    """A request the enclave will not serve; the message goes back to the client (no request data in it)."""


class EnclaveService:
    """The enclave's slice, measurement, adapter and request handlers; one instance per process."""

    def __init__(self, cfg: TeeConfig) -> None:
        self.cfg = cfg
        self.root = load_dev_root(cfg.dev_root_key)
        self.attester = DevRootAttester(self.root)
        loaded = load(cfg.model, with_tokenizer=False)
        self.kind = loaded.kind
        self.module = enclave_slice(loaded, cfg.split_layers)
        del loaded
        self.measurement = measure(measured_config(cfg, self.kind), self.module)
        self.adapter: list[torch.nn.Parameter] = []
        if cfg.adapter_path and self.kind == "decoder":
            self.adapter = lora.attach(self.module, cfg.lora_targets, cfg.lora_rank, cfg.lora_alpha)
            path = Path(cfg.adapter_path).expanduser()
            if path.exists():  # a SealError here stops the enclave: the adapter belongs to another measurement
                plain = sealing.unseal(self.root, self.measurement, path.read_bytes())
                lora.load_adapter_arrays(self.module, wire.decode(plain)[1])
                log.info("loaded the sealed adapter")
        self.module.eval()
        self.lock = threading.Lock()

    # --- handshake --------------------------------------------------------------------------------------------

    def handshake(self, sock: socket.socket) -> SecureChannel:
        hello = wire.recv_frame(sock)
        request = json.loads(hello)
        nonce, client_pub = unb64(request["nonce"]), unb64(request["client_pubkey"])
        ephemeral = X25519PrivateKey.generate()
        pub = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        report = make_report(self.measurement, nonce, pub, client_pub).to_bytes()
        evidence = self.attester.evidence(report)
        wire.send_frame(sock, json.dumps({"report": b64(report), "evidence": b64(evidence)}).encode())
        c2s, s2c = derive_keys(ephemeral, client_pub, transcript_hash(hello, report, evidence))
        return SecureChannel.for_enclave(c2s, s2c)

    # --- one connection ---------------------------------------------------------------------------------------

    def serve(self, sock: socket.socket) -> None:
        state: dict[str, Any] = {"decoder": EnclaveDecoder(self.module), "generator": torch.Generator()}
        try:
            channel = self.handshake(sock)
            while True:
                header, arrays = wire.decode(channel.open(wire.recv_frame(sock)))
                try:
                    with self.lock:
                        reply = self.handle(header, arrays, state)
                except RequestRefused as exc:
                    reply = ({"error": str(exc)}, {})
                wire.send_frame(sock, channel.seal(wire.encode(*reply)))
        except Exception as exc:  # a refused frame or a closed socket ends this connection only
            log.info("connection ended: %s", type(exc).__name__)
        finally:
            sock.close()

    def handle(self, header: dict[str, Any], arrays: dict[str, np.ndarray], state: dict[str, Any]) -> Any:
        op = header.get("op")
        if op == "info":
            return {"kind": self.kind, "measurement": self.measurement, "adapter": bool(self.adapter)}, {}
        if op == "embed" and self.kind == "encoder":
            hidden, mask = torch.from_numpy(arrays["hidden"]), torch.from_numpy(arrays["mask"])
            return {}, {"embedding": encoder_enclave(self.module, hidden, mask).numpy()}
        if self.kind != "decoder":
            raise RequestRefused(f"operation `{op}` needs a decoder model")
        decoder: EnclaveDecoder = state["decoder"]
        if op in ("prefill", "next"):
            if op == "prefill":
                decoder.reset()
                state["sampling"] = (float(header.get("temperature", 0.0)), float(header.get("top_p", 1.0)))
                state["generator"].manual_seed(int(header.get("seed", int.from_bytes(os.urandom(7), "big"))))
            elif decoder.cache is None:
                raise RequestRefused("`next` before `prefill`")
            logits = decoder.forward(torch.from_numpy(arrays["hidden"]))
            temperature, top_p = state["sampling"]
            token = sample(logits[0, -1], temperature, top_p, state["generator"])
            out = {"logits": logits.numpy()} if header.get("return_logits") else {}
            return {"token": token}, out
        if op in ("train", "eval"):
            return self._train(header, arrays, state, update=op == "train")
        if op == "seal":
            if not self.adapter or not self.cfg.adapter_path:
                raise RequestRefused("this enclave has no adapter to seal")
            blob = sealing.seal(self.root, self.measurement, wire.encode({}, lora.adapter_arrays(self.module)))
            sealing.write_sealed(self.cfg.adapter_path, blob)
            return {"sealed": True}, {}
        raise RequestRefused("unknown operation")

    def _train(self, header: dict[str, Any], arrays: dict[str, np.ndarray], state: dict[str, Any], update: bool) -> Any:
        """The adapter's causal-LM loss on client activations; with `update`, one AdamW step on the adapter."""
        if not self.adapter:
            raise RequestRefused("this enclave has no adapter (set `adapter_path`)")
        hidden, labels = torch.from_numpy(arrays["hidden"]), torch.from_numpy(arrays["labels"])
        if not update:
            with torch.no_grad():
                return {"loss": float(state["decoder"].loss(hidden, labels).item())}, {}
        if "optimizer" not in state:
            state["optimizer"] = torch.optim.AdamW(self.adapter, lr=float(header.get("lr", 1e-3)))
        optimizer: torch.optim.Optimizer = state["optimizer"]
        self.module.train()
        try:
            loss = state["decoder"].loss(hidden, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        finally:
            self.module.eval()
        return {"loss": float(loss.item())}, {}


def _watch_parent() -> None:
    """Spawned with a pipe on stdin: when the parent goes (EOF), so does the enclave: no orphan processes."""
    sys.stdin.buffer.read()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="privgate TEE enclave server (development root of trust)")
    parser.add_argument("--config", required=True, help="TeeConfig as JSON")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--exit-with-stdin", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s enclave %(message)s")
    torch.set_num_threads(int(os.environ.get("PRIVGATE_TEE_THREADS", "1")))
    if args.exit_with_stdin:
        threading.Thread(target=_watch_parent, daemon=True).start()
    service = EnclaveService(TeeConfig.model_validate_json(args.config))
    server = socket.create_server((args.host, args.port))
    port = server.getsockname()[1]
    log.info("serving measurement %s, reports signed by the %s", service.measurement, DEV_ROOT)
    print(f"{READY} port={port} measurement={service.measurement}", flush=True)
    while True:
        conn, _ = server.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=service.serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
