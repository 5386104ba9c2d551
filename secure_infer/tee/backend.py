"""`TeeBackend`: the gateway's `SecureBackend` for a split model whose later layers run in an attested enclave."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from secure_infer.backend import BackendError, BackendUnsupported, Json
from secure_infer.tee.config import TeeConfig
from secure_infer.tee.runner import SplitRunner

_DONE = object()


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


class TeeBackend:
    name = "tee"

    def __init__(self, cfg: TeeConfig, runner: SplitRunner | None = None) -> None:
        self.cfg = cfg
        self.runner = runner or SplitRunner(cfg)
        self.runner.link.connect()  # attest at start: a refused enclave fails the gateway's start, not a request
        self._lock = threading.Lock()  # one enclave session: its KV cache serves one generation at a time

    def models(self) -> list[str]:
        return [self.cfg.served_name or self.cfg.model]

    # --- chat ---------------------------------------------------------------------------------------------------

    def _prompt(self, body: Json) -> list[int]:
        if self.runner.kind != "decoder":
            raise BackendUnsupported("this TEE model serves embeddings only")
        if body.get("n", 1) != 1:
            raise BackendUnsupported("the TEE backend generates one choice (n=1)")
        messages = [{"role": m.get("role", "user"), "content": _text(m.get("content"))} for m in body["messages"]]
        ids = self.runner.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
        return list(ids)

    def _generate(self, body: Json, facts: Json, on_token: Any = None) -> tuple[list[int], str]:
        ids = self._prompt(body)
        limit = min(
            int(body.get("max_completion_tokens") or body.get("max_tokens") or self.cfg.max_new_tokens),
            self.cfg.max_new_tokens,
        )
        timings: dict[str, Any] = {}
        tok = self.runner.tokenizer
        with self._lock:
            link = self.runner.link
            sent, received = link.traffic.sent, link.traffic.received
            out = self.runner.generate(
                ids,
                limit,
                temperature=float(body.get("temperature") or 0.0),
                top_p=float(body.get("top_p") or 1.0),
                seed=body.get("seed"),
                stop_ids={tok.eos_token_id} if tok.eos_token_id is not None else None,
                on_token=on_token,
                timings=timings,
            )
            facts.update(
                backend="tee",
                measurement=link.measurement,
                verifier=link.verifier.name,
                split_layers=self.cfg.split_layers,
                prompt_tokens=len(ids),
                completion_tokens=len(out),
                ttft_ms=round(1000 * timings.get("ttft_s", 0.0), 1),
                total_ms=round(1000 * timings["total_s"], 1),
                bytes_sent=link.traffic.sent - sent,
                bytes_received=link.traffic.received - received,
            )
        return ids, "length" if len(out) >= limit else "stop"

    async def chat(self, body: Json, facts: Json) -> Json:
        tokens: list[int] = []

        def collect(token: int) -> bool:
            tokens.append(token)
            return True

        ids, finish = await asyncio.to_thread(self._generate, body, facts, collect)
        text = self.runner.tokenizer.decode(tokens, skip_special_tokens=True)
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model") or self.models()[0],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": len(ids),
                "completion_tokens": len(tokens),
                "total_tokens": len(ids) + len(tokens),
            },
        }

    async def chat_stream(self, body: Json, facts: Json) -> AsyncIterator[Json]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def push(token: int) -> bool:
            loop.call_soon_threadsafe(queue.put_nowait, token)
            return not cancelled.is_set()

        async def produce() -> None:
            try:
                _, finish = await asyncio.to_thread(self._generate, body, facts, push)
                queue.put_nowait(("finish", finish))
            except BaseException as exc:  # noqa: B036 - handed to the consumer, which re-raises it
                queue.put_nowait(exc)

        task = asyncio.create_task(produce())
        base = {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model") or self.models()[0],
        }
        tokens: list[int] = []
        shown = ""
        first = True
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    if isinstance(item, BackendError):
                        raise item
                    raise BackendError(f"the TEE backend failed ({type(item).__name__})") from item
                if isinstance(item, tuple):
                    tail = self.runner.tokenizer.decode(tokens, skip_special_tokens=True)[len(shown) :]
                    if tail:
                        yield {**base, "choices": [{"index": 0, "delta": {"content": tail}, "finish_reason": None}]}
                    yield {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": item[1]}]}
                    return
                tokens.append(item)
                text = self.runner.tokenizer.decode(tokens, skip_special_tokens=True)
                if text.endswith("\ufffd"):  # a multi-byte character is not complete yet
                    continue
                delta: dict[str, Any] = {"content": text[len(shown) :]}
                if first:
                    delta["role"] = "assistant"
                    first = False
                shown = text
                yield {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        finally:
            cancelled.set()
            await asyncio.shield(asyncio.wait([task]))

    # --- embeddings ---------------------------------------------------------------------------------------------

    async def embeddings(self, body: Json, facts: Json) -> Json:
        if self.runner.kind != "encoder":
            raise BackendUnsupported("this TEE model serves chat only")
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if not all(isinstance(t, str) for t in texts):
            raise BackendUnsupported("the TEE backend embeds text inputs only")
        started = time.perf_counter()

        def run() -> Any:
            with self._lock:
                link = self.runner.link
                sent, received = link.traffic.sent, link.traffic.received
                vectors = self.runner.embed(texts)
                facts.update(
                    backend="tee",
                    measurement=link.measurement,
                    verifier=link.verifier.name,
                    split_layers=self.cfg.split_layers,
                    bytes_sent=link.traffic.sent - sent,
                    bytes_received=link.traffic.received - received,
                )
                return vectors

        vectors = await asyncio.to_thread(run)
        facts["total_ms"] = round(1000 * (time.perf_counter() - started), 1)
        return {
            "object": "list",
            "model": body.get("model") or self.models()[0],
            "data": [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": 0, "total_tokens": 0},
        }

    async def aclose(self) -> None:
        await asyncio.to_thread(self.runner.close)


def build_backend(cfg: TeeConfig) -> TeeBackend:
    """The gateway's factory (`gateway.secure.FACTORIES["tee"]`)."""
    return TeeBackend(cfg)
