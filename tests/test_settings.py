"""Settings: a YAML file overridden by PRIVGATE_* variables; the secret key made once, owner-only."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway import load_settings
from gateway.secret import load_secret


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "privgate.yaml"
    config.write_text("port: 9000\ndefault_domain: medical\nopenai_base_url: http://file/v1\n")
    monkeypatch.setenv("PRIVGATE_OPENAI_BASE_URL", "http://env/v1")
    settings = load_settings(config)
    assert settings.port == 9000 and settings.default_domain == "medical"
    assert settings.openai_base_url == "http://env/v1"
    monkeypatch.setenv("PRIVGATE_PORT", "9200")
    assert load_settings(config).port == 9200
    assert load_settings(config, port=9100).port == 9100  # command-line flags win over both


def test_unknown_setting_is_an_error(tmp_path: Path) -> None:
    config = tmp_path / "privgate.yaml"
    config.write_text("prot: 9000\n")
    with pytest.raises(ValueError, match="prot"):
        load_settings(config)


def test_secret_key_is_generated_once_owner_only(tmp_path: Path) -> None:
    settings = load_settings(None, data_dir=tmp_path)
    first = load_secret(settings)
    assert load_secret(settings) == first and len(first) == 64
    assert stat.S_IMODE((tmp_path / "secret.key").stat().st_mode) == 0o600
    shown = load_settings(None, secret_key="s3cr3t-value-0123456789")
    assert "s3cr3t-value" not in repr(shown) and "s3cr3t-value" not in str(shown.model_dump())
