"""The shipped domain artifacts on sentences written for this test, with terms outside the training lists."""

from __future__ import annotations

import pytest
import torch

from policies import SHIPPED_DIR
from policies.loader import load_policy
from rewriters.detectors.prototypes import PrototypeDetector

torch.set_num_threads(1)

# Values outside the training term lists. English: MiniLM reads other languages too weakly for a
# dependable test here (see the note on the shipped domains' non-English recall).
CASES = {
    "medical": [
        ("Her rheumatologist confirmed systemic sclerosis and put her on a new drug.", {"systemic sclerosis"}),
        ("My husband was diagnosed with sleep apnea and now uses a machine every night.", {"sleep apnea"}),
    ],
    "finance": [
        ("After the layoff I fell behind and now have a personal insolvency on my record.", {"personal insolvency"}),
        ("My client earns $212,000 a year and wired $48,000 to Malta last week.", {"$212,000 a year"}),
    ],
    "legal": [
        ("She is fighting a deportation order while her divorce case is pending.", {"deportation order"}),
        ("My cousin lost his job and his work visa expired in May.", {"work visa expired"}),
    ],
}
NEUTRAL = [
    "Please summarise the attached meeting notes and list the action items.",
    "What is a good recipe for a vegetarian lasagne for six people?",
    "The train to Berlin leaves at 9:40 from platform 7.",
]


@pytest.mark.parametrize("domain", sorted(CASES))
def test_shipped_domain_flags_unseen_private_terms_and_leaves_neutral_text(domain: str) -> None:
    policy = load_policy(SHIPPED_DIR / f"{domain}.yaml")
    assert policy.detectors.prototypes is not None
    detector = PrototypeDetector.open(policy.detectors.prototypes.artifact)
    texts = [text for text, _ in CASES[domain]]
    found = detector.detect(texts + NEUTRAL)
    for (text, expected), spans in zip(CASES[domain], found, strict=False):
        flagged = [text[s.start : s.end] for s in spans]
        for value in expected:
            start = text.index(value)
            assert any(s.start < start + len(value) and start < s.end for s in spans), (value, flagged)
        assert all(policy.protects(s.label) for s in spans)
    assert sum(len(spans) for spans in found[len(texts) :]) == 0, found[len(texts) :]
