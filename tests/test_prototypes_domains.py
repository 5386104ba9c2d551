"""The shipped domain artifacts on sentences written for this test, with terms outside the training lists."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from policies import SHIPPED_DIR, Policy
from policies.loader import load_policy
from rewriters.detectors.prototypes import ByLanguage, PrototypeDetector
from rewriters.language import LanguageGuesser
from rewriters.spans import Span

torch.set_num_threads(1)

# Values outside the training term lists, in English for the MiniLM artifact; the other languages are
# read by each domain's multilingual (e5) artifact, below.
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
    assert_flags_cases_not_neutral(detector.detect, policy, CASES[domain], NEUTRAL)


Detect = Callable[[list[str]], list[list[Span]]]


def assert_flags_cases_not_neutral(
    detect: Detect, policy: Policy, cases: list[tuple[str, set[str]]], neutral: list[str]
) -> None:
    """Every expected value overlaps a protected span of its case; no neutral text gets a span."""
    found = detect([text for text, _ in cases] + neutral)
    for (text, expected), spans in zip(cases, found, strict=False):
        flagged = [text[s.start : s.end] for s in spans]
        for value in expected:
            start = text.index(value)
            assert any(s.start < start + len(value) and start < s.end for s in spans), (value, flagged)
        assert all(policy.protects(s.label) for s in spans)
    assert sum(len(spans) for spans in found[len(cases) :]) == 0, found[len(cases) :]


# Non-English values outside the training term lists, for the multilingual artifacts
OTHER_LANGUAGES = {
    "medical": [
        ("Bei meiner Mutter wurde letztes Jahr eine Lungenfibrose festgestellt.", {"Lungenfibrose"}),
        ("A mi padre le diagnosticaron una cirrosis hepática y toma espironolactona.", {"cirrosis", "espironolactona"}),
        ("Mia moglie è in cura per una psoriasi grave.", {"psoriasi"}),
        ("我妈妈得了甲状腺功能减退症。", {"甲状腺功能减退症"}),
    ],
    "finance": [
        ("Mein Konto ist seit Monaten im Dispo, minus 4.000 Euro.", {"4.000 Euro"}),
        ("Mi cliente gana 95.000 euros al año y tiene una deuda con Hacienda.", {"95.000 euros al año"}),
        ("我的信用卡已经逾期三个月了。", {"逾期"}),
    ],
    "legal": [
        ("Mein Bruder wurde wegen Körperverletzung angeklagt.", {"Körperverletzung"}),
        ("Ma cliente conteste son obligation de quitter le territoire.", {"quitter le territoire"}),
        ("Il mio vicino è stato condannato per furto aggravato.", {"furto aggravato"}),
    ],
}
NEUTRAL_OTHER = [
    "Bitte fasse die Notizen der Besprechung zusammen.",
    "¿Cuál es una buena receta de lasaña vegetariana?",
    "Le train pour Lyon part à 9h40 du quai 7.",
    "Qual è il modo migliore per imparare il tedesco?",
    "明天上午九点开会，请准备好材料。",
]


@pytest.fixture(scope="module")
def guesser() -> LanguageGuesser:
    return LanguageGuesser()


@pytest.mark.parametrize("domain", sorted(OTHER_LANGUAGES))
def test_non_english_text_goes_to_the_multilingual_artifact(domain: str, guesser: LanguageGuesser) -> None:
    policy = load_policy(SHIPPED_DIR / f"{domain}.yaml")
    config = policy.detectors.prototypes
    assert config is not None and config.multilingual_artifact is not None
    english = PrototypeDetector.open(config.artifact)
    other = PrototypeDetector.open(config.multilingual_artifact)
    detector = ByLanguage(english, other, guesser)
    english_text, _ = CASES[domain][0]
    assert detector.routes_to_english(english_text)
    cases = OTHER_LANGUAGES[domain]
    texts = [text for text, _ in cases]
    assert not any(detector.routes_to_english(t) for t in texts + NEUTRAL_OTHER)
    assert detector.detect([english_text]) == english.detect([english_text])  # English is still read by MiniLM
    assert_flags_cases_not_neutral(detector.detect, policy, cases, NEUTRAL_OTHER)


def test_domains_share_one_encoder_per_model() -> None:
    """Each int8 copy of e5 holds its word table: the three domains' artifacts read through one."""
    loaded = [load_policy(SHIPPED_DIR / f"{domain}.yaml").detectors.prototypes for domain in sorted(CASES)]
    paths = [config.multilingual_artifact for config in loaded if config is not None]
    encoders = {id(PrototypeDetector.open(path).encoder) for path in paths if path is not None}
    assert len(paths) == 3 and len(encoders) == 1
