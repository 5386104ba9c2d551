"""Names no NER model here reads, found by a leading given name (or a leading Vietnamese family name)."""

from __future__ import annotations

from rewriters.detectors.names import NameDetector


def names_in(text: str) -> list[str]:
    return [text[s.start : s.end] for s in NameDetector(0.6).detect([text])[0]]


def test_names_from_other_cultures_in_languages_without_ner() -> None:
    assert names_in("Schreibe an Begoña Etxeberria, E-Mail folgt.") == ["Begoña Etxeberria"]
    assert names_in("Send to Nguyễn Thị Minh Khai and Oluwaseun Adebayo") == ["Nguyễn Thị Minh Khai"]
    assert names_in("cc Søren Kierkegaard-Østergaard please") == ["Søren Kierkegaard-Østergaard"]


def test_capitalised_runs_not_led_by_a_name_are_left_alone() -> None:
    assert names_in("We deploy on GitHub Actions and Microsoft Azure. The Board Meeting is on Monday.") == []
    assert names_in("See Begoña; lower case begoña etxeberria too") == []  # one word, or not capitalised


def test_one_given_name_where_its_place_says_it_is_a_person() -> None:
    # the subject of a verb only people do, even when the name is also an everyday word
    assert names_in("Sofie lives on 69 Av Sidi Lakhdar.\nSandra lives on Hansinegata 120") == ["Sofie", "Sandra"]
    assert names_in("Darren is a very sympathetic person. Begoña wrote back.") == ["Darren", "Begoña"]
    # the person addressed, or a line's speaker, when the name is no everyday word
    assert names_in("Danial, can I please speak to you?") == ["Danial"]
    assert names_in("Halldór: What a wife.\nDestiny: Remember me?") == ["Halldór"]
    # a heading, a config key or a function word is no speaker
    assert names_in("Max: 10 retries\nNote: none\nError: failed\nWill said so.\nPython is from 1991.") == []
