"""One MPC party as its own OS process: `python -m secure_infer.mpc.party` (rank from the environment).

Rank 0 is the data owner (gets token ids from the gateway, gets the pooled embedding back), rank 1 the
model owner (loads the weights, shares them once at start-up), rank 2 CrypTen's trusted third party that
deals Beaver triples. Parties 0 and 1 take requests from the gateway over an authenticated loopback
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

from secure_infer.mpc.compat import import_crypten
from secure_infer.mpc.fixed_mask import run_dealer
from secure_infer.mpc.mpc_encoder import encode_shared, fix_weight_masks, share_weights
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
        comm.broadcast_obj(spec.as_dict(), MODEL_OWNER)  # the public architecture, never weights
    else:
        spec, state = EncoderSpec(**comm.broadcast_obj(None, MODEL_OWNER)), None
    weights: dict[str, Any] = share_weights(crypten, spec, state)
    del state
    if job.get("fixed_masks"):
        weights = fix_weight_masks(crypten, weights)
    approx: Approx = DITTO if job["mode"] == "ditto" else PLAIN_MPC
    conn.send({"ready": True, "hidden": spec.hidden, "max_positions": spec.max_positions})
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
        pooled = encode_shared(crypten, spec, weights, shared_in, mask, approx).get_plain_text(dst=DATA_OWNER)
        stats = comm.get_communication_stats()
        reply: dict[str, Any] = {
            "ok": True,
            "rounds": int(stats["rounds"]),
            "bytes": int(stats["bytes"]),
            "seconds": time.perf_counter() - started,
        }
        if rank == DATA_OWNER:
            reply["embeddings"] = pooled.float().tolist()  # plain lists: no shared-memory handles
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
