"""Two-party CrypTen inference of a tiny random encoder: real party processes, gloo on loopback, a TTP dealer."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from secure_infer.backend import BackendError, BackendUnsupported, SecureBackend
from secure_infer.mpc.backend import MpcBackend
from secure_infer.mpc.cluster import ClusterJob, PartyCluster, RequestResult
from secure_infer.mpc.config import MpcConfig
from secure_infer.mpc.reference import DITTO, PLAIN_MPC, Approx, encode, pad_ids
from secure_infer.mpc.weights import EncoderSpec, random_weights, save_model_dir

SPEC = EncoderSpec(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=32)
IDS = [[2, 11, 7, 19, 23, 3], [2, 31, 5, 3]]
WORDS = "the patient was admitted with chest pain and discharged two days later invoice is overdue".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
VOCAB += [f"w{i}" for i in range(SPEC.vocab_size - len(VOCAB))]
TOL = 2e-3  # fixed-point (16 fractional bits) and CrypTen's Newton/exp approximations on this model


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_model_dir(tmp_path_factory.mktemp("tiny-bert"), SPEC, random_weights(SPEC, seed=3), VOCAB)


def _reference(approx: Approx) -> torch.Tensor:
    ids, mask = pad_ids(IDS)
    pooled, _ = encode(random_weights(SPEC, seed=3), SPEC, ids, mask, approx)
    return pooled


def _run(tiny_dir: Path, mode: str, wiretap: Path | None = None, fixed_masks: bool | None = None) -> RequestResult:
    job = ClusterJob(model_dir=tiny_dir, mode=mode, precision_bits=16, wiretap_dir=wiretap, fixed_masks=fixed_masks)
    cluster = PartyCluster(job)
    cluster.start()
    try:
        return cluster.run(IDS, timeout_s=60)
    finally:
        cluster.close()
        assert not cluster.procs


@pytest.fixture(scope="module")
def plain_run(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RequestResult, Path]:
    tap = tmp_path_factory.mktemp("wiretap")
    return _run(tiny_dir, "plain", tap), tap


@pytest.fixture(scope="module")
def ditto_run(tiny_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RequestResult, Path]:
    tap = tmp_path_factory.mktemp("wiretap-ditto")
    return _run(tiny_dir, "ditto", tap), tap


def test_plain_mpc_matches_plaintext(plain_run: tuple[RequestResult, Path]) -> None:
    result, _ = plain_run
    expected = _reference(PLAIN_MPC)
    assert result.embeddings.shape == (2, SPEC.hidden)
    assert torch.allclose(result.embeddings, expected, atol=TOL), (result.embeddings - expected).abs().max()
    assert all(r > 100 for r in result.rounds) and all(b > 0 for b in result.bytes)


def test_ditto_mpc_matches_its_plaintext_model_and_costs_less(
    ditto_run: tuple[RequestResult, Path], plain_run: tuple[RequestResult, Path]
) -> None:
    result, _ = ditto_run
    expected = _reference(DITTO)
    assert torch.allclose(result.embeddings, expected, atol=TOL), (result.embeddings - expected).abs().max()
    plain, _ = plain_run
    assert result.rounds[0] < plain.rounds[0] and result.bytes[0] < plain.bytes[0]


def test_fixed_weight_masks_give_the_same_result_and_stop_resending_the_weights(
    tiny_dir: Path, plain_run: tuple[RequestResult, Path]
) -> None:
    result = _run(tiny_dir, "plain", fixed_masks=True)
    expected = _reference(PLAIN_MPC)
    assert torch.allclose(result.embeddings, expected, atol=TOL), (result.embeddings - expected).abs().max()
    plain, _ = plain_run
    matmul_weights = SPEC.vocab_size * SPEC.hidden + SPEC.layers * (
        4 * SPEC.hidden**2 + 2 * SPEC.hidden * SPEC.intermediate
    )
    saved = plain.bytes[1] - result.bytes[1]  # party 1 no longer sends its share of W - B for each weight
    assert saved >= 8 * matmul_weights, (saved, matmul_weights)


def _seen_by(tap: Path, rank: int) -> list[torch.Tensor]:
    seen: list[torch.Tensor] = torch.load(tap / f"rank{rank}.pt")
    return [t for t in seen if t.dtype == torch.int64 and t.numel() > 1]


def _appears(secret: torch.Tensor, received: list[torch.Tensor], atol: float = 1e-3) -> bool:
    """Does any received tensor decode (16 fractional bits) to `secret`, in most of its elements?"""
    flat = secret.flatten().double()
    for tensor in received:
        if tensor.numel() == flat.numel():
            decoded = tensor.flatten().double() / 2**16
            if ((decoded - flat).abs() <= atol).double().mean() > 0.5:
                return True
    return False


@pytest.mark.parametrize("run", ["plain_run", "ditto_run"])
def test_wire_party0_never_sees_weights_party1_never_sees_input(run: str, request: pytest.FixtureRequest) -> None:
    result, tap = request.getfixturevalue(run)  # ditto: weight masks dealt once and W - B opened once
    seen0, seen1 = _seen_by(tap, 0), _seen_by(tap, 1)
    assert len(seen0) > 50 and len(seen1) > 50  # Beaver openings, triples, the reveal
    weights = random_weights(SPEC, seed=3)
    for name, value in weights.items():
        for form in (value, value.T) if value.dim() == 2 else (value,):
            assert not _appears(form, seen0), name
    ids, _ = pad_ids(IDS)
    onehot = torch.nn.functional.one_hot(ids, SPEC.vocab_size).float()
    assert not _appears(onehot, seen1) and not _appears(ids.float(), seen1, atol=0.0)
    for row in IDS:  # nor any sentence's token ids, in whatever encoding
        assert not any(t.numel() == len(row) and t.tolist() == row for t in seen1)
    # the tap does see plaintext when it crosses: the pooled output is revealed to party 0, and only to it
    assert _appears(result.embeddings, seen0, atol=1e-4)
    assert not _appears(result.embeddings, seen1, atol=1e-2)


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        return False
    return True


def test_backend_embeddings_and_killed_party(tiny_dir: Path) -> None:
    config = MpcConfig(model=str(tiny_dir), mode="plain", max_seq_len=24, timeout_s=60)
    backend = MpcBackend(config)
    assert isinstance(backend, SecureBackend) and backend.models() == [f"mpc/{tiny_dir.name}"]

    async def scenario() -> None:
        facts: dict[str, object] = {}
        body = {"model": backend.models()[0], "input": ["the patient was admitted", "invoice is overdue"]}
        answer = await backend.embeddings(body, facts)
        assert answer["object"] == "list" and len(answer["data"]) == 2
        vec = torch.tensor(answer["data"][0]["embedding"])
        assert vec.shape == (SPEC.hidden,) and abs(float(vec.norm()) - 1.0) < 1e-3
        assert facts["backend"] == "mpc" and facts["mpc_bytes"][0] > 0  # type: ignore[index]
        with pytest.raises(BackendUnsupported):
            await backend.chat({"model": "x", "messages": []}, {})
        cluster = backend.cluster
        assert cluster is not None
        pids = cluster.pids()
        # kill the model owner while a long request is in flight
        long_body = {"model": backend.models()[0], "input": ["the patient was admitted with chest pain " * 3] * 16}
        killer = threading.Timer(0.5, os.kill, (pids[1], signal.SIGKILL))
        killer.start()
        started = time.monotonic()
        with pytest.raises(BackendError, match="MPC party 1 exited") as err:
            await backend.embeddings(long_body, {})
        killer.join()
        assert "patient" not in str(err.value)
        assert time.monotonic() - started < 30
        assert _gone(pids)  # the other party and the dealer were killed too
        again = await backend.embeddings(body, {})  # a fresh set of parties serves the next request
        assert again["data"][1]["embedding"] == pytest.approx(answer["data"][1]["embedding"], abs=1e-3)
        assert backend.cluster is not None and backend.cluster.pids() != pids
        new_pids = backend.cluster.pids()
        await backend.aclose()
        assert _gone(new_pids)

    asyncio.run(scenario())


_FROM_PYTORCH = """
import os, sys, torch
os.environ.update(RANK="0", WORLD_SIZE="1", DISTRIBUTED_BACKEND="gloo", RENDEZVOUS="file://" + sys.argv[1])
from secure_infer.mpc.compat import import_crypten
crypten = import_crypten()
crypten.init()
torch.manual_seed(0)
head = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.Identity(), torch.nn.ReLU(), torch.nn.Linear(4, 2))
x = torch.randn(3, 8)
model = crypten.nn.from_pytorch(head, torch.empty(1, 8)).encrypt()
out = model(crypten.cryptensor(x)).get_plain_text()
assert torch.allclose(out, head(x), atol=1e-3), (out, head(x))
print("ok")
"""


def test_compat_layer_lets_crypten_convert_a_pytorch_head(tmp_path: Path) -> None:
    """torch 2.13: moved ONNX registry, dynamo-by-default export and Identity nodes, all through the shim."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _FROM_PYTORCH, str(tmp_path / "rdv")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


