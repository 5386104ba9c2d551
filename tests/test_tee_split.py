"""TEE split inference with a real enclave process on loopback, over tiny random models built from a config."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertConfig, BertModel, LlamaConfig, LlamaForCausalLM

from secure_infer.backend import BackendError
from secure_infer.tee import wire
from secure_infer.tee.attestation import generate_dev_root
from secure_infer.tee.backend import TeeBackend
from secure_infer.tee.config import TeeConfig
from secure_infer.tee.models import _GGUF, Loaded, _smollm2_dir, client_slice, enclave_slice, load
from secure_infer.tee.runner import SplitRunner
from secure_infer.tee.split import ClientDecoder, EnclaveDecoder, encoder_client, encoder_enclave, sample

torch.set_num_threads(1)
os.environ["HF_HUB_OFFLINE"] = "1"


def save_tiny_llama(directory: Path, layers: int = 4, seed: int = 0, init_range: float = 0.02) -> Path:
    """A random Llama with SmolLM2's real tokenizer and chat template, saved as a local model directory."""
    tokenizer = AutoTokenizer.from_pretrained(_smollm2_dir(), gguf_file=_GGUF)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        initializer_range=init_range,
    )
    LlamaForCausalLM(cfg).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def root_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dev_root(tmp_path_factory.mktemp("root") / "dev-root-of-trust.key")


@pytest.fixture(scope="module")
def runner(tiny_llama: Path, root_key: Path) -> Iterator[SplitRunner]:
    split = SplitRunner(TeeConfig(model=str(tiny_llama), split_layers=2, dev_root_key=str(root_key)))
    split.link.connect()
    yield split
    split.close()


def _greedy_whole(model: LlamaForCausalLM, ids: list[int], n: int) -> list[int]:
    seq, out = torch.tensor([ids]), []
    with torch.no_grad():
        for _ in range(n):
            token = int(model(seq).logits[0, -1].argmax())
            out.append(token)
            seq = torch.cat([seq, torch.tensor([[token]])], 1)
    return out


@pytest.mark.parametrize("k", [0, 1, 2, 4])
def test_split_in_process_equals_whole_model(tiny_llama: Path, k: int) -> None:
    loaded = load(str(tiny_llama), with_tokenizer=False)
    client, enclave = ClientDecoder(client_slice(loaded, k)), EnclaveDecoder(enclave_slice(loaded, k))
    ids = list(range(5, 17))
    logits = enclave.forward(client.prefill(torch.tensor([ids])))
    with torch.no_grad():
        whole = loaded.model(torch.tensor([ids])).logits
    assert torch.allclose(logits, whole, atol=1e-5)
    tokens, token = [], int(logits[0, -1].argmax())
    for _ in range(6):
        tokens.append(token)
        token = int(enclave.forward(client.step(token))[0, -1].argmax())
    assert tokens == _greedy_whole(loaded.model, ids, 6)


def test_encoder_split_equals_whole_encoder() -> None:
    torch.manual_seed(0)
    bert = BertModel(
        BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64),
        add_pooling_layer=False,
    ).eval()
    loaded = Loaded("encoder", bert, None)
    ids, mask = torch.randint(0, 100, (2, 7)), torch.ones(2, 7, dtype=torch.long)
    mask[1, 5:] = 0
    with torch.no_grad():
        states = bert(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).float()
    whole = torch.nn.functional.normalize((states * weights).sum(1) / weights.sum(1), dim=1)
    for k in (0, 1, 3):
        split = encoder_enclave(enclave_slice(loaded, k), encoder_client(client_slice(loaded, k), ids, mask), mask)
        assert torch.allclose(split, whole, atol=1e-6)


def test_enclave_process_logits_and_greedy_match_whole_model(runner: SplitRunner, tiny_llama: Path) -> None:
    whole = load(str(tiny_llama), with_tokenizer=False).model
    ids = list(range(100, 130))
    with torch.no_grad():
        expected = whole(torch.tensor([ids])).logits.numpy()
    np.testing.assert_allclose(runner.prefill_logits(ids), expected, atol=1e-5)
    assert runner.generate(ids, 8) == _greedy_whole(whole, ids, 8)
    assert runner.link.measurement is not None and len(runner.link.measurement) == 64


def test_sampled_generation_matches_local_sampling(runner: SplitRunner, tiny_llama: Path) -> None:
    whole = load(str(tiny_llama), with_tokenizer=False).model
    ids = list(range(200, 210))
    generator = torch.Generator().manual_seed(7)
    seq, expected = torch.tensor([ids]), []
    with torch.no_grad():
        for _ in range(6):
            token = sample(whole(seq).logits[0, -1], 0.9, 0.95, generator)
            expected.append(token)
            seq = torch.cat([seq, torch.tensor([[token]])], 1)
    assert runner.generate(ids, 6, temperature=0.9, top_p=0.95, seed=7) == expected


