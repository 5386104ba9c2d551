"""PRIV-QA: what the question needs is substituted and restored; what it does not is generalised or dropped."""

from __future__ import annotations

import openai

from policies import Policy
from rewriters.privqa import generalize, question_needs
from rewriters.rewrite import Rewriter
from rewriters.spans import Span
from rewriters.surrogates import SurrogateFactory
from tests.servers import FakeLLM

KEY = b"k" * 32


def test_rules_in_several_languages() -> None:
    assert question_needs("When was she born?", "03/04/1975", "DATE_OF_BIRTH")
    assert not question_needs("What treatment do you suggest?", "03/04/1975", "DATE_OF_BIRTH")
    assert question_needs("Où habite-t-elle ?", "Lyon", "LOCATION")
    assert question_needs("Wann ist Herr Weiß geboren?", "Weiß", "PERSON")  # the question names him
    assert not question_needs("¿Qué dosis recomienda?", "Madrid", "LOCATION")
    assert question_needs("他的电话是多少？", "13812345678", "PHONE_NUMBER")
    assert question_needs("anything", "x", "SOME_LABEL_WITHOUT_A_KIND")


def test_dates_generalise_to_month_and_year_in_their_own_form() -> None:
    assert generalize("DATE_OF_BIRTH", "3 mars 1985") == "mars 1985"
    assert generalize("DATE_OF_BIRTH", "1975-03-04") == "1975-03"
    assert generalize("DATE_TIME", "1975年3月4日") == "1975年3月"
    assert generalize("PERSON", "Ann") is None


def test_rewrite_keeps_what_the_question_needs_and_generalises_the_rest() -> None:
    policy = Policy(name="t", version="1", privqa=True, actions={"DATE_OF_BIRTH": "pseudonymize"})
    text = "Marie Curie, born 07/11/1867, lives in Paris. Where does Marie Curie live?"
    spans = [
        Span(0, 11, "PERSON", 0.9, "t"),
        Span(18, 28, "DATE_OF_BIRTH", 0.9, "t"),
        Span(39, 44, "LOCATION", 0.9, "t"),
        Span(57, 68, "PERSON", 0.9, "t"),
    ]
    (out,), session = Rewriter(KEY, SurrogateFactory(KEY)).rewrite([text], [spans], policy, "t", None, text)
    actions = {r.label: r.action.value for r in session.records}
    assert actions == {"PERSON": "pseudonymize", "DATE_OF_BIRTH": "generalize", "LOCATION": "pseudonymize"}
    assert "11/1867" in out and "07/11/1867" not in out and "Paris" not in out and "Marie" not in out
    restored = session.restorer().restore(out)
    assert "Marie Curie" in restored and "Paris" in restored and "11/1867" in restored


def test_privqa_through_the_gateway(oai: openai.OpenAI, records: FakeLLM) -> None:
    prompt = "Patient Jürgen Weiß, born 03/04/1975, lives in Munich. Which city does Jürgen Weiß live in?"
    answer = oai.chat.completions.create(
        model="m", messages=[{"role": "user", "content": prompt}], extra_headers={"X-Privgate-Domain": "qa"}
    )
    sent = records.records[-1]["body"]["messages"][0]["content"]
    assert "Jürgen" not in sent and "Munich" not in sent and "03/04/1975" not in sent and "04/1975" in sent
    assert answer.choices[0].message.content == prompt.replace("03/04/1975", "04/1975")


def test_the_question_is_the_asking_sentence() -> None:
    from rewriters.privqa import question_of

    assert question_of("Patient born 1975. Lives in Lyon. Which dose is safe?") == "Which dose is safe?"
    assert question_of("Summarise the file of Mrs Dubois") == "Summarise the file of Mrs Dubois"
