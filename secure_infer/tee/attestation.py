"""Attestation reports: what the enclave claims (measurement, client nonce, its ephemeral key) and who vouches.

Without enclave hardware a report is signed by the *development root of trust*, an Ed25519 key made at set-up.
The client checks reports through the `Verifier` protocol, so an SGX/TDX/SEV-SNP or GPU confidential-computing
quote verifier can replace `DevRootVerifier` without touching the channel or the split runner.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

log = logging.getLogger("privgate.tee.attestation")

DEV_ROOT = "development-root-of-trust"
REPORT_VERSION = 1


class AttestationError(Exception):
    """The enclave's report was refused (bad signature, unknown measurement, stale nonce)."""


@dataclass(frozen=True)
class Report:
    """The signed body: binds the enclave's measurement to this handshake (nonce, both ephemeral keys)."""

    measurement: str  # hex SHA-256 over the enclave's code, config and weights
    nonce: str  # base64 of the client's fresh nonce
    enclave_pubkey: str  # base64 raw X25519 public key of the enclave, for this connection only
    client_pubkey: str  # base64 raw X25519 public key the client sent
    issued_at: float
    root: str = DEV_ROOT
    version: int = REPORT_VERSION

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Report:
        try:
            return cls(**json.loads(data))
        except (ValueError, TypeError) as exc:
            raise AttestationError("malformed attestation report") from exc


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode(), validate=True)


class Attester(Protocol):
    """The enclave side: turns report bytes into evidence a `Verifier` accepts."""

    name: str

    def evidence(self, report: bytes) -> bytes: ...


class Verifier(Protocol):
    """The client side: raises `AttestationError` unless `evidence` vouches for `report`."""

    name: str

    def verify(self, report: bytes, evidence: bytes) -> None: ...


class DevRootAttester:
    """Signs reports with the development root of trust's private key (no hardware involved)."""

    name = DEV_ROOT

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        log.warning("attestation reports are signed by the %s, not by enclave hardware", DEV_ROOT)

    def evidence(self, report: bytes) -> bytes:
        return self._key.sign(report)


class DevRootVerifier:
    """Accepts reports signed by the development root of trust's public key."""

    name = DEV_ROOT

    def __init__(self, public_key: Ed25519PublicKey) -> None:
        self._key = public_key

    def verify(self, report: bytes, evidence: bytes) -> None:
        try:
            self._key.verify(evidence, report)
        except InvalidSignature as exc:
            raise AttestationError(f"report signature does not verify against the {DEV_ROOT}") from exc


def check_report(
    report_bytes: bytes, evidence: bytes, verifier: Verifier, nonce: bytes, client_pubkey: bytes, allowed: set[str]
) -> Report:
    """The report, once its evidence, freshness (our nonce, our key) and measurement are all accepted."""
    verifier.verify(report_bytes, evidence)
    report = Report.from_bytes(report_bytes)
    if report.nonce != b64(nonce) or report.client_pubkey != b64(client_pubkey):
        raise AttestationError("report is not for this handshake (stale or foreign nonce)")
    if report.measurement not in allowed:
        raise AttestationError(f"enclave measurement {report.measurement[:16]}... is not in the allow-list")
    return report


def make_report(measurement: str, nonce: bytes, enclave_pubkey: bytes, client_pubkey: bytes) -> Report:
    return Report(measurement, b64(nonce), b64(enclave_pubkey), b64(client_pubkey), time.time())


# --- the development root's key files -----------------------------------------------------------------------


def generate_dev_root(path: str | os.PathLike[str]) -> Path:
    """Make the development root of trust: a private key file (0600) and `<path>.pub` beside it."""
    key_path = Path(path).expanduser()
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(raw)
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    Path(str(key_path) + ".pub").write_bytes(pub)
    return key_path


def load_dev_root(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).expanduser().read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise AttestationError(f"the {DEV_ROOT} key is not an Ed25519 key")
    return key


def load_dev_root_public(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(Path(path).expanduser().read_bytes())
    if not isinstance(key, Ed25519PublicKey):
        raise AttestationError(f"the {DEV_ROOT} public key is not an Ed25519 key")
    return key
