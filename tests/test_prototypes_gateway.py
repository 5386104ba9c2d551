"""The shipped medical policy through a real gateway: diagnoses and medications never reach the upstream."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import httpx
import pytest
import torch

from gateway import create_app
from gateway.runtime import Runtime, StartupError
from policies import SHIPPED_DIR
from tests.conftest import make_settings
from tests.servers import FakeLLM, LoopbackServer

torch.set_num_threads(1)
PROMPT = (
    "My mother was diagnosed with chronic lymphocytic leukemia in March and her oncologist started her "
    "on ibrutinib. What questions should we ask at the next appointment?"
)


@pytest.fixture(scope="module")
def medical_gateway(fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    root = tmp_path_factory.mktemp("shipped")
    shutil.copytree(SHIPPED_DIR, root / "domains")
    shutil.copytree(SHIPPED_DIR.parent / "artifacts", root / "artifacts")  # the policies' ../artifacts/...
    for other in ("finance", "legal"):
        (root / "domains" / f"{other}.yaml").unlink()  # only what this test needs: start-up loads each model
    runtime = Runtime.build(make_settings(fake_llm, root / "domains", tmp_path_factory.mktemp("data")))
    assert any(d.name == "prototypes" for d in runtime.engines["medical"].detectors)
    with LoopbackServer(create_app(runtime=runtime)) as server:
        yield server


def test_medical_domain_rewrites_diagnosis_and_medication(medical_gateway: LoopbackServer, fake_llm: FakeLLM) -> None:
    fake_llm.records.clear()
    body = {"model": "m", "messages": [{"role": "user", "content": PROMPT}]}
    reply = httpx.post(
        f"{medical_gateway.url}/v1/chat/completions",
        json=body,
        headers={"X-Privgate-Domain": "medical", "Authorization": "Bearer sk-medical-test"},
        timeout=60,
    )
    assert reply.status_code == 200, reply.text
    sent = fake_llm.received()
    assert "leukemia" not in sent and "ibrutinib" not in sent, sent
    assert "[CONDITION_" in sent and "[MEDICATION_" in sent
    assert "next appointment" in sent  # the rest of the question is untouched
    # the echo model repeats the prompt: the answer the app gets has its own words back
    assert reply.json()["choices"][0]["message"]["content"] == PROMPT


@pytest.mark.parametrize(
    ("prompt", "private"),
    [
        ("A mi madre le diagnosticaron una leucemia linfocítica crónica y toma ibrutinib.", ("leucemia", "ibrutinib")),
        ("Bei mir wurde eine Herzinsuffizienz festgestellt, ich nehme Bisoprolol.", ("Herzinsuffizienz", "Bisoprolol")),
    ],
)
def test_medical_domain_reads_other_languages_with_its_multilingual_artifact(
    medical_gateway: LoopbackServer, fake_llm: FakeLLM, prompt: str, private: tuple[str, str]
) -> None:
    fake_llm.records.clear()
    body = {"model": "m", "messages": [{"role": "user", "content": prompt}]}
    headers = {"X-Privgate-Domain": "medical", "Authorization": "Bearer sk-medical-test"}
    reply = httpx.post(f"{medical_gateway.url}/v1/chat/completions", json=body, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    sent = fake_llm.received()
    assert not any(word in sent for word in private), sent
    assert reply.json()["choices"][0]["message"]["content"] == prompt


def test_start_up_refuses_a_policy_whose_artifact_is_missing_or_corrupt(
    fake_llm: FakeLLM, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("broken")
    (root / "domains").mkdir()
    for name in ("general.yaml", "medical.yaml"):
        shutil.copy(SHIPPED_DIR / name, root / "domains" / name)
    settings = make_settings(fake_llm, root / "domains", tmp_path_factory.mktemp("data"))
    with pytest.raises(StartupError, match=r"domain 'medical'.*prototype artifact .*missing"):
        Runtime.build(settings)
    shutil.copytree(SHIPPED_DIR.parent / "artifacts" / "medical", root / "artifacts" / "medical")
    faiss_file = root / "artifacts" / "medical" / "prototypes.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:-16])
    with pytest.raises(StartupError, match=r"prototypes\.faiss does not match its checksum"):
        Runtime.build(settings)
    # the English artifact whole again, the multilingual one still missing: no start either
    shutil.copytree(SHIPPED_DIR.parent / "artifacts" / "medical", root / "artifacts" / "medical", dirs_exist_ok=True)
    with pytest.raises(StartupError, match=r"domain 'medical'.*medical-multilingual.*missing"):
        Runtime.build(settings)