class _RecordingProxy:
    """A TCP relay on loopback that keeps every byte the client sends, as an eavesdropper would see them."""

    def __init__(self, target: int) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.seen = bytearray()
        self.target = target
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        conn, _ = self.server.accept()
        self.server.close()
        upstream = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pump, args=(upstream, conn, False), daemon=True).start()
        self._pump(conn, upstream, True)

    def _pump(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        try:
            while data := src.recv(65536):
                if record:
                    self.seen += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            dst.close()


def test_wire_bytes_are_not_the_activations(runner: SplitRunner, tiny_llama: Path, root_key: Path) -> None:
    assert runner.link.process is not None
    proxy = _RecordingProxy(runner.link.process.port)
    cfg = TeeConfig(
        model=str(tiny_llama),
        split_layers=2,
        dev_root_key=str(root_key),
        enclave_address=f"127.0.0.1:{proxy.port}",
        allowed_measurements=[runner.link.measurement or ""],
    )
    eavesdropped = SplitRunner(cfg, runner.loaded)
    ids = list(range(300, 340))
    eavesdropped.generate(ids, 1)
    eavesdropped.close()
    hidden = ClientDecoder(runner.client).prefill(torch.tensor([ids])).numpy().tobytes()
    assert len(proxy.seen) > len(hidden)  # the activations did travel...
    for start in range(0, len(hidden) - 16, 256):
        assert hidden[start : start + 16] not in proxy.seen  # ...but no 16-byte run of their floats is visible


def _remote(runner: SplitRunner, root_key: Path, **overrides: object) -> SplitRunner:
    """A second client of the fixture's running enclave, reached by address."""
    assert runner.link.process is not None
    values: dict[str, object] = {
        "model": runner.cfg.model,
        "split_layers": 2,
        "dev_root_key": str(root_key),
        "enclave_address": f"127.0.0.1:{runner.link.process.port}",
        "allowed_measurements": [runner.link.measurement or ""],
    }
    return SplitRunner(TeeConfig.model_validate({**values, **overrides}), runner.loaded)


def test_wrong_measurement_in_allow_list_is_refused(runner: SplitRunner, root_key: Path) -> None:
    client = _remote(runner, root_key, allowed_measurements=["0" * 64])
    with pytest.raises(BackendError, match="allow-list"):
        client.generate([1, 2, 3], 1)
    client.close()


def test_wrong_root_of_trust_is_refused(runner: SplitRunner, root_key: Path, tmp_path: Path) -> None:
    other = generate_dev_root(tmp_path / "other.key")
    client = _remote(runner, root_key, dev_root_public_key=str(other) + ".pub")
    with pytest.raises(BackendError, match="signature"):
        client.generate([1, 2, 3], 1)
    client.close()
    accepted = _remote(runner, root_key)  # the same enclave, the right root and allow-list: accepted
    assert len(accepted.generate([1, 2, 3], 2)) == 2
    accepted.close()


def test_enclave_dying_mid_stream_fails_cleanly_and_reconnects(tiny_llama: Path, root_key: Path) -> None:
    asyncio.run(_die_mid_stream(tiny_llama, root_key))


async def _die_mid_stream(tiny_llama: Path, root_key: Path) -> None:
    backend = TeeBackend(
        TeeConfig(model=str(tiny_llama), split_layers=1, dev_root_key=str(root_key), max_new_tokens=40)
    )
    process = backend.runner.link.process
    assert process is not None
    pid = process.proc.pid
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 40}
    facts: dict[str, object] = {}
    stream = backend.chat_stream(body, facts)
    with pytest.raises(BackendError, match="lost mid-request"):
        async for _ in stream:
            os.kill(pid, signal.SIGKILL)  # the enclave dies after the first token
    assert not Path(f"/proc/{pid}").exists()  # reaped, not a zombie
    answer = await backend.chat({**body, "max_tokens": 3}, facts)  # a fresh enclave, attested again
    assert answer["choices"][0]["finish_reason"] in ("length", "stop")
    assert backend.runner.link.traffic.handshakes == 2
    new_pid = backend.runner.link.process.proc.pid  # type: ignore[union-attr]
    await backend.aclose()
    assert new_pid != pid and not Path(f"/proc/{new_pid}").exists()


def test_enclave_drops_a_connection_that_replays_a_frame(runner: SplitRunner) -> None:
    session = runner.link.connect()
    frame = session.channel.seal(wire.encode({"op": "info"}))
    wire.send_frame(session.sock, frame)
    info, _ = wire.decode(session.channel.open(wire.recv_frame(session.sock)))
    assert info["measurement"] == runner.link.measurement
    wire.send_frame(session.sock, frame)  # the same ciphertext again: the enclave must refuse it
    with pytest.raises(wire.WireClosed):
        wire.recv_frame(session.sock)
    runner.link.drop()
    assert runner.generate([5, 6, 7], 2) == runner.generate([5, 6, 7], 2)  # a fresh, re-attested connection works
