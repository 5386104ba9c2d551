"""Record every tensor a party receives from the other parties, so tests can check what crossed the wire.

Installed only when `PRIVGATE_MPC_WIRETAP` names a directory (tests); it wraps the receiving methods of
CrypTen's communicator in this process and saves what they returned at shutdown.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import torch

__all__ = ["WireTap"]

_RECEIVING = ("recv", "irecv", "broadcast", "all_reduce", "reduce", "gather", "all_gather", "scatter")
_RECEIVING_OBJ = ("recv_obj", "broadcast_obj")


class WireTap:
    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.seen: list[torch.Tensor] = []
        self._pending: list[torch.Tensor] = []

    @classmethod
    def install(cls, crypten: Any, directory: str) -> WireTap:
        tap = cls(directory)
        comm = crypten.communicator.get()
        for name in _RECEIVING + _RECEIVING_OBJ:
            setattr(comm, name, tap._wrap(name, getattr(comm, name)))
        return tap

    def _wrap(self, name: str, method: Any) -> Any:
        @functools.wraps(method)
        def tapped(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if name == "irecv":  # filled in place once the request completes
                self._pending.append(args[0] if args else kwargs["tensor"])
            else:
                self._record(result)
            return result

        return tapped

    def _record(self, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            self.seen.append(value.detach().clone())
        elif isinstance(value, list | tuple):
            for item in value:
                self._record(item)
        elif hasattr(value, "share"):  # a CrypTen tensor returned by a collective
            self._record(value.share)

    def dump(self, rank: int) -> Path:
        self.seen.extend(t.detach().clone() for t in self._pending)
        path = self.directory / f"rank{rank}.pt"
        torch.save(self.seen, path)
        return path
