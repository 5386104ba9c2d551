"""The encrypted channel: keys from X25519 + HKDF bound to the attestation transcript, AES-GCM frames in order.

Each direction has its own key and a 64-bit sequence number that is both the frame's header and its GCM nonce;
the receiver accepts only the next number, so a replayed, dropped or reordered frame is refused, and GCM's tag
refuses any tampering (header included, since the nonce is derived from it).
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

INFO = b"privgate-tee channel v1"
_SEQ = struct.Struct(">Q")
C2S, S2C = b"c2s:", b"s2c:"


class ChannelError(Exception):
    """A frame was refused: tampered, replayed, reordered or truncated."""


def transcript_hash(hello: bytes, report: bytes, evidence: bytes) -> bytes:
    """SHA-256 over everything both sides saw in the handshake, length-prefixed so parts cannot shift."""
    digest = hashlib.sha256()
    for part in (hello, report, evidence):
        digest.update(_SEQ.pack(len(part)))
        digest.update(part)
    return digest.digest()


def derive_keys(private: X25519PrivateKey, peer: bytes, transcript: bytes) -> tuple[bytes, bytes]:
    """(client→enclave key, enclave→client key) from the ECDH secret, salted with the transcript hash."""
    shared = private.exchange(X25519PublicKey.from_public_bytes(peer))
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=transcript, info=INFO).derive(shared)
    return okm[:32], okm[32:]


class SecureChannel:
    """Seals outgoing and opens incoming frames for one side of one connection."""

    def __init__(self, send_key: bytes, recv_key: bytes, send_label: bytes, recv_label: bytes) -> None:
        self._send, self._recv = AESGCM(send_key), AESGCM(recv_key)
        self._send_label, self._recv_label = send_label, recv_label
        self._send_seq = 0
        self._recv_seq = 0
        self.bytes_sealed = 0

    @classmethod
    def for_client(cls, c2s: bytes, s2c: bytes) -> SecureChannel:
        return cls(c2s, s2c, C2S, S2C)

    @classmethod
    def for_enclave(cls, c2s: bytes, s2c: bytes) -> SecureChannel:
        return cls(s2c, c2s, S2C, C2S)

    def seal(self, plaintext: bytes) -> bytes:
        header = _SEQ.pack(self._send_seq)
        frame = header + self._send.encrypt(self._send_label + header, plaintext, header)
        self._send_seq += 1
        self.bytes_sealed += len(frame)
        return frame

    def open(self, frame: bytes) -> bytes:
        if len(frame) < _SEQ.size + 16:
            raise ChannelError("truncated frame")
        header = frame[: _SEQ.size]
        (seq,) = _SEQ.unpack(header)
        if seq != self._recv_seq:
            kind = "replayed" if seq < self._recv_seq else "reordered or dropped"
            raise ChannelError(f"{kind} frame (sequence {seq}, expected {self._recv_seq})")
        try:
            plaintext = self._recv.decrypt(self._recv_label + header, frame[_SEQ.size :], header)
        except InvalidTag as exc:
            raise ChannelError("tampered frame (authentication failed)") from exc
        self._recv_seq += 1
        return plaintext
