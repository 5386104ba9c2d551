"""One MPC party as its own OS process: `python -m secure_infer.mpc.party` (rank from the environment).

Rank 0 is the data owner (gets token ids from the gateway, gets the pooled embedding or a classifier's
logits back), rank 1 the model owner (loads the weights and any classification head, shares them once at
start-up, and in Ditto mode calibrates the short inverse functions), rank 2 CrypTen's trusted third party
that deals Beaver triples. Parties 0 and 1 take requests from the gateway over an authenticated loopback
connection; the MPC itself runs over torch.distributed (gloo) on loopback TCP.
"""

from __future__ import annotations

import json
import os
import sys
import time
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import Any

import torch

from secure_infer.mpc.calibrate import Calibration, calibrate
from secure_infer.mpc.classifier import HeadSpec, load_head
from secure_infer.mpc.compat import import_crypten
from secure_infer.mpc.fixed_mask import run_dealer
from secure_infer.mpc.mpc_encoder import (
    classify_shared,
    encode_hidden,
    fix_weight_masks,
    mean_pool,
    share_head,
    share_weights,
)
from secure_infer.mpc.reference import DITTO, PLAIN_MPC, Approx, pad_ids
from secure_infer.mpc.weights import EncoderSpec, load_weights
from secure_infer.mpc.wiretap import WireTap

DATA_OWNER, MODEL_OWNER, DEALER = 0, 1, 2


def _configure(crypten: Any, job: dict[str, Any]) -> None:
    crypten.cfg.mpc.provider = "TTP"
    crypten.cfg.encoder.precision_bits = int(job["precision_bits"])
    crypten.cfg.communicator.verbose = True  # count rounds and bytes per request


def _onehot(ids: torch.Tensor, vocab: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(ids, vocab).float()


def _serve(crypten: Any, rank: int, conn: Connection, job: dict[str, Any], tap: WireTap | None) -> None:
    comm = crypten.communicator.get()
    if rank == MODEL_OWNER:
        checkpoint = Path(job["checkpoint"]) if job.get("checkpoint") else None
        spec, state = load_weights(Path(job["model_dir"]), checkpoint)
        head, head_state = load_head(job["classifier"]) if job.get("classifier") else (None, None)
        # Ditto mode: the short 1/sqrt and 1/x need each LayerNorm's and softmax's range (public constants)
        calibration = calibrate(state, spec, Path(job["model_dir"]), DITTO) if job["mode"] == "ditto" else None
        public = {
            "spec": spec.as_dict(),
            "head": head.as_dict() if head else None,
            "calibration": calibration.as_dict() if calibration is not None else None,
        }
        comm.broadcast_obj(public, MODEL_OWNER)  # architecture, label names, calibrated ranges: never weights
    else:
        public = comm.broadcast_obj(None, MODEL_OWNER)
        spec, state = EncoderSpec(**public["spec"]), None
        head = HeadSpec.from_dict(public["head"]) if public["head"] else None
        head_state = None
        calibration = Calibration.from_dict(public["calibration"]) if public["calibration"] else None
    if head is not None and head.hidden != spec.hidden:
        raise ValueError(f"the classifier head expects width {head.hidden}, the encoder gives {spec.hidden}")
    weights: dict[str, Any] = share_weights(crypten, spec, state)
    head_weights = share_head(crypten, head, head_state) if head is not None else None
    del state, head_state
    if job.get("fixed_masks"):
        weights = fix_weight_masks(crypten, weights)
    approx: Approx = DITTO if job["mode"] == "ditto" else PLAIN_MPC
    labels = list(head.labels) if head is not None else None
    conn.send({"ready": True, "hidden": spec.hidden, "max_positions": spec.max_positions, "labels": labels})
    while True:
        msg = conn.recv()
        if msg["op"] == "stop":
            if tap is not None:
                tap.dump(rank)
            conn.send({"stopped": True})
            return
        started = time.perf_counter()
        lengths: list[int] = msg["lengths"]
        mask = torch.zeros(len(lengths), max(lengths))
        for i, n in enumerate(lengths):
            mask[i, :n] = 1.0
        if rank == DATA_OWNER:
            ids, _ = pad_ids(msg["ids"])
            onehot = _onehot(ids, spec.vocab_size)
        else:
            onehot = torch.empty(len(lengths), max(lengths), spec.vocab_size)
        crypten.reset_communication_stats()
        shared_in = crypten.cryptensor(onehot, src=DATA_OWNER)
        hidden = encode_hidden(crypten, spec, weights, shared_in, mask, approx, calibration)
        if msg["op"] == "classify" and head is not None and head_weights is not None:
            out = classify_shared(crypten, head, head_weights, hidden, mask)
        else:
            out = mean_pool(hidden, mask)
        revealed = out.get_plain_text(dst=DATA_OWNER)  # logits or the pooled embedding, to party 0 only
        stats = comm.get_communication_stats()
        reply: dict[str, Any] = {
            "ok": True,
            "rounds": int(stats["rounds"]),
            "bytes": int(stats["bytes"]),
            "seconds": time.perf_counter() - started,
        }
        if rank == DATA_OWNER:
            reply["output"] = revealed.float().tolist()  # plain lists: no shared-memory handles
        conn.send(reply)


def main() -> None:
    rank = int(os.environ["RANK"])
    job: dict[str, Any] = json.loads(os.environ["PRIVGATE_MPC_JOB"])
    torch.set_num_threads(int(job.get("threads", 1)))
    crypten = import_crypten()
    _configure(crypten, job)
    if rank == DEALER:
        run_dealer()  # CrypTen's TTP server plus the fixed weight masks
        return
    host, port = os.environ["PRIVGATE_MPC_CONTROL"].rsplit(":", 1)
    conn = Client((host, int(port)), authkey=bytes.fromhex(os.environ["PRIVGATE_MPC_AUTHKEY"]))
    conn.send({"rank": rank})
    crypten.init()
    tap_dir = os.environ.get("PRIVGATE_MPC_WIRETAP")
    tap = WireTap.install(crypten, tap_dir) if tap_dir else None
    try:
        _serve(crypten, rank, conn, job, tap)
    except EOFError:
        sys.exit(3)  # the gateway went away: exit, leaving nothing behind
    crypten.uninit()


if __name__ == "__main__":
    main()
