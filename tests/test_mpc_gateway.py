"""A `backend: mpc` domain end to end: official openai SDK → real gateway → two CrypTen party processes + dealer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import torch

from gateway import create_app
from gateway.runtime import Runtime
from gateway.settings import TenantKey
from secure_infer.mpc.classifier import save_head_file
from secure_infer.mpc.reference import PLAIN_MPC, encode, pad_ids
from secure_infer.mpc.tokenize import TextTokenizer
from secure_infer.mpc.weights import random_weights, save_model_dir
from tests.conftest import make_settings
from tests.servers import FakeLLM, LoopbackServer
from tests.test_mpc import SPEC, VOCAB

MPC_KEY = "sk-tenant-mpc-0123456789"
HEAD_LABELS = ["clinical", "billing"]
TEXTS = ["the patient was admitted with chest pain", "invoice is overdue"]


@pytest.fixture(scope="module")
def mpc_gateway(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Runtime, Path]]:
    model_dir = save_model_dir(tmp_path_factory.mktemp("mpc-model"), SPEC, random_weights(SPEC, seed=5), VOCAB)
    policies = tmp_path_factory.mktemp("mpc-policies")
    torch.manual_seed(3)
    save_head_file(policies / "head.safetensors", torch.randn(2, SPEC.hidden), torch.randn(2), HEAD_LABELS)
    (policies / "mpcembed.yaml").write_text(
        f"""\
name: mpcembed
version: "t1"
backend: mpc
detectors:
  presidio:
    enabled: false
mpc:
  model: "{model_dir}"
  mode: plain
  classifier: head.safetensors
  max_seq_len: 24
  timeout_s: 60
""",
        encoding="utf-8",
    )
    tenants = [TenantKey(key_sha256=TenantKey.hash_key(MPC_KEY), tenant="acme", domain="mpcembed")]
    settings = make_settings(
        fake_llm, policies, tmp_path_factory.mktemp("data"), tenants=tenants, default_domain="mpcembed",
        read_timeout_s=60,
    )  # fmt: skip
    runtime = Runtime.build(settings)
    with LoopbackServer(create_app(runtime=runtime)) as server:
        yield server.url, runtime, model_dir


def test_mpc_domain_embeddings_with_openai_sdk(mpc_gateway: tuple[str, Runtime, Path], fake_llm: FakeLLM) -> None:
    url, runtime, model_dir = mpc_gateway
    fake_llm.records.clear()
    model = f"mpc/{model_dir.name}"
    with openai.OpenAI(base_url=f"{url}/v1", api_key=MPC_KEY, max_retries=0, timeout=120) as client:
        answer = client.embeddings.create(model=model, input=TEXTS)
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    got = torch.tensor([d.embedding for d in answer.data])
    ids, mask = pad_ids(TextTokenizer(model_dir, 24).ids(TEXTS))
    pooled, _ = encode(random_weights(SPEC, seed=5), SPEC, ids, mask, PLAIN_MPC)
    expected = torch.nn.functional.normalize(pooled, dim=-1)
    assert torch.allclose(got, expected, atol=5e-3), (got - expected).abs().max()
    assert not fake_llm.records  # nothing went to the cloud
    deadline = time.monotonic() + 10
    facts: dict[str, object] | None = None
    while time.monotonic() < deadline and not facts:
        rows = [r for r in runtime.audit.recent(10) if r.backend == "mpc" and r.backend_facts]
        facts = rows[0].backend_facts if rows else None
        time.sleep(0.1)
    assert facts is not None and facts["backend"] == "mpc" and facts["mpc_mode"] == "plain"
    assert min(facts["mpc_bytes"]) > 0  # type: ignore[call-overload]


def test_mpc_domain_classifies_through_the_gateway(mpc_gateway: tuple[str, Runtime, Path], fake_llm: FakeLLM) -> None:
    """privgate's /v1/classifications: the head named beside the policy, computed by the two parties."""
    url, _, model_dir = mpc_gateway
    fake_llm.records.clear()
    headers = {"Authorization": f"Bearer {MPC_KEY}"}
    body = {"model": f"mpc/{model_dir.name}", "input": TEXTS}
    reply = httpx.post(f"{url}/v1/classifications", json=body, headers=headers, timeout=120)
    assert reply.status_code == 200, reply.text
    data = reply.json()["data"]
    assert [d["index"] for d in data] == [0, 1] and all(d["label"] in HEAD_LABELS for d in data)
    assert all(abs(sum(d["scores"].values()) - 1.0) < 1e-4 for d in data)
    assert not fake_llm.records


def test_a_cloud_domain_never_forwards_classifications(gateway: LoopbackServer, records: FakeLLM) -> None:
    body = {"model": "m", "input": "Jane Doe, born 1970-01-01"}
    reply = httpx.post(f"{gateway.url}/v1/classifications", json=body, headers={"X-Privgate-Domain": "general"})
    assert reply.status_code == 404 and "secure backends only" in reply.json()["error"]["message"]
    assert not records.records
