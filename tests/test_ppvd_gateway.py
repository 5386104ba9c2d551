"""PPVD through the real gateway: a record the model repeats is replaced in JSON answers and streams, audited
by store id and score only; a prompt that pastes a record is refused where the policy says so.

The "model" is the echo upstream: it repeats the prompt, so once privgate restores its own surrogates
the answer holds the record verbatim, as a model that memorised it would write it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway.runtime import Runtime, StartupError
from policies.schema import PpvdConfig
from rewriters.ppvd import PpvdGuard, build_store, derive_key, policy_sanitiser, read_corpus
from tests.conftest import make_settings
from tests.servers import FakeLLM, LoopbackServer

NOTES = Path(__file__).parent / "fixtures" / "ppvd" / "notes.jsonl"
RECORD = (
    "Patient Harriet Okonkwo, MRN 4471-2290, was admitted on 14 March 2023 with community-acquired pneumonia."
)
SECRETS = ("Harriet", "Okonkwo", "4471-2290")


@pytest.fixture(scope="module")
def store(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ppvd") / "store"
    policy = runtime.policies["general"]
    passages = [record.text for record in read_corpus(NOTES)]
    build_store(passages, out, derive_key(runtime.secret), policy_sanitiser(policy, runtime.engines["general"]))
    return out


@pytest.fixture()
def guarded(runtime: Runtime, store: Path) -> Iterator[str]:
    """The `masked` domain with the store, answers guarded and prompts that paste a record refused."""
    original = runtime.policies["masked"]
    config = PpvdConfig(store=str(store), on_request="block")
    runtime.policies["masked"] = original.model_copy(update={"ppvd": config})
    runtime.guards["masked"] = PpvdGuard.load(store, derive_key(runtime.secret), config.threshold)
    try:
        yield "masked"
    finally:
        runtime.policies["masked"] = original
        del runtime.guards["masked"]


def ask(gateway: LoopbackServer, domain: str, text: str, *, stream: bool = False) -> str:
    headers = {"X-Privgate-Domain": domain}
    with openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0, default_headers=headers) as oai:
        messages = [{"role": "user", "content": text}]
        if not stream:
            return oai.chat.completions.create(model="m", messages=messages).choices[0].message.content or ""  # type: ignore[arg-type]
        chunks = oai.chat.completions.create(model="m", messages=messages, stream=True)  # type: ignore[arg-type]
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_repeated_record_is_replaced_in_json_and_streamed_answers(
    gateway: LoopbackServer, runtime: Runtime, guarded: str
) -> None:
    # on_request only screens prompts; here the answer side is under test, so let prompts through
    policy = runtime.policies[guarded]
    assert policy.ppvd is not None
    runtime.policies[guarded] = policy.model_copy(update={"ppvd": policy.ppvd.model_copy(update={"on_request": "off"})})
    prompt = f"Repeat after me. {RECORD} Thank you."
    for stream in (False, True):
        answer = ask(gateway, guarded, prompt, stream=stream)
        assert answer.startswith("Repeat after me. ") and answer.endswith(" Thank you.")
        assert not any(secret in answer for secret in SECRETS), answer
        assert "pneumonia" in answer  # the sanitised version keeps what is not identifying
    unrelated = "What is the usual adult dose of amoxicillin for a chest infection? Please be brief."
    assert ask(gateway, guarded, unrelated) == unrelated
    assert runtime.audit.flush()
    records = runtime.audit.recent(3)
    assert not records[0].ppvd_hits
    for record in records[1:]:
        assert record.ppvd_hits and {h["side"] for h in record.ppvd_hits} == {"answer"}
        dumped = json.dumps(record.ppvd_hits)
        assert record.ppvd_hits[0]["score"] > 0.75 and not any(secret in dumped for secret in SECRETS)


def test_a_prompt_that_pastes_a_record_is_refused(gateway: LoopbackServer, runtime: Runtime, guarded: str) -> None:
    with pytest.raises(openai.PermissionDeniedError, match="high-risk store") as refusal:
        ask(gateway, guarded, f"Summarise: {RECORD}")
    assert refusal.value.code == "privgate_ppvd_record_in_prompt"
    assert runtime.audit.flush()
    refused = runtime.audit.recent(1)[0]
    assert refused.outcome == "refused" and refused.ppvd_hits and refused.ppvd_hits[0]["side"] == "request"


def test_a_missing_or_corrupt_store_stops_start_up(fake_llm: FakeLLM, store: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt"
    shutil.copytree(store, corrupt)
    (corrupt / "index.faiss").write_bytes(b"not an index")
    for where in (tmp_path / "nowhere", corrupt):
        policies = tmp_path / f"policies-{where.name}"
        policies.mkdir()
        (policies / "general.yaml").write_text(
            f'name: general\nversion: "1"\ndetectors: {{presidio: {{enabled: false}}}}\nppvd: {{store: "{where}"}}\n'
        )
        with pytest.raises(StartupError, match="PPVD|store"):
            Runtime.build(make_settings(fake_llm, policies, tmp_path / f"data-{where.name}"))
