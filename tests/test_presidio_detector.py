"""The general policy's Presidio detector on what its small spaCy models get wrong."""

from __future__ import annotations

from gateway.runtime import Runtime


def test_a_name_the_small_english_model_calls_an_organisation_is_a_person(runtime: Runtime) -> None:
    """en_core_web_sm tags 'Miklós Hajdu' as ORG; led by a given name it is a PERSON, while products and
    companies stay out (the general policy does not ask for ORGANIZATION)."""
    text = "Maybe it's under Miklós Hajdu. We deploy on GitHub Actions and Microsoft Azure."
    [spans] = runtime.engines["general"].detect([text])
    assert [(s.label, text[s.start : s.end]) for s in spans] == [("PERSON", "Miklós Hajdu")]


def test_ner_spans_do_not_carry_trailing_whitespace(runtime: Runtime) -> None:
    text = "Billing address: Sophie Lang\n    3482 Via Franscini 71"
    [spans] = runtime.engines["general"].detect([text])
    person = [text[s.start : s.end] for s in spans if s.label == "PERSON"]
    assert person == ["Sophie Lang"]
