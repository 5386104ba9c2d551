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


def test_headings_and_sentence_openers_are_no_names(runtime: Runtime) -> None:
    """The small Spanish and French models tag capitalised everyday words ("Provincia", "Diagnóstico
    Principal", "Gouvernement") as people or places; a span made only of such words is dropped, a name
    that is also a word ("María García", "Rose") and a known place ("Turquía") are kept."""
    es = (
        "Diagnóstico Principal: neumonía.\nProvincia: Valencia.\nRefieren dolor torácico.\n"
        "La paciente María García fue trasladada a Turquía."
    )
    fr = "Le Gouvernement conteste. Le Tribunal rappelle que Mme Rose Dupuis habite à Lyon."
    # German and Italian go through the English pipeline, which takes their nouns for names
    de_it = "Die Rechnung liegt bei, Zahlung bis Ende März. Il cliente chiede se la consegna arriva."
    found = {text: runtime.engines["general"].detect([text])[0] for text in (es, fr, de_it)}
    values = {text[s.start : s.end] for text, spans in found.items() for s in spans}
    assert {"María García", "Turquía", "Lyon"} <= values and any("Rose Dupuis" in v for v in values)
    assert not values & {"Diagnóstico Principal", "Provincia", "Refieren", "Gouvernement", "Tribunal", "Le Tribunal"}
    assert not values & {"Die Rechnung", "Zahlung", "Il cliente chiede", "La"}


def test_an_organisation_of_rare_words_is_a_person(runtime: Runtime) -> None:
    """en_core_web_sm tags 'Tomomi Nishiyama' as ORG: no word of it is an everyday word, so it is a
    person; 'Clean Power Finance' is made of them and stays a company (not asked for)."""
    text = "Tomomi Nishiyama lives at 86036 Rua do Arenque 1634, Goiânia. She joined Clean Power Finance."
    [spans] = runtime.engines["general"].detect([text])
    found = {text[s.start : s.end]: s.label for s in spans}
    assert found.get("Tomomi Nishiyama") == "PERSON"
    assert not any("Power" in value for value in found)


def test_an_organisation_named_after_people_is_kept() -> None:
    """A firm named after people names them: kept as an organisation though the general policy does not
    ask for organisations; a firm with one name and a common word, or a product, is not."""
    from rewriters.detectors.presidio import _named_after_people

    assert _named_after_people("ORGANIZATION", "Jones, Smith and Davis")
    assert _named_after_people("ORGANIZATION", "Garcia-Roberson")
    assert not _named_after_people("ORGANIZATION", "Szabó & Partners")
    assert not _named_after_people("ORGANIZATION", "Clean Power Finance")
    assert not _named_after_people("ORGANIZATION", "GitHub Actions")
    assert not _named_after_people("PERSON", "Jones, Smith and Davis")


def test_a_product_written_in_camel_case_is_no_place(runtime: Runtime) -> None:
    """en_core_web_sm takes 'PostgreSQL' for a place; a capital inside a word marks a product."""
    text = "We use FastAPI, PostgreSQL and Redis. Our office is in McAllen, Texas."
    [spans] = runtime.engines["general"].detect([text])
    places = {text[s.start : s.end] for s in spans if s.label == "LOCATION"}
    assert "PostgreSQL" not in places and "FastAPI" not in places
    assert "Texas" in places
