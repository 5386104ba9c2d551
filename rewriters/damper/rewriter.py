"""k sampled replacements per private span from a local causal LM, in one batched `generate` call."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import torch

from rewriters.damper.prompt import SpanItem, clean, messages


class RewriterFailed(RuntimeError):
    """The rewriter could not produce candidates in time: the policy's fallback applies."""


class SpanRewriter:
    """Proposes replacements for spans; one model per instance, one generation at a time (CPU-bound)."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_new_tokens: int = 16,
        temperature: float = 0.7,
        top_p: float = 0.9,
        timeout_s: float | None = None,
        sees_span: bool = True,
    ) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.top_p = max_new_tokens, temperature, top_p
        self.timeout_s, self.sees_span = timeout_s, sees_span
        self._lock = threading.Lock()

    def prompt(self, item: SpanItem) -> str:
        return str(
            self.tokenizer.apply_chat_template(
                messages(item, self.sees_span), tokenize=False, add_generation_prompt=True
            )
        )

    def sample(self, items: Sequence[SpanItem], k: int) -> list[list[str]]:
        """k raw completions per item (what the model wrote, special tokens removed)."""
        if not items:
            return []
        encoded = self.tokenizer([self.prompt(i) for i in items], return_tensors="pt", padding=True)
        ids, mask = encoded["input_ids"], encoded["attention_mask"]
        started = time.monotonic()
        with self._lock, torch.inference_mode():
            # Prefill each prompt once, then sample its k continuations from copies of its cache: the prompt
            # (mostly the shots) is most of the work, and `num_return_sequences` would prefill it k times.
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            cache = self.model(
                input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=positions[:, :-1], use_cache=True
            ).cache
            cache.batch_repeat_interleave(k)
            output = self.model.generate(
                input_ids=ids.repeat_interleave(k, 0),
                attention_mask=mask.repeat_interleave(k, 0),
                cache=cache,
                do_sample=True,
                temperature=self.temperature,
                top_p=self.top_p,
                max_new_tokens=self.max_new_tokens,
                pad_token_id=self.tokenizer.pad_token_id,
                max_time=self.timeout_s,
            )
        if self.timeout_s is not None and time.monotonic() - started >= self.timeout_s:
            raise RewriterFailed(f"the rewriter took longer than {self.timeout_s:g} s")
        texts = self.tokenizer.batch_decode(output[:, ids.shape[1] :], skip_special_tokens=True)
        return [[str(t) for t in texts[i * k : (i + 1) * k]] for i in range(len(items))]

    def propose(self, items: Sequence[SpanItem], k: int) -> list[list[str]]:
        """Up to k distinct, well-formed replacements per item; never the original or text containing it."""
        proposals = []
        for item, raw in zip(items, self.sample(items, k), strict=True):
            original = item.value.casefold()
            seen: dict[str, None] = {}
            for answer in raw:
                phrase = clean(answer)
                if phrase is not None and original not in phrase.casefold():
                    seen.setdefault(phrase, None)
            proposals.append(list(seen))
        return proposals
