"""Start, drive and stop the three MPC processes (party 0, party 1, trusted dealer) from the gateway.

One request at a time: CrypTen parties compute in lock-step. A party that exits or stops answering fails
the request with `BackendError` and every process is killed, so a later request starts a fresh cluster.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

import torch

from secure_infer.backend import BackendError

__all__ = ["ClusterJob", "PartyCluster", "RequestResult"]

_PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class ClusterJob:
    model_dir: Path
    mode: str = "plain"
    checkpoint: Path | None = None
    precision_bits: int = 16
    startup_timeout_s: float = 120.0
    threads: int = 1
    wiretap_dir: Path | None = None  # tests only: parties record what they receive
    fixed_masks: bool | None = None  # weight Beaver masks dealt once (fixed_mask.py); None: on in ditto mode
    classifier: Path | None = None  # a classification head (classifier.py), held by party 1


@dataclass
class RequestResult:
    output: torch.Tensor  # (n, d) mean-pooled embeddings, or (n, labels) logits: revealed to party 0 only
    rounds: list[int] = field(default_factory=list)  # per party
    bytes: list[int] = field(default_factory=list)  # per party, as CrypTen counts them (8 per ring element)
    seconds: float = 0.0

    @property
    def embeddings(self) -> torch.Tensor:
        return self.output


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PartyCluster:
    def __init__(self, job: ClusterJob) -> None:
        self.job = job
        self.procs: list[subprocess.Popen[bytes]] = []
        self.conns: dict[int, Connection] = {}
        self._lock = threading.Lock()
        self._logdir = tempfile.TemporaryDirectory(prefix="privgate-mpc-")
        self.hidden = 0
        self.labels: list[str] | None = None  # the classifier's label names (public), if it has one

    # --- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> None:
        authkey = secrets.token_bytes(32)
        listener = Listener(("127.0.0.1", 0), authkey=authkey)
        job = {
            "mode": self.job.mode,
            "precision_bits": self.job.precision_bits,
            "threads": self.job.threads,
            "fixed_masks": self.job.mode != "plain" if self.job.fixed_masks is None else self.job.fixed_masks,
        }
        env_common = {
            **os.environ,
            "WORLD_SIZE": "2",
            "RENDEZVOUS": f"tcp://127.0.0.1:{_free_port()}",
            "DISTRIBUTED_BACKEND": "gloo",
            "GLOO_SOCKET_IFNAME": "lo",
            "PRIVGATE_MPC_CONTROL": f"127.0.0.1:{listener.address[1]}",
            "PRIVGATE_MPC_AUTHKEY": authkey.hex(),
            "PYTHONPATH": os.pathsep.join([str(_PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        if self.job.wiretap_dir is not None:
            env_common["PRIVGATE_MPC_WIRETAP"] = str(self.job.wiretap_dir)
        for rank in (0, 1, 2):
            party_job = dict(job)
            if rank == 1:  # only the model owner is told where the weights are
                party_job["model_dir"] = str(self.job.model_dir)
                party_job["checkpoint"] = str(self.job.checkpoint) if self.job.checkpoint else None
                party_job["classifier"] = str(self.job.classifier) if self.job.classifier else None
            env = {**env_common, "RANK": str(rank), "PRIVGATE_MPC_JOB": json.dumps(party_job)}
            log = open(Path(self._logdir.name) / f"party{rank}.log", "wb")  # noqa: SIM115 - owned by the child
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "secure_infer.mpc.party"],
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
        try:
            self._accept(listener)
            for rank in (0, 1):
                hello = self._wait(rank, self.job.startup_timeout_s)
                self.hidden = int(hello["hidden"])
                if rank == 0:
                    self.labels = hello.get("labels")
        except BaseException:
            self.kill()
            raise
        finally:
            listener.close()

    def _accept(self, listener: Listener) -> None:
        accepted: list[Connection] = []

        def run() -> None:
            try:
                for _ in range(2):
                    accepted.append(listener.accept())
            except OSError:
                pass

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        deadline = time.monotonic() + self.job.startup_timeout_s
        while len(accepted) < 2:
            self._check_alive()
            if time.monotonic() > deadline:
                raise BackendError("MPC parties did not start in time")
            thread.join(0.05)
        for conn in accepted:
            self.conns[int(conn.recv()["rank"])] = conn

    def close(self, grace_s: float = 10.0) -> None:
        """Ask the parties to stop (party 0 also stops the dealer), then kill whatever is left."""
        with self._lock:
            try:
                for conn in self.conns.values():
                    conn.send({"op": "stop"})
                for rank in list(self.conns):
                    self._wait(rank, grace_s)
                for proc in self.procs:
                    proc.wait(timeout=grace_s)
            except (BackendError, OSError, subprocess.TimeoutExpired):
                pass
            finally:
                self.kill()

    def kill(self) -> None:
        for conn in self.conns.values():
            conn.close()
        self.conns.clear()
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            proc.wait()
        self.procs.clear()
        self._logdir.cleanup()

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    # --- requests --------------------------------------------------------------------------------------------
    def run(self, ids: list[list[int]], timeout_s: float, op: str = "embed") -> RequestResult:
        """Embed (or, `op="classify"`, classify) a batch of token-id lists.

        The ids go to party 0 only; party 1 learns just the lengths.
        """
        if op not in ("embed", "classify"):
            raise ValueError(f"unknown MPC operation {op!r}")
        lengths = [len(row) for row in ids]
        with self._lock:
            if not self.alive():
                raise BackendError("MPC parties are not running")
            if op == "classify" and self.labels is None:
                raise BackendError("the MPC parties hold no classifier head")
            started = time.perf_counter()
            try:
                self.conns[0].send({"op": op, "ids": ids, "lengths": lengths})
                self.conns[1].send({"op": op, "lengths": lengths})
                replies = {rank: self._wait(rank, timeout_s) for rank in (0, 1)}
            except BackendError:
                self.kill()
                raise
            except (OSError, EOFError) as exc:
                self.kill()
                raise BackendError("lost the connection to an MPC party") from exc
            return RequestResult(
                output=torch.tensor(replies[0]["output"], dtype=torch.float32),
                rounds=[replies[r]["rounds"] for r in (0, 1)],
                bytes=[replies[r]["bytes"] for r in (0, 1)],
                seconds=time.perf_counter() - started,
            )

    def _wait(self, rank: int, timeout_s: float) -> dict[str, Any]:
        conn = self.conns[rank]
        deadline = time.monotonic() + timeout_s
        while not conn.poll(0.05):
            self._check_alive()
            if time.monotonic() > deadline:
                raise BackendError("MPC request timed out")
        try:
            reply: dict[str, Any] = conn.recv()
        except EOFError as exc:
            raise BackendError("an MPC party exited during the request") from exc
        return reply

    def _check_alive(self) -> None:
        for rank, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise BackendError(f"MPC party {rank} exited (code {proc.returncode})")

    def log_tail(self, rank: int, chars: int = 4000) -> str:
        """The end of a party's stderr (for operators; it holds no request data)."""
        path = Path(self._logdir.name) / f"party{rank}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""
