"""Beaver matmuls whose weight mask is dealt once and reused: per request only the activations are opened.

A Beaver product x @ W opens x - A and W - B. CrypTen deals a fresh B every time, so every request re-sends
the whole model (about 180 MB per party for MiniLM, most of a short request's traffic). The weights never
change, so, as in SecureML's and Delphi's preprocessing, the dealer draws B once per weight at start-up,
D = W - B is opened once (a one-time pad of W under a uniform ring element: it tells neither party
anything), and each request gets a fresh A and C = A @ B from the dealer:

    x @ W = C + E @ B + A @ D + E @ D,   with E = x - A opened per request.

Both parties and the dealer derive their shares of A, B and C from the PRNG seeds CrypTen's TTP provider
already shares with each party, in the same order as its own triples, so this adds two dealer functions
and nothing else to the protocol. CrypTen has no hook for it; it is built from its public share types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["FixedMaskWeight", "fix_mask", "fixed_matmul", "run_dealer"]

Shared = Any  # crypten.mpc.MPCTensor


@dataclass
class FixedMaskWeight:
    """This party's share of the mask B and the opened D = W - B (ring elements), and the dealer's key."""

    key: int
    mask_share: torch.Tensor
    opened: torch.Tensor


def _ttp() -> Any:
    from crypten.mpc.provider.ttp_provider import TTPClient

    return TTPClient.get()


def fix_mask(crypten: Any, weight: Shared, key: int) -> FixedMaskWeight:
    """Deal this weight's mask once and open W - B to both parties (one round, the size of W)."""
    from crypten.common.rng import generate_random_ring_element

    comm = crypten.communicator.get()
    size = weight.size()
    mask_share = generate_random_ring_element(size, generator=_ttp().get_generator())
    if comm.get_rank() == 0:
        _ttp().ttp_request("fixed_mask", None, size, key)
    opened = comm.all_reduce(weight._tensor.share - mask_share)
    return FixedMaskWeight(key, mask_share, opened)


def fixed_matmul(crypten: Any, x: Shared, w: FixedMaskWeight) -> Shared:
    """Shared x @ W (fixed point, truncated), opening only x - A."""
    from crypten.common.rng import generate_random_ring_element

    comm = crypten.communicator.get()
    gen = _ttp().get_generator()
    share = x._tensor.share
    a = generate_random_ring_element(share.size(), generator=gen)
    out_size = torch.Size([*share.shape[:-1], w.opened.shape[-1]])
    if comm.get_rank() == 0:
        c = _ttp().ttp_request("fixed_matmul", None, share.size(), w.key)
    else:
        c = generate_random_ring_element(out_size, generator=gen)
    eps = comm.all_reduce(share - a)
    z = c + eps.matmul(w.mask_share) + a.matmul(w.opened)
    if comm.get_rank() == 0:
        z = z + eps.matmul(w.opened)
    bits = x._tensor.encoder._precision_bits
    out = crypten.mpc.MPCTensor.from_shares(z, precision=bits)
    out._tensor.div_(x._tensor.encoder.scale)  # back to one scale: CrypTen's own truncation protocol
    return out


def _dealer_class() -> type:
    from crypten.mpc.provider.ttp_provider import TTPServer

    class FixedMaskDealer(TTPServer):  # type: ignore[misc]
        """CrypTen's TTP server plus the two functions above (it dispatches requests by name)."""

        def __init__(self) -> None:
            self._masks: dict[int, torch.Tensor] = {}
            super().__init__()  # serves until told to terminate

        def fixed_mask(self, size: torch.Size, key: int) -> torch.Tensor:
            self._masks[key] = self._get_additive_PRSS(size)
            return torch.zeros(1, dtype=torch.long)

        def fixed_matmul(self, size0: torch.Size, key: int) -> torch.Tensor:
            a: torch.Tensor = self._get_additive_PRSS(size0)
            c = a.matmul(self._masks[key])
            others: torch.Tensor = self._get_additive_PRSS(c.size(), remove_rank=True)
            return c - others

    return FixedMaskDealer


def run_dealer() -> None:
    """Run the dealer until party 0 terminates it or the group breaks (the class needs crypten imported)."""
    _dealer_class()()
