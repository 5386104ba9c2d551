"""Sealing: encrypt enclave data at rest under a key bound to the measurement, as SGX's MRENCLAVE policy does.

Without hardware the sealing secret is the development root of trust's private key (the enclave holds it): the key
is HKDF(root secret, salt = measurement). An enclave with another measurement derives another key and cannot
open the blob; the measurement is also the AES-GCM associated data.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"PGSEAL1\0"


class SealError(Exception):
    """The blob was not sealed for this measurement (or was altered)."""


def seal_key(root: Ed25519PrivateKey, measurement: str) -> bytes:
    secret = root.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    info = b"privgate-tee seal v1"
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=bytes.fromhex(measurement), info=info).derive(secret)


def seal(root: Ed25519PrivateKey, measurement: str, data: bytes) -> bytes:
    nonce = os.urandom(12)
    return MAGIC + nonce + AESGCM(seal_key(root, measurement)).encrypt(nonce, data, bytes.fromhex(measurement))


def unseal(root: Ed25519PrivateKey, measurement: str, blob: bytes) -> bytes:
    if not blob.startswith(MAGIC):
        raise SealError("not a sealed blob")
    nonce, body = blob[len(MAGIC) : len(MAGIC) + 12], blob[len(MAGIC) + 12 :]
    try:
        return AESGCM(seal_key(root, measurement)).decrypt(nonce, body, bytes.fromhex(measurement))
    except InvalidTag as exc:
        raise SealError("sealed for another measurement (or altered)") from exc


def write_sealed(path: str | os.PathLike[str], blob: bytes) -> None:
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(target)
