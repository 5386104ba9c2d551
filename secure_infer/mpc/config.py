"""A policy's `mpc:` section (pydantic only: validating a policy must not import torch or crypten)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class MpcConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
