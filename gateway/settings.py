"""Gateway settings: a YAML file, overridden by `PRIVGATE_*` environment variables."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

ECHO = "echo"  # the built-in local echo model: answers with the text it received


class TenantKey(BaseModel):
    """Maps a client's API key (stored only as its SHA-256) to a tenant and its domain."""

    model_config = ConfigDict(extra="forbid")

    key_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    tenant: str = Field(min_length=1)
    domain: str | None = None
    lock_domain: bool = False  # True: the X-Privgate-Domain header cannot move this key to another policy
    requests_per_minute: int | None = Field(None, gt=0)  # None: the gateway-wide default
    max_body_bytes: int | None = Field(None, gt=0)  # None: the gateway-wide limit

    @staticmethod
    def hash_key(api_key: str) -> str:
        return hashlib.sha256(api_key.encode()).hexdigest()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRIVGATE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = 8080
    openai_base_url: str = ECHO  # e.g. https://api.openai.com/v1, or any OpenAI-compatible server
    anthropic_base_url: str = ECHO  # e.g. https://api.anthropic.com
    policy_dir: Path | None = None  # None: the shipped policies
    default_domain: str = "general"
    data_dir: Path = Path(".privgate")
    db_url: str | None = None  # None: SQLite in data_dir
    secret_key: SecretStr | None = None  # None: read or create data_dir/secret.key
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(600.0, gt=0)
    max_connections: int = Field(200, gt=0)
    verify_tls: bool = True
    tenants: list[TenantKey] = []
    require_key: bool = False  # True: only requests whose key maps to a tenant are served (401 otherwise)
    requests_per_minute: int | None = Field(None, gt=0)  # per tenant and replica; None: unlimited
    admin_token_sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")  # None: admin endpoints off
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # command-line flags (init arguments) beat the environment, which beats the config file
        return init_settings, env_settings, YamlConfigSettingsSource(settings_cls)

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{self.data_dir / 'audit.db'}"


def load_settings(config_file: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings from the YAML file, then `PRIVGATE_*` variables, then `overrides` (typed CLI flags)."""
    if config_file is not None and not Path(config_file).is_file():
        raise ValueError(f"{config_file}: no such configuration file")

    class FromFile(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "yaml_file": config_file})

    return FromFile(**{k: v for k, v in overrides.items() if v is not None})
