"""Bytes on the socket: length-prefixed frames, and messages as a JSON header plus raw tensor buffers."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

import numpy as np

_LEN = struct.Struct(">I")
MAX_FRAME = 1 << 30

Header = dict[str, Any]
Arrays = dict[str, np.ndarray]


class WireClosed(ConnectionError):
    """The peer closed the connection (or died) before a whole frame arrived."""


def send_frame(sock: socket.socket, payload: bytes) -> int:
    sock.sendall(_LEN.pack(len(payload)) + payload)
    return _LEN.size + len(payload)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(n - len(buf), 1 << 20))
        if not chunk:
            raise WireClosed("connection closed mid-frame" if buf else "connection closed")
        buf += chunk
    return bytes(buf)


def recv_frame(sock: socket.socket) -> bytes:
    (size,) = _LEN.unpack(_recv_exact(sock, _LEN.size))
    if size > MAX_FRAME:
        raise WireClosed("frame too large")
    return _recv_exact(sock, size)


def encode(header: Header, arrays: Arrays | None = None) -> bytes:
    """One message: header JSON (with each array's dtype, shape and byte range) then the arrays' bytes."""
    meta, blobs, offset = [], [], 0
    for name, arr in (arrays or {}).items():
        data = np.ascontiguousarray(arr).tobytes()
        meta.append({"name": name, "dtype": str(arr.dtype), "shape": list(arr.shape), "offset": offset})
        blobs.append(data)
        offset += len(data)
    head = json.dumps({**header, "_arrays": meta}, separators=(",", ":")).encode()
    return _LEN.pack(len(head)) + head + b"".join(blobs)


def decode(message: bytes) -> tuple[Header, Arrays]:
    (size,) = _LEN.unpack(message[: _LEN.size])
    header = json.loads(message[_LEN.size : _LEN.size + size])
    body = memoryview(message)[_LEN.size + size :]
    arrays: Arrays = {}
    for m in header.pop("_arrays", []):
        dtype = np.dtype(m["dtype"])
        count = int(np.prod(m["shape"])) if m["shape"] else 1
        flat = np.frombuffer(body, dtype=dtype, count=count, offset=m["offset"])
        arrays[m["name"]] = flat.reshape(m["shape"]).copy()
    return header, arrays
