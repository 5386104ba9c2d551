"""A tiny random causal LM with a real chat template, built in a second, for the DAMPER tests.

It stands in for SmolLM2 where only the mechanics matter: loading from a local directory, batched sampling,
DPO with a LoRA adapter, artifacts. A byte-level BPE trained on a few sentences gives it a real tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import torch

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
_CORPUS = [
    "He was diagnosed with stage III carcinoma and takes tamoxifen daily.",
    "a serious illness, a long-term treatment, a medical condition, a surgery, an operation",
    "Text: Condition: Medication: Procedure: Income: Criminal charge:",
    "Elle prend de la warfarine depuis son infarctus. La paciente toma metformina.",
    "You replace one private detail in a text by a vaguer phrase of the same kind.",
]


def build_tiny_lm(directory: Path, seed: int = 0) -> Path:
    """Write config, weights and tokenizer of a 2-layer Llama to `directory`; returns it."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS * 4, vocab_size=400, min_frequency=1, special_tokens=["<|im_start|>", "<|im_end|>"])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer,  # the Rust tokenizer behind the convenience wrapper
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def teach(directory: Path, prompts: list[str], answer: str, steps: int = 80) -> None:
    """Fine-tune the tiny LM in `directory` until it answers `answer` to these chat prompts (saved in place)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32)
    texts = [p + answer + tokenizer.eos_token for p in prompts]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    for row, prompt in enumerate(prompts):  # learn the answer only (right padding: prompts start at 0)
        labels[row, : len(tokenizer(prompt)["input_ids"])] = -100
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.save_pretrained(directory)