@pytest.mark.slow
def test_plain_mpc_on_a_padded_minilm_batch_matches_plaintext() -> None:
    """Real weights, a short sentence padded to a 64-token one's width: the padding leaves it unchanged.

    In layer 0 of MiniLM padded positions' keys score up to 12 above the real ones, so the softmax's row
    maximum (taken over all keys, then masked) must not cost the real keys their precision.
    """
    from secure_infer.mpc.tokenize import TextTokenizer
    from secure_infer.mpc.weights import load_weights, model_dir

    torch.set_num_threads(1)
    directory = model_dir("all-MiniLM-L6-v2")
    texts = [
        "My brother was released after tax evasion and now has a settlement of $120,000.",
        "The committee reviewed the quarterly report on patient admissions, staffing levels, budget overruns and "
        "the planned renovation of the north wing before the annual audit in the spring. " * 2,
    ]
    ids = TextTokenizer(directory, 64).ids(texts)
    assert len(ids[1]) == 64 and len(ids[0]) < 24
    cluster = PartyCluster(ClusterJob(model_dir=directory, mode="plain", precision_bits=16))
    cluster.start()
    try:
        got = cluster.run(ids, timeout_s=300).embeddings
    finally:
        cluster.close()
    spec, state = load_weights(directory)
    tensor, mask = pad_ids(ids)
    expected, _ = encode(state, spec, tensor, mask, PLAIN_MPC)
    cosine = torch.nn.functional.cosine_similarity(got, expected)
    assert float(cosine.min()) > 0.999, cosine
