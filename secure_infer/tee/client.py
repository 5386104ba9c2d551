"""The client's link to the enclave: spawn (or address), attest, then encrypted request/response calls.

Any failure (refused report, refused frame, closed socket, dead process) drops the connection and raises
`BackendError`; the next call reconnects and attests afresh.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from secure_infer.backend import BackendError
from secure_infer.tee import wire
from secure_infer.tee.attestation import AttestationError, Report, Verifier, b64, check_report, unb64
from secure_infer.tee.channel import ChannelError, SecureChannel, derive_keys, transcript_hash
from secure_infer.tee.config import TeeConfig
from secure_infer.tee.enclave import READY

log = logging.getLogger("privgate.tee.client")
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Traffic:
    """Bytes on the wire and handshakes, for the audit record and the benchmark."""

    sent: int = 0
    received: int = 0
    handshakes: int = 0
    handshake_s: list[float] = field(default_factory=list)


class EnclaveProcess:
    """An enclave spawned on loopback; it exits when we close its stdin, and is killed if it lingers."""

    def __init__(self, cfg: TeeConfig) -> None:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        }
        cmd = [sys.executable, "-m", "secure_infer.tee.enclave", "--config", cfg.model_dump_json(), "--exit-with-stdin"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self.port = self._wait_ready(cfg.start_timeout_s)

    def _wait_ready(self, timeout: float) -> int:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline().decode(errors="replace")
                if line.startswith(READY):
                    return int(line.split("port=")[1].split()[0])
                if not line and self.proc.poll() is not None:
                    break
            elif self.proc.poll() is not None:
                break
        self.stop()
        raise BackendError("the enclave process failed to start (see its log)")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class Session:
    """One attested connection: the socket, the channel, and the report it was agreed under."""

    def __init__(self, sock: socket.socket, channel: SecureChannel, report: Report) -> None:
        self.sock, self.channel, self.report = sock, channel, report


def attest(sock: socket.socket, verifier: Verifier, allowed: set[str]) -> tuple[SecureChannel, Report]:
    """Send a fresh nonce and ephemeral key, check the report, and derive this connection's keys."""
    nonce = os.urandom(32)
    ephemeral = X25519PrivateKey.generate()
    pub = ephemeral.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    hello = json.dumps({"version": 1, "nonce": b64(nonce), "client_pubkey": b64(pub)}).encode()
    wire.send_frame(sock, hello)
    answer = json.loads(wire.recv_frame(sock))
    report_bytes, evidence = unb64(answer["report"]), unb64(answer["evidence"])
    report = check_report(report_bytes, evidence, verifier, nonce, pub, allowed)
    c2s, s2c = derive_keys(ephemeral, unb64(report.enclave_pubkey), transcript_hash(hello, report_bytes, evidence))
    return SecureChannel.for_client(c2s, s2c), report


class EnclaveLink:
    """Calls into the enclave, reconnecting (and re-attesting, respawning if we own it) after any failure."""

    def __init__(self, cfg: TeeConfig, verifier: Verifier, allowed: set[str]) -> None:
        self.cfg, self.verifier, self.allowed = cfg, verifier, allowed
        self.process: EnclaveProcess | None = None
        self.session: Session | None = None
        self.traffic = Traffic()

    @property
    def measurement(self) -> str | None:
        return self.session.report.measurement if self.session else None

    def _address(self) -> tuple[str, int]:
        if self.cfg.enclave_address is not None:
            host, _, port = self.cfg.enclave_address.rpartition(":")
            return host, int(port)
        if self.process is None or not self.process.alive():
            if self.process is not None:
                self.process.stop()  # reap the dead one before starting another
            self.process = EnclaveProcess(self.cfg)
        return "127.0.0.1", self.process.port

    def connect(self) -> Session:
        if self.session is not None:
            return self.session
        started = time.perf_counter()
        sock = socket.create_connection(self._address(), timeout=self.cfg.request_timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            channel, report = attest(sock, self.verifier, self.allowed)
        except BaseException:
            sock.close()
            raise
        self.traffic.handshakes += 1
        self.traffic.handshake_s.append(time.perf_counter() - started)
        log.info("attested enclave %s (%s)", report.measurement[:16], self.verifier.name)
        self.session = Session(sock, channel, report)
        return self.session

    def call(self, header: dict[str, Any], arrays: dict[str, np.ndarray] | None = None) -> Any:
        """One encrypted request and its answer; `BackendError` (with no request data) on any failure."""
        try:
            session = self.connect()
            self.traffic.sent += wire.send_frame(session.sock, session.channel.seal(wire.encode(header, arrays)))
            frame = wire.recv_frame(session.sock)
            self.traffic.received += len(frame) + 4
            reply, out = wire.decode(session.channel.open(frame))
        except AttestationError as exc:
            self.drop()
            raise BackendError(f"enclave attestation refused: {exc}") from exc
        except ChannelError as exc:
            self.drop()
            raise BackendError(f"enclave channel refused a frame: {exc}") from exc
        except (OSError, ValueError) as exc:
            self.drop(grace_s=2.0)  # a lost connection mostly means a dead enclave: reap it now
            raise BackendError(f"the enclave connection was lost mid-request ({type(exc).__name__})") from exc
        if "error" in reply:
            raise BackendError(f"the enclave refused the request: {reply['error']}")
        return reply, out

    def drop(self, grace_s: float = 0.0) -> None:
        """Forget the session; reap our enclave if it died (waiting up to `grace_s` for a dying one to go)."""
        if self.session is not None:
            self.session.sock.close()
            self.session = None
        if self.process is not None:
            if grace_s > 0:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.proc.wait(timeout=grace_s)
            if not self.process.alive():
                self.process.stop()

    def close(self) -> None:
        self.drop()
        if self.process is not None:
            self.process.stop()
            self.process = None
