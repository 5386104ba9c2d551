"""PRIV-QA: what the question needs is substituted and restored; what it does not is generalised or dropped."""

from __future__ import annotations

import openai
import pytest

from policies import Policy
from rewriters.embedding import load_embedder
from rewriters.privqa import Relevance, calibrate, generalize, question_needs, question_of
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
    assert question_of("Patient born 1975. Lives in Lyon. Which dose is safe?") == "Which dose is safe?"
    assert question_of("Summarise the file of Mrs Dubois") == "Summarise the file of Mrs Dubois"


def test_calibrate_picks_the_most_accurate_margin() -> None:
    margins = [0.05, 0.02, -0.01, -0.03, 0.01]
    by_rules = [False, False, False, False, True]
    needed = [True, True, False, False, True]
    assert calibrate(margins, by_rules, needed) == 0.02  # keeps both paraphrases, drops the rest
    assert calibrate([0.1], [True], [True]) == float("inf")  # the rules are already right: the margin adds nothing


@pytest.fixture(scope="module")
def relevance() -> Relevance:
    return Relevance(load_embedder("multilingual-e5-small"))


def test_embedding_relevance_keeps_paraphrased_asks_in_six_languages(relevance: Relevance) -> None:
    assert not question_needs("Which town should the parcel be shipped to?", "Lyon", "LOCATION")
    assert question_needs("Which town should the parcel be shipped to?", "Lyon", "LOCATION", relevance=relevance)
    assert not question_needs("Which town should the parcel be shipped to?", "3 mars 1985", "DATE_OF_BIRTH",
                              relevance=relevance)  # fmt: skip
    assert question_needs("Ist der Patient schon volljährig?", "15.03.1960", "DATE_OF_BIRTH", relevance=relevance)
    assert not question_needs("Welche Dosis Ibuprofen ist sicher?", "Köln", "LOCATION", relevance=relevance)


def test_embedding_relevance_beats_rules_alone_on_held_out_questions(relevance: Relevance) -> None:
    from bench.privacy_utility import RELEVANCE_QUESTIONS, relevance_set

    rows = relevance_set()  # calibrate on half the questions of each language, test on the other half
    langs = list(RELEVANCE_QUESTIONS)
    part = [(r["qi"] + langs.index(r["lang"])) % 2 == 0 for r in rows]
    questions = [question_of(r["turn"]) for r in rows]
    rules = [question_needs(q, r["value"], r["label"]) for q, r in zip(questions, rows, strict=True)]
    unique = sorted(set(questions))
    by_question = dict(zip(unique, relevance.margins_of(unique), strict=True))
    kind = {"PERSON": "person", "DATE_OF_BIRTH": "time", "LOCATION": "place"}
    margins = [by_question[q][kind[r["label"]]] for q, r in zip(questions, rows, strict=True)]
    needed = [r["needed"] for r in rows]
    pick = [i for i, p in enumerate(part) if p]
    threshold = calibrate([margins[i] for i in pick], [rules[i] for i in pick], [needed[i] for i in pick])
    held = [i for i, p in enumerate(part) if not p]
    alone = sum(rules[i] == needed[i] for i in held) / len(held)
    both = sum((rules[i] or margins[i] >= threshold) == needed[i] for i in held) / len(held)
    assert both >= alone + 0.02
