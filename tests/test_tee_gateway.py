"""A `backend: tee` domain served end to end: official openai SDK → real gateway → split model + enclave process."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import openai
import pytest

from gateway import create_app
from gateway.runtime import Runtime
from gateway.settings import TenantKey
from secure_infer.tee.attestation import generate_dev_root
from tests.conftest import make_settings
from tests.servers import FakeLLM, LoopbackServer
from tests.test_tee_split import save_tiny_llama

os.environ["HF_HUB_OFFLINE"] = "1"
TEE_KEY = "sk-tenant-tee-0123456789"


@pytest.fixture(scope="module")
def tee_gateway(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Runtime]]:
    model_dir = save_tiny_llama(tmp_path_factory.mktemp("tee-model"), layers=3, seed=1)
    root = generate_dev_root(tmp_path_factory.mktemp("root") / "dev-root-of-trust.key")
    policies = tmp_path_factory.mktemp("tee-policies")
    (policies / "teechat.yaml").write_text(
        f"""\
name: teechat
version: "t1"
backend: tee
detectors:
  presidio:
    enabled: false
tee:
  model: "{model_dir}"
  served_name: tiny-split
  split_layers: 1
  dev_root_key: "{root}"
  max_new_tokens: 12
""",
        encoding="utf-8",
    )
    tenants = [TenantKey(key_sha256=TenantKey.hash_key(TEE_KEY), tenant="acme", domain="teechat")]
    settings = make_settings(
        fake_llm,
        policies,
        tmp_path_factory.mktemp("data"),
        tenants=tenants,
        default_domain="teechat",
        read_timeout_s=60,
    )
    runtime = Runtime.build(settings)
    with LoopbackServer(create_app(runtime=runtime)) as server:
        yield server.url, runtime


def _facts(runtime: Runtime, streamed: bool) -> dict[str, object]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        rows = [r for r in runtime.audit.recent(10) if r.backend == "tee" and r.streamed == streamed]
        if rows and rows[0].backend_facts:
            return rows[0].backend_facts
        time.sleep(0.1)
    raise AssertionError("no audit record for the tee request")


def test_tee_domain_chat_and_stream_with_openai_sdk(tee_gateway: tuple[str, Runtime], fake_llm: FakeLLM) -> None:
    url, runtime = tee_gateway
    fake_llm.records.clear()
    messages = [{"role": "user", "content": "Say hello to the enclave."}]
    with openai.OpenAI(base_url=f"{url}/v1", api_key=TEE_KEY, max_retries=0, timeout=120) as client:
        answer = client.chat.completions.create(model="tiny-split", messages=messages, max_tokens=6)
        text = answer.choices[0].message.content
        assert answer.object == "chat.completion" and isinstance(text, str)
        assert answer.usage is not None and 1 <= answer.usage.completion_tokens <= 6
        stream = client.chat.completions.create(model="tiny-split", messages=messages, max_tokens=6, stream=True)
        chunks = list(stream)
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == text  # greedy: the same answer streamed and not
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")
    assert not fake_llm.records  # nothing went to the cloud
    for facts in (_facts(runtime, False), _facts(runtime, True)):
        assert facts["backend"] == "tee" and len(str(facts["measurement"])) == 64
        assert facts["verifier"] == "development-root-of-trust"
        assert int(facts["bytes_sent"]) > 0 and float(facts["total_ms"]) > 0  # type: ignore[arg-type]
