"""TEE attestation and channel: reports refused for a wrong measurement, signature or nonce; frames in order only."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from secure_infer.tee.attestation import (
    AttestationError,
    DevRootAttester,
    DevRootVerifier,
    check_report,
    generate_dev_root,
    load_dev_root,
    load_dev_root_public,
    make_report,
)
from secure_infer.tee.channel import ChannelError, SecureChannel, derive_keys, transcript_hash
from secure_infer.tee.sealing import SealError, seal, unseal

MEASUREMENT = "ab" * 32


def _raw(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture()
def root(tmp_path: Path) -> tuple[DevRootAttester, DevRootVerifier]:
    path = generate_dev_root(tmp_path / "root.key")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return DevRootAttester(load_dev_root(path)), DevRootVerifier(load_dev_root_public(str(path) + ".pub"))


def _signed(attester: DevRootAttester, nonce: bytes, client: bytes, measurement: str = MEASUREMENT):
    report = make_report(measurement, nonce, _raw(X25519PrivateKey.generate()), client).to_bytes()
    return report, attester.evidence(report)


def test_report_is_accepted_for_this_handshake(root) -> None:
    attester, verifier = root
    nonce, client = os.urandom(32), _raw(X25519PrivateKey.generate())
    report, evidence = _signed(attester, nonce, client)
    assert check_report(report, evidence, verifier, nonce, client, {MEASUREMENT}).measurement == MEASUREMENT
    assert b"development-root-of-trust" in report


def test_wrong_measurement_is_refused(root) -> None:
    attester, verifier = root
    nonce, client = os.urandom(32), _raw(X25519PrivateKey.generate())
    report, evidence = _signed(attester, nonce, client, measurement="cd" * 32)
    with pytest.raises(AttestationError, match="allow-list"):
        check_report(report, evidence, verifier, nonce, client, {MEASUREMENT})


def test_wrong_signature_is_refused(root, tmp_path: Path) -> None:
    _, verifier = root
    other = DevRootAttester(load_dev_root(generate_dev_root(tmp_path / "other.key")))
    nonce, client = os.urandom(32), _raw(X25519PrivateKey.generate())
    report, evidence = _signed(other, nonce, client)
    with pytest.raises(AttestationError, match="signature"):
        check_report(report, evidence, verifier, nonce, client, {MEASUREMENT})
    attester, _ = root
    report, evidence = _signed(attester, nonce, client)
    forged = report.replace(MEASUREMENT.encode(), b"cd" * 32)
    with pytest.raises(AttestationError, match="signature"):
        check_report(forged, evidence, verifier, nonce, client, {MEASUREMENT, "cd" * 32})


def test_stale_nonce_is_refused(root) -> None:
    attester, verifier = root
    client = _raw(X25519PrivateKey.generate())
    old_report, old_evidence = _signed(attester, os.urandom(32), client)  # a genuine report from an earlier handshake
    with pytest.raises(AttestationError, match="nonce"):
        check_report(old_report, old_evidence, verifier, os.urandom(32), client, {MEASUREMENT})


def _pair() -> tuple[SecureChannel, SecureChannel]:
    client, enclave = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    transcript = transcript_hash(b"hello", b"report", b"evidence")
    c2s, s2c = derive_keys(client, _raw(enclave), transcript)
    assert (c2s, s2c) == derive_keys(enclave, _raw(client), transcript)
    assert derive_keys(client, _raw(enclave), transcript_hash(b"hello", b"report", b"other")) != (c2s, s2c)
    return SecureChannel.for_client(c2s, s2c), SecureChannel.for_enclave(c2s, s2c)


def test_frames_round_trip_both_ways() -> None:
    client, enclave = _pair()
    for i in range(3):
        assert enclave.open(client.seal(f"request {i}".encode())) == f"request {i}".encode()
        assert client.open(enclave.seal(b"answer")) == b"answer"


def test_tampered_frame_is_refused() -> None:
    client, enclave = _pair()
    frame = bytearray(client.seal(b"activations"))
    frame[-20] ^= 1
    with pytest.raises(ChannelError, match="tampered"):
        enclave.open(bytes(frame))


def test_replayed_frame_is_refused() -> None:
    client, enclave = _pair()
    frame = client.seal(b"first")
    enclave.open(frame)
    with pytest.raises(ChannelError, match="replayed"):
        enclave.open(frame)


def test_reordered_frame_is_refused() -> None:
    client, enclave = _pair()
    first, second = client.seal(b"first"), client.seal(b"second")
    with pytest.raises(ChannelError, match="reordered"):
        enclave.open(second)
    assert enclave.open(first) == b"first"


def test_rewritten_sequence_number_is_refused() -> None:
    client, enclave = _pair()
    client.seal(b"zero")
    frame = bytearray(client.seal(b"one"))
    frame[7] = 0  # claim to be frame 0: the nonce changes, so the tag fails
    with pytest.raises(ChannelError, match="tampered"):
        enclave.open(bytes(frame))


def test_reflected_frame_is_refused() -> None:
    client, _ = _pair()
    with pytest.raises(ChannelError):
        client.open(client.seal(b"echo"))  # the enclave→client key differs from client→enclave


def test_sealed_blob_opens_only_under_its_measurement(tmp_path: Path) -> None:
    key = load_dev_root(generate_dev_root(tmp_path / "root.key"))
    blob = seal(key, MEASUREMENT, b"adapter weights")
    assert b"adapter weights" not in blob
    assert unseal(key, MEASUREMENT, blob) == b"adapter weights"
    with pytest.raises(SealError):
        unseal(key, "cd" * 32, blob)
