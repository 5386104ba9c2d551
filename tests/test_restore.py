"""The restorer: exact in JSON, stream-safe for any split, and holding back as little as possible."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from rewriters.restore import Restorer

MAPPING = {
    "Laura Becker": "Hans Müller",
    "Laura": "Hans",
    "[PERSON_1]": 'Zoë "Z" O\'Neil',
    "555-0199": "555-0134",
}
ANSWER = "Dear Laura Becker, Laura asked [PERSON_1] to call 555-0199. Lauraine stays, Laura."


def restored_in_pieces(restorer: Restorer, text: str, cuts: list[int], *, json_string: bool = False) -> str:
    stream = restorer.stream(json_string=json_string)
    bounds = [0, *sorted(set(cuts)), len(text)]
    return "".join(stream.feed(text[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)) + stream.flush()


def test_restore_whole_text() -> None:
    assert Restorer(MAPPING).restore(ANSWER) == (
        'Dear Hans Müller, Hans asked Zoë "Z" O\'Neil to call 555-0134. Lauraine stays, Hans.'
    )


@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=12))
def test_stream_equals_whole_for_any_split(cuts: list[int]) -> None:
    restorer = Restorer(MAPPING)
    assert restored_in_pieces(restorer, ANSWER, cuts) == restorer.restore(ANSWER)


def test_stream_one_character_at_a_time() -> None:
    restorer = Restorer(MAPPING)
    assert restored_in_pieces(restorer, ANSWER, list(range(len(ANSWER)))) == restorer.restore(ANSWER)


def test_holds_back_only_a_possible_surrogate_prefix() -> None:
    stream = Restorer(MAPPING).stream()
    assert stream.feed("Hello Lau") == "Hello "  # "Lau" could become "Laura"
    assert stream.feed("rx and 555") == "Laurx and "  # it did not; "555" still could
    assert stream.feed("-0198 ok") == "555-0198 ok"
    assert stream.flush() == ""


def test_json_string_mode_escapes_originals() -> None:
    arguments = json.dumps({"who": "[PERSON_1]", "note": "Laura Becker"})
    restorer = Restorer(MAPPING)
    whole = restorer.restore(arguments, json_string=True)
    assert json.loads(whole) == {"who": 'Zoë "Z" O\'Neil', "note": "Hans Müller"}
    assert restored_in_pieces(restorer, arguments, [3, 10, 11, 12, 30], json_string=True) == whole


def test_empty_restorer_is_identity() -> None:
    restorer = Restorer({})
    assert not restorer
    assert restored_in_pieces(restorer, ANSWER, [5, 9]) == ANSWER


def test_chinese_surrogates_restore_inside_unspaced_text() -> None:
    restorer = Restorer({"宋龙": "张伟", "Laura": "Hans"})
    answer = "患者宋龙，男。Lauraine and Laura."
    assert restorer.restore(answer) == "患者张伟，男。Lauraine and Hans."
    assert restored_in_pieces(restorer, answer, list(range(len(answer)))) == restorer.restore(answer)


def test_partial_and_shouted_mentions_of_a_name_come_back() -> None:
    from policies import Policy
    from rewriters.rewrite import Rewriter
    from rewriters.spans import Span
    from rewriters.surrogates import SurrogateFactory

    key = b"k" * 32
    text = "Write to Svetlana Fontaine."
    (out,), session = Rewriter(key, SurrogateFactory(key)).rewrite(
        [text], [[Span(9, 26, "PERSON", 0.9, "t")]], Policy(name="t", version="1"), "t"
    )
    first, last = out.removeprefix("Write to ").removesuffix(".").split()
    answer = f"Dear Ms. {last}, {first} asked: is {last.upper()}'s file ready? {last}'s answer follows."
    restorer = session.restorer()
    assert restorer.restore(answer) == (
        "Dear Ms. Fontaine, Svetlana asked: is FONTAINE's file ready? Fontaine's answer follows."
    )
    assert restored_in_pieces(restorer, answer, list(range(0, len(answer), 2))) == restorer.restore(answer)


class Shout:
    """An answer filter that upper-cases whole sentences: the stream holds text back to a sentence end."""

    def apply(self, text: str) -> str:
        return text.upper()

    def stream(self) -> Shout.Stream:
        return Shout.Stream()

    class Stream:
        def __init__(self) -> None:
            self.held = ""

        def feed(self, fragment: str) -> str:
            self.held += fragment
            cut = self.held.rfind(". ") + 2 if ". " in self.held else 0
            out, self.held = self.held[:cut], self.held[cut:]
            return out.upper()

        def flush(self) -> str:
            out, self.held = self.held, ""
            return out.upper()


@given(st.lists(st.integers(min_value=0, max_value=len(ANSWER)), max_size=12))
def test_an_answer_filter_sees_restored_text_whole_or_streamed(cuts: list[int]) -> None:
    filtered = Restorer(MAPPING).with_filter(Shout())
    expected = Restorer(MAPPING).restore(ANSWER).upper()
    assert filtered.restore(ANSWER) == expected
    assert restored_in_pieces(filtered, ANSWER, cuts) == expected
    assert filtered.restore('{"a": "Laura"}', json_string=True) == '{"a": "Hans"}'  # JSON text is not prose
    nothing_to_restore = Restorer({}).with_filter(Shout())
    assert nothing_to_restore and restored_in_pieces(nothing_to_restore, "ab. cd", cuts[:1]) == "AB. CD"
