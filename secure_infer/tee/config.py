"""A policy's `tee:` section (pydantic only: validating a policy must not import torch)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEV_ROOT_KEY = "~/.privgate/tee/dev-root-of-trust.key"


class TeeConfig(BaseModel):
    """Where the enclave runs, which model it serves split at which layer, and whom the client trusts.

    Without enclave hardware the attestation report is signed by a *development root of trust*: an Ed25519
    key made by `privgate secure keygen`. It proves only that the enclave process holds that key, not that it
    runs in hardware; replace `verifier` with a hardware quote verifier for production.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "smollm2-135m-instruct"  # or "all-minilm-l6-v2", or a local Llama/BERT-family directory
    served_name: str | None = None  # the `model` clients write; defaults to `model`
    split_layers: int = Field(2, ge=0)  # decoder/encoder layers run on the client; the rest run in the enclave
    enclave_address: str | None = None  # "host:port" of a running enclave; None = spawn one locally on loopback
    allowed_measurements: list[str] = Field(default_factory=list)  # hex SHA-256 measurements the client accepts
    trust_local_build: bool = True  # spawn mode with an empty allow-list: expect the measurement of the local build
    verifier: str = "development-root-of-trust"  # the only verifier without hardware
    dev_root_key: str = DEV_ROOT_KEY  # development root of trust: private key (enclave side)
    dev_root_public_key: str | None = None  # its public key (client side); default `<dev_root_key>.pub`
    adapter_path: str | None = None  # the domain's sealed LoRA adapter (enclave side), bound to the measurement
    lora_rank: int = Field(8, ge=1)
    lora_alpha: float = 16.0
    lora_targets: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj"])
    max_new_tokens: int = Field(256, ge=1)
    start_timeout_s: float = Field(180.0, gt=0)
    request_timeout_s: float = Field(120.0, gt=0)

    @model_validator(mode="after")
    def _remote_needs_allow_list(self) -> TeeConfig:
        if self.enclave_address is not None and not self.allowed_measurements:
            raise ValueError("a remote enclave (`enclave_address`) needs `allowed_measurements`")
        if self.verifier != "development-root-of-trust":
            raise ValueError("only the `development-root-of-trust` verifier is available without enclave hardware")
        return self

    @property
    def public_key_path(self) -> str:
        return self.dev_root_public_key or self.dev_root_key + ".pub"
