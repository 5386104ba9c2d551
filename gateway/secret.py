"""The gateway's secret key: seeds surrogates (HMAC) and keys the audit hashes. Never printed."""

from __future__ import annotations

import os
import secrets

from gateway.settings import Settings


def load_secret(settings: Settings) -> bytes:
    if settings.secret_key is not None:
        value = settings.secret_key.get_secret_value()
        if len(value) < 16:
            raise ValueError("PRIVGATE_SECRET_KEY must be at least 16 characters")
        return value.encode()
    path = settings.data_dir / "secret.key"
    if path.exists():
        return path.read_bytes().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode()
    # created owner-only from the start, so the key is never readable by others even briefly
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return key
