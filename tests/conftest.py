"""Shared fixtures: a recording fake LLM and a real gateway, both served by uvicorn on loopback."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import anthropic
import openai
import pytest

from gateway import create_app, load_settings
from gateway.runtime import Runtime
from gateway.settings import Settings, TenantKey
from policies import SHIPPED_DIR
from tests.servers import FakeLLM, LoopbackServer

TEST_POLICIES = {
    "strict.yaml": """\
name: strict
version: "t1"
actions:
  CREDIT_CARD: block
""",
    "open.yaml": """\
name: open
version: "t1"
protect: false
passthrough: true
detectors:
  presidio:
    enabled: false
""",
    "masked.yaml": """\
name: masked
version: "t1"
default_action: mask
""",
    "qa.yaml": """\
name: qa
version: "t1"
privqa: true
actions:
  DATE_TIME: pseudonymize
""",
    "private.yaml": """\
name: private
version: "t1"
actions:
  PERSON: dp_rewrite
dp:
  epsilon: 0.5
  budget: 10.0
  on_exhausted: block
""",
}

TENANT_KEY = "sk-tenant-acme-0123456789"


@pytest.fixture(scope="session")
def policy_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("policies")
    for shipped in SHIPPED_DIR.glob("*.yaml"):
        shutil.copy(shipped, directory / shipped.name)
    # the shipped policies name their learnt artifacts as ../artifacts/<domain>, beside the domains directory
    artifacts = directory.parent / "artifacts"
    if not artifacts.exists():
        artifacts.symlink_to(SHIPPED_DIR.parent / "artifacts", target_is_directory=True)
    for name, text in TEST_POLICIES.items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeLLM]:
    fake = FakeLLM()
    with LoopbackServer(fake) as server:
        fake.url = server.url  # type: ignore[attr-defined]
        yield fake


def make_settings(fake: FakeLLM, policy_dir: Path, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "openai_base_url": f"{fake.url}/v1",  # type: ignore[attr-defined]
        "anthropic_base_url": fake.url,  # type: ignore[attr-defined]
        "policy_dir": policy_dir,
        "data_dir": data_dir,
        "read_timeout_s": 1.5,
        "max_body_bytes": 200_000,
        "tenants": [TenantKey(key_sha256=TenantKey.hash_key(TENANT_KEY), tenant="acme", domain="masked")],
    }
    values.update(overrides)
    return load_settings(None, **values)


@pytest.fixture(scope="session")
def runtime(fake_llm: FakeLLM, policy_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Runtime:
    return Runtime.build(make_settings(fake_llm, policy_dir, tmp_path_factory.mktemp("data")))


@pytest.fixture(scope="session")
def gateway(runtime: Runtime) -> Iterator[LoopbackServer]:
    with LoopbackServer(create_app(runtime=runtime)) as server:
        yield server


@pytest.fixture()
def oai(gateway: LoopbackServer) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-test-client", max_retries=0) as client:
        yield client


@pytest.fixture()
def claude(gateway: LoopbackServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=gateway.url, api_key="sk-ant-test-client", max_retries=0) as client:
        yield client


@pytest.fixture()
def records(fake_llm: FakeLLM) -> FakeLLM:
    """The fake LLM with an empty log, so a test sees only its own requests."""
    fake_llm.records.clear()
    return fake_llm


@pytest.fixture()
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog
