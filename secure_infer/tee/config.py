"""A policy's `tee:` section (pydantic only: validating a policy must not import torch)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class TeeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
