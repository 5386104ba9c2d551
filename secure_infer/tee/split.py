"""The two halves of a split forward pass, as plain torch (no network): each side keeps its own KV cache.

The client half turns token ids into layer-k hidden states; the enclave half turns those into logits (and the
next token) or, for an encoder, into a pooled, L2-normalised sentence embedding.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F


class ClientDecoder:
    """Embeddings and the first k decoder layers; one cache per generation."""

    def __init__(self, module: Any) -> None:  # a transformers model: dynamically typed
        self.module = module
        self.cache: Any = None

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor) -> torch.Tensor:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.module.config)
        return self._run(input_ids)

    @torch.no_grad()
    def step(self, token: int) -> torch.Tensor:
        return self._run(torch.tensor([[token]], dtype=torch.long))

    def _run(self, input_ids: torch.Tensor) -> torch.Tensor:
        out = self.module(input_ids=input_ids, cache=self.cache, use_cache=True)
        hidden: torch.Tensor = out.last_hidden_state
        return hidden


class EnclaveDecoder:
    """The last layers, final norm and LM head; the KV cache stays here so a new token is one round trip."""

    def __init__(self, module: Any) -> None:  # a transformers model: dynamically typed
        self.module = module
        self.cache: Any = None

    def reset(self) -> None:
        from transformers import DynamicCache

        self.cache = DynamicCache(config=self.module.config)

    @torch.no_grad()
    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits for every position of `hidden`, appending its keys and values to the cache."""
        if self.cache is None:
            self.reset()
        out = self.module(inputs_embeds=hidden, cache=self.cache, use_cache=True)
        logits: torch.Tensor = out.logits
        return logits

    def loss(self, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Causal-LM loss with gradients (for training the enclave's adapter); no cache."""
        out = self.module(inputs_embeds=hidden, labels=labels, use_cache=False)
        loss: torch.Tensor = out.loss
        return loss


def sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Greedy when temperature is 0, else nucleus sampling from the temperature-scaled distribution."""
    if temperature <= 0:
        return int(torch.argmax(logits).item())
    probs = F.softmax(logits.double() / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < top_p
        sorted_probs = torch.where(keep, sorted_probs, torch.zeros_like(sorted_probs))
        choice = torch.multinomial(sorted_probs / sorted_probs.sum(), 1, generator=generator)
        return int(order[choice].item())
    return int(torch.multinomial(probs, 1, generator=generator).item())


@torch.no_grad()
def encoder_client(module: Any, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Embeddings and the first k encoder layers."""
    hidden: torch.Tensor = module(input_ids=input_ids, attention_mask=mask).last_hidden_state
    return hidden


@torch.no_grad()
def encoder_enclave(module: Any, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last encoder layers on layer-k states, then mean pooling over real tokens and L2 normalisation."""
    ext, _ = module._create_attention_masks(
        attention_mask=mask,
        encoder_attention_mask=None,
        embedding_output=hidden,
        encoder_hidden_states=None,
        cache=None,
    )
    states = module.encoder(hidden, attention_mask=ext).last_hidden_state
    weights = mask.unsqueeze(-1).to(states.dtype)
    pooled = (states * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
    return F.normalize(pooled, p=2, dim=1)
