"""The DP sampler's semantic utility: culture, gender, then spelling, always within [0, 1] (Δu = 1)."""

from __future__ import annotations

from collections import Counter

import pytest

from rewriters.dp import LOCALES, DpSampler, draw

SAMPLER = DpSampler()


def _shares(label: str, value: str, epsilon: float, draws: int = 400) -> Counter[tuple[str, str | None]]:
    texts, utilities = SAMPLER.candidates(label, value) or ([], [])
    features = {c.text: (c.locale, c.gender) for c in SAMPLER.vocabulary(label)}
    return Counter(features[draw(texts, utilities, epsilon)] for _ in range(draws))


def test_a_french_womans_name_draws_french_womens_names_far_above_chance() -> None:
    vocabulary = SAMPLER.vocabulary("PERSON")
    chance = sum((c.locale, c.gender) == ("fr_FR", "female") for c in vocabulary) / len(vocabulary)
    assert 0.05 < chance < 0.12  # the same number of candidates from each locale, about half of them women
    counts = _shares("PERSON", "Sophie Lefebvre", 8.0)
    assert counts["fr_FR", "female"] / counts.total() > 3 * chance
    assert counts.most_common(1)[0][0] == ("fr_FR", "female")


def test_culture_and_gender_order_the_utilities() -> None:
    texts, utilities = SAMPLER.candidates("PERSON", "Hans Müller") or ([], [])
    by_features: dict[tuple[str, str | None], list[float]] = {}
    for c, u in zip(SAMPLER.vocabulary("PERSON"), utilities, strict=True):
        by_features.setdefault((c.locale, c.gender), []).append(u)
    mean = {k: sum(v) / len(v) for k, v in by_features.items()}
    assert mean["de_DE", "male"] > mean["de_DE", "female"] > mean["it_IT", "female"]
    assert mean["de_DE", "male"] > mean["it_IT", "male"] > mean["zh_CN", "female"]
    chinese = _shares("PERSON", "王秀英", 8.0, 200)
    assert sum(n for (locale, _), n in chinese.items() if locale == "zh_CN") > 80  # chance: 1 in 6 (~33); mean ~122


@pytest.mark.parametrize(
    ("label", "value"),
    [
        ("PERSON", "Sophie Lefebvre"),
        ("PERSON", "王秀英"),
        ("PERSON", "X Æ A-12"),
        ("PERSON", "1234"),
        ("LOCATION", "Lyon"),
        ("LOCATION", "上海市"),
        ("ORGANIZATION", "Acme GmbH & Co. KG"),
        ("STREET_ADDRESS", "12 Rue de Rivoli, Paris"),
    ],
)
def test_every_utility_lies_in_0_1(label: str, value: str) -> None:
    texts, utilities = SAMPLER.candidates(label, value) or ([], [])
    assert len(texts) == len(utilities) >= 6 * 40
    assert all(0.0 <= u <= 1.0 for u in utilities)
    assert max(utilities) > min(utilities) or value == "1234"  # nothing to go on: a uniform draw


def test_places_prefer_their_own_country_and_pseudonyms_are_scored_on_the_same_scale() -> None:
    texts, utilities = SAMPLER.candidates("LOCATION", "Castelfranco Veneto") or ([], [])
    locale_of = {c.text: c.locale for c in SAMPLER.vocabulary("LOCATION")}
    best = max(zip(utilities, texts, strict=True))[1]
    assert locale_of[best] == "it_IT"
    assert SAMPLER.utility("PERSON", "Claire Martin", "Sophie Lefebvre") > SAMPLER.utility(
        "PERSON", "Peter Schmidt", "Sophie Lefebvre"
    )
    candidate = texts[0]
    # a vocabulary member keeps its own features
    assert SAMPLER.utility("LOCATION", candidate, "Castelfranco Veneto") == pytest.approx(utilities[0])
    assert set(locale_of.values()) == set(LOCALES)
