"""Span-level DP: the sampler follows the exponential mechanism, ε is finite, budgets behave."""

from __future__ import annotations

import math
from collections import Counter

import pytest
from pydantic import ValidationError

from policies import Policy
from rewriters.dp import SENSITIVITY, DpSampler, text_utility
from rewriters.rewrite import PolicyBlocked, Rewriter
from rewriters.spans import Span
from rewriters.surrogates import SurrogateFactory

KEY = b"k" * 32


class FixedSpace(DpSampler):
    """Three candidates with known utilities, to check the sampling law itself."""

    def candidates(self, label: str, value: str) -> tuple[list[str], list[float]] | None:
        return ["close", "middle", "far"], [1.0, 0.5, 0.0]


@pytest.mark.parametrize("epsilon", [0.5, 2.0, 6.0])
def test_frequencies_follow_exp_eps_u_over_2_sensitivity(epsilon: float) -> None:
    sampler, draws = FixedSpace(), 6000
    counts = Counter(sampler.sample("PERSON", "x", epsilon) for _ in range(draws))
    utilities = {"close": 1.0, "middle": 0.5, "far": 0.0}
    weights = {c: math.exp(epsilon * u / (2 * SENSITIVITY)) for c, u in utilities.items()}
    total = sum(weights.values())
    for candidate, weight in weights.items():
        expected = weight / total
        observed = counts[candidate] / draws
        assert abs(observed - expected) < 4 * math.sqrt(expected * (1 - expected) / draws) + 1e-3


def test_infinite_or_zero_epsilon_is_refused() -> None:
    with pytest.raises(ValueError):
        DpSampler().sample("PERSON", "Hans Müller", math.inf)
    with pytest.raises(ValidationError):
        Policy(name="t", version="1", dp={"epsilon": math.inf})
    with pytest.raises(ValidationError):
        Policy(name="t", version="1", dp={"epsilon": 0})


def test_dates_keep_their_format_and_names_come_from_the_public_vocabulary() -> None:
    sampler = DpSampler()
    moved = sampler.sample("DATE_OF_BIRTH", "03/04/1975", 4.0)
    assert moved is not None and len(moved.split("/")) == 3 and len(moved.split("/")[2]) == 4
    spelled = sampler.sample("DATE_OF_BIRTH", "3 mars 1985", 4.0)
    assert spelled is not None and spelled.split()[-1].isdigit()
    names, _ = sampler.candidates("PERSON", "Hans Müller") or ([], [])
    assert sampler.sample("PERSON", "Hans Müller", 1.0) in names
    assert sampler.candidates("IBAN_CODE", "DE89 3704 0044 0532 0130 00") is None
    assert text_utility("Hans Muller", "Hans Müller") > text_utility("Zoe Li", "Hans Müller")


class Ledger:
    def __init__(self, limit: float) -> None:
        self.limit, self.spent = limit, 0.0

    def spend(self, epsilon: float) -> bool:
        if self.spent + epsilon > self.limit:
            return False
        self.spent += epsilon
        return True


def dp_request(policy: Policy, ledger: Ledger) -> tuple[str, list[str]]:
    text = "Hans Müller was born on 03/04/1975."
    spans = [Span(0, 11, "PERSON", 0.9, "t"), Span(24, 34, "DATE_OF_BIRTH", 0.9, "t")]
    (out,), session = Rewriter(KEY, SurrogateFactory(KEY)).rewrite([text], [spans], policy, "t", ledger)
    assert session.restorer().restore(out) == text
    return out, [r.action.value for r in session.records]


def test_budget_is_charged_once_per_request_and_exhaustion_follows_the_policy() -> None:
    masking = Policy(
        name="t",
        version="1",
        default_action="dp_rewrite",
        dp={"epsilon": 1.0, "epsilon_by_label": {"DATE_OF_BIRTH": 2.0}, "budget": 6.0},
    )
    ledger = Ledger(6.0)
    out, actions = dp_request(masking, ledger)
    assert actions == ["dp_rewrite", "dp_rewrite"] and ledger.spent == 3.0
    names, _ = DpSampler().candidates("PERSON", "Hans Müller") or ([], [])
    assert any(out.startswith(name + " was born on ") for name in names)  # a public draw, not the original
    dp_request(masking, ledger)
    out, actions = dp_request(masking, ledger)  # 9 > 6: spent, so masked
    assert actions == ["mask", "mask"] and out == "[PERSON_1] was born on [DATE_OF_BIRTH_1]."
    assert ledger.spent == 6.0
    blocking = masking.model_copy(update={"dp": masking.dp.model_copy(update={"on_exhausted": "block"})})
    with pytest.raises(PolicyBlocked, match="DP budget"):
        dp_request(blocking, ledger)


def test_dates_keep_the_padding_of_the_original() -> None:
    sampler = DpSampler()
    spelled = sampler.sample("DATE_TIME", "November 1, 1990", 8.0) or ""
    assert spelled.split()[1].rstrip(",")[0] != "0" and spelled.endswith(tuple("0123456789"))
    assert "年0" not in (sampler.sample("DATE_TIME", "1975年10月14日", 8.0) or "年0")
    assert (sampler.sample("DATE_TIME", "2000-12-15", 8.0) or "")[5:7].isdigit()  # ISO stays padded
