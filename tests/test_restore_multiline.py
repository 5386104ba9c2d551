"""Line-broken surrogates: an address the answer spreads over two lines still comes back, whole,
streamed at any split, and in JSON text; text that only looks like it is left alone."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rewriters.restore import Restorer
from tests.test_restore import restored_in_pieces

MAPPING = {
    "4821 Maple Ave, Springfield": "12 Rue de Rivoli, Paris",
    "4821 MAPLE AVE, SPRINGFIELD": "12 RUE DE RIVOLI, PARIS",
    "Maria Lopez": "Svetlana Fontaine",
    "Lopez": "Fontaine",
    "Springfield": "Paris",
}


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("Send it to 4821 Maple Ave\nSpringfield.", "Send it to 12 Rue de Rivoli\nParis."),
        ("Send it to 4821 Maple Ave,\nSpringfield.", "Send it to 12 Rue de Rivoli,\nParis."),
        ("Maria Lopez\n4821 Maple Ave,  \n   Springfield", "Svetlana Fontaine\n12 Rue de Rivoli,  \n   Paris"),
        ("4821 Maple Ave\r\nSpringfield", "12 Rue de Rivoli\r\nParis"),
        ("4821 MAPLE AVE\nSPRINGFIELD", "12 RUE DE RIVOLI\nPARIS"),
        ("4821 Maple\nAve, Springfield", "12 Rue de Rivoli, Paris"),  # a break the original has no place for
        ("Dear Maria\nLopez,", "Dear Svetlana Fontaine,"),
    ],
)
def test_line_broken_surrogates_come_back(answer: str, expected: str) -> None:
    restorer = Restorer(MAPPING)
    assert restorer.restore(answer) == expected
    assert restored_in_pieces(restorer, answer, list(range(len(answer)))) == expected


@pytest.mark.parametrize(
    "lookalike",
    [
        "4821 Maple Ave\n\nSpringfield",  # a paragraph break: two separate things
        "4821 Maple Avenue\nSpringfield",
        "4821 Maple Ave.\nSpringfield",
        "4821 Maple Ave;\nSpringfield",
        "14821 Maple Ave\nSprings",
        "4821 Maple Ave , Springfield",
        "Maria\n\nLopezi",
    ],
)
def test_text_that_only_looks_similar_is_untouched(lookalike: str) -> None:
    restorer = Restorer({k: v for k, v in MAPPING.items() if k not in ("Lopez", "Springfield")})
    assert restorer.restore(lookalike) == lookalike
    assert restored_in_pieces(restorer, lookalike, list(range(len(lookalike)))) == lookalike


def test_an_original_without_the_commas_comes_back_on_one_line() -> None:
    restorer = Restorer({"4821 Maple Ave, Springfield": "Hauptstraße 5 10115 Berlin"})
    assert restorer.restore("4821 Maple Ave,\nSpringfield") == "Hauptstraße 5 10115 Berlin"


def test_surrogates_whose_words_agree_are_not_guessed_between() -> None:
    restorer = Restorer({"1 Elm St, Dover": "A", "1 Elm St Dover": "B"})
    assert restorer.restore("1 Elm St, Dover / 1 Elm St Dover") == "A / B"
    assert restorer.restore("1 Elm St\nDover") == "1 Elm St\nDover"


ANSWER = "Maria Lopez lives at 4821 Maple Ave,\nSpringfield; write to\n4821 Maple Ave\nSpringfield or LOPEZ."


@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=12))
def test_stream_equals_whole_for_any_split(cuts: list[int]) -> None:
    restorer = Restorer(MAPPING)
    whole = restorer.restore(ANSWER)
    assert "4821" not in whole and "Springfield" not in whole
    assert restored_in_pieces(restorer, ANSWER, cuts) == whole


def test_stream_holds_back_a_surrogate_until_its_line_break_is_resolved() -> None:
    stream = Restorer(MAPPING).stream()
    assert stream.feed("Write to 4821 Maple Ave,") == "Write to "
    assert stream.feed("\n") == ""
    assert stream.feed("Springfield today") == "12 Rue de Rivoli,\nParis today"
    assert stream.feed(" at 4821 Maple Ave\n\n") == " at 4821 Maple Ave\n\n"  # a paragraph: no address
    assert stream.flush() == ""


def test_json_text_with_escaped_line_breaks() -> None:
    arguments = json.dumps({"to": "Maria Lopez\n4821 Maple Ave\nSpringfield", "city": "Springfield", "raw": "a\\nb"})
    restorer = Restorer(MAPPING)
    whole = restorer.restore(arguments, json_string=True)
    assert json.loads(whole) == {"to": "Svetlana Fontaine\n12 Rue de Rivoli\nParis", "city": "Paris", "raw": "a\\nb"}
    assert restored_in_pieces(restorer, arguments, list(range(len(arguments))), json_string=True) == whole
    kept = json.dumps({"to": "4821 Maple Ave,\nSpringfield"})
    assert json.loads(restorer.restore(kept, json_string=True)) == {"to": "12 Rue de Rivoli,\nParis"}


@pytest.mark.parametrize(
    "lookalike",
    [
        {"path": "4821 Maple Ave\\nSpringfield"},  # a backslash and an n, not a line break
        {"to": "4821 Maple Ave\n\nSpringfield"},
        {"name": "Maria\\Lopez"},
    ],
)
def test_json_lookalikes_are_untouched(lookalike: dict[str, str]) -> None:
    restorer = Restorer({"4821 Maple Ave, Springfield": "12 Rue de Rivoli, Paris", "Maria Lopez": "Svetlana"})
    text = json.dumps(lookalike)
    assert restorer.restore(text, json_string=True) == text
    assert restored_in_pieces(restorer, text, list(range(len(text))), json_string=True) == text


def test_json_surrogate_right_after_an_escaped_line_break() -> None:
    text = json.dumps({"note": "Address:\nSpringfield\tLopez"})
    assert json.loads(Restorer(MAPPING).restore(text, json_string=True)) == {"note": "Address:\nParis\tFontaine"}


WORDS = ["4821", "Maple", "Ave", "Springfield", "Maria", "Lopez", "MAPLE", "x"]
PIECES = [*WORDS, " ", ", ", "\n", ",\n", "  \n ", "\n\n", ","]


@given(st.lists(st.sampled_from(PIECES), max_size=24), st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_any_mix_of_words_and_breaks_streams_like_whole(pieces: list[str], cuts: list[int]) -> None:
    restorer = Restorer(MAPPING)
    text = "".join(pieces)
    cuts = [c for c in cuts if c <= len(text)]
    assert restored_in_pieces(restorer, text, cuts) == restorer.restore(text)
    escaped = json.dumps(text)
    assert restored_in_pieces(restorer, escaped, cuts, json_string=True) == restorer.restore(escaped, json_string=True)
    assert json.loads(restorer.restore(escaped, json_string=True)) == restorer.restore(text)
