"""Surrogates: realistic, deterministic per tenant, collision-free; masks; blocks; merge rule."""

from __future__ import annotations

import pytest
from faker.providers.person.en_US import Provider as USNames

from policies import Policy
from rewriters.names import gender_of
from rewriters.rewrite import PolicyBlocked, Rewriter
from rewriters.spans import Span, merge_spans
from rewriters.surrogates import SurrogateFactory

KEY = b"k" * 32
POLICY = Policy(name="t", version="1")


def rewriter() -> Rewriter:
    return Rewriter(KEY, SurrogateFactory(KEY))


def spans_of(text: str, *values: tuple[str, str]) -> list[Span]:
    return [Span(text.index(v), text.index(v) + len(v), label, 0.9, "test") for v, label in values]


def test_pseudonyms_are_deterministic_per_tenant_and_restorable() -> None:
    text = "Hans Müller paid with 4111 1111 1111 1111 on 03/04/1975."
    found = spans_of(
        text, ("Hans Müller", "PERSON"), ("4111 1111 1111 1111", "CREDIT_CARD"), ("03/04/1975", "DATE_TIME")
    )
    (first,), session = rewriter().rewrite([text], [found], POLICY, "tenant-a")
    (again,), _ = rewriter().rewrite([text], [found], POLICY, "tenant-a")
    (other,), _ = rewriter().rewrite([text], [found], POLICY, "tenant-b")
    assert first == again and first != other
    assert "Hans" not in first and "4111" not in first and "1975" not in first
    assert session.restorer().restore(first) == text
    card = next(s for s, o in session.surrogates.items() if o == "4111 1111 1111 1111")
    digits = [int(c) for c in card if c.isdigit()]
    checksum = sum(digits[-1::-2]) + sum(sum(divmod(2 * d, 10)) for d in digits[-2::-2])
    assert len(card) == 19 and checksum % 10 == 0  # same shape, valid Luhn: realistic


def test_name_parts_restore_and_same_value_same_surrogate() -> None:
    texts = ["Hans Müller called.", "Tell Hans Müller hello."]
    found = [spans_of(t, ("Hans Müller", "PERSON")) for t in texts]
    out, session = rewriter().rewrite(texts, found, POLICY, "t")
    surrogate = out[0].removesuffix(" called.")
    assert out[1] == f"Tell {surrogate} hello."
    last = surrogate.split()[-1]
    assert session.restorer().restore(f"Dear Mr. {last}, {surrogate}.") == "Dear Mr. Müller, Hans Müller."


def test_collisions_inside_a_request_are_resolved() -> None:
    factory = SurrogateFactory(KEY)
    taken = factory.make("t", "PERSON", "Ann Lee")
    text = f"Ann Lee met {taken}."  # the first surrogate is already in the prompt: it must not be used
    found = spans_of(text, ("Ann Lee", "PERSON"))
    (out,), session = Rewriter(KEY, factory).rewrite([text], [found], POLICY, "t")
    assert not out.startswith(taken)
    assert session.restorer().restore(out) == text


def test_mask_and_block_and_allow() -> None:
    policy = Policy(name="t", version="1", default_action="mask", actions={"DATE_TIME": "allow", "US_SSN": "block"})
    text = "Ann and Bob on Monday"
    found = spans_of(text, ("Ann", "PERSON"), ("Bob", "PERSON"), ("Monday", "DATE_TIME"))
    (out,), session = rewriter().rewrite([text], [found], policy, "t")
    assert out == "[PERSON_1] and [PERSON_2] on Monday"
    assert [r.action.value for r in session.records] == ["mask", "mask", "allow"]
    ssn = "SSN 536-22-1234"
    with pytest.raises(PolicyBlocked):
        rewriter().rewrite([ssn], [spans_of(ssn, ("536-22-1234", "US_SSN"))], policy, "t")


def test_merge_prefers_longest_then_score() -> None:
    spans = [
        Span(0, 5, "A", 0.9, "x"),
        Span(0, 10, "B", 0.5, "y"),
        Span(12, 15, "C", 0.4, "x"),
        Span(12, 15, "D", 0.8, "y"),
    ]
    assert [s.label for s in merge_spans(spans)] == ["B", "D"]


def test_span_inside_a_word_widens_to_the_word() -> None:
    from rewriters.detect import DetectionEngine

    class Partial:
        name = "partial"

        def detect(self, texts: list[str]) -> list[list[Span]]:
            return [[Span(t.index("RX66"), t.index("RX66") + 9, "MEDICAL_LICENSE", 0.6, "partial")] for t in texts]

    text = "account LXRX66874160928456 closed"
    (span,) = DetectionEngine([Partial()]).detect([text])[0]
    assert text[span.start : span.end] == "LXRX66874160928456"


def test_a_detector_that_releases_the_gil_runs_beside_the_others() -> None:
    """A transformer-backed detector runs in its own thread while the rest run in the caller's: the
    request waits for the slower part only. Results merge in policy order; a failure still refuses."""
    import threading

    from rewriters.detect import DetectionEngine
    from rewriters.detectors.base import DetectorError

    both_running = threading.Barrier(2, timeout=10)  # broken unless the two detectors run at once
    threads: dict[str, str] = {}

    class Slow:
        name = "slow"
        releases_gil = True

        def detect(self, texts: list[str]) -> list[list[Span]]:
            threads[self.name] = threading.current_thread().name
            both_running.wait()
            return [[Span(0, 5, "CONDITION", 0.7, self.name)] for _ in texts]

    class Quick:
        name = "quick"

        def detect(self, texts: list[str]) -> list[list[Span]]:
            threads[self.name] = threading.current_thread().name
            both_running.wait()
            return [[Span(6, 11, "PERSON", 0.9, self.name)] for _ in texts]

    (spans,) = DetectionEngine([Slow(), Quick()]).detect(["fever Alice"])
    assert [(s.detector, s.label) for s in spans] == [("slow", "CONDITION"), ("quick", "PERSON")]
    assert threads["quick"] == threading.current_thread().name != threads["slow"]

    class Broken(Slow):
        def detect(self, texts: list[str]) -> list[list[Span]]:
            raise ValueError("boom")

    class Alone(Quick):
        def detect(self, texts: list[str]) -> list[list[Span]]:
            return [[] for _ in texts]

    with pytest.raises(DetectorError, match="slow"):
        DetectionEngine([Broken(), Alone()]).detect(["fever Alice"])


def test_a_text_seen_before_is_not_detected_again() -> None:
    """Each chat turn re-sends the conversation: the engine keeps what it found per text (by keyed hash),
    so earlier turns cost nothing; a bounded LRU, and a failure is never remembered."""
    from rewriters.detect import DetectionEngine
    from rewriters.detectors.base import DetectorError

    seen: list[str] = []

    class Counting:
        name = "counting"

        def detect(self, texts: list[str]) -> list[list[Span]]:
            seen.extend(texts)
            return [[Span(0, 5, "PERSON", 0.9, self.name)] for _ in texts]

    engine = DetectionEngine([Counting()], cache_size=2)
    first = engine.detect(["Alice hi", "Bobby yo"])
    again = engine.detect(["Bobby yo", "Alice hi", "Carol ok", "Alice hi"])
    assert seen == ["Alice hi", "Bobby yo", "Carol ok"]  # each text read once, repeats within a call too
    assert again[1] == again[3] == first[0] and again[0] == first[1]
    engine.detect(["Bobby yo"])  # Carol and Alice were the two most recent: Bobby was dropped
    assert seen[-1] == "Bobby yo"

    calls = 0

    class FailingOnce:
        name = "failing"

        def detect(self, texts: list[str]) -> list[list[Span]]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ValueError("boom")
            return [[] for _ in texts]

    engine = DetectionEngine([FailingOnce()])
    with pytest.raises(DetectorError):
        engine.detect(["Alice hi"])
    assert engine.detect(["Alice hi"]) == [[]] and calls == 2


def test_surrogate_sharing_a_word_with_the_prompt_is_not_used() -> None:
    factory = SurrogateFactory(KEY)
    first = factory.make("t", "PERSON", "Jeffrey Smith")
    word = first.split()[0]
    text = f"Jeffrey Smith flew to {word}."  # the surrogate's first name is a word of the prompt
    (out,), session = Rewriter(KEY, factory).rewrite([text], [spans_of(text, ("Jeffrey Smith", "PERSON"))], POLICY, "t")
    assert not out.startswith(word)
    assert session.restorer().restore(out) == text


def test_a_name_alone_takes_its_part_of_the_full_names_surrogate() -> None:
    """The model should read one person where the prompt has one: "Valida ... Valida M. Ibragimov" becomes
    "Candice ... Candice D. Snow", whichever comes first, and both come back."""
    text = "Valida spent a year as the assistant to Valida Ibragimov. Ibragimov liked it."
    spans = spans_of(text, ("Valida Ibragimov", "PERSON"))
    alone = text.rindex("Ibragimov")
    spans += [Span(0, 6, "PERSON", 0.8, "propagate"), Span(alone, alone + 9, "PERSON", 0.8, "propagate")]
    (out,), session = rewriter().rewrite([text], [spans], POLICY, "t")
    fake = next(f for f, real in session.surrogates.items() if real == "Valida Ibragimov")
    assert out == f"{fake.split()[0]} spent a year as the assistant to {fake}. {fake.split()[-1]} liked it."
    assert session.restorer().restore(out) == text


def test_presidio_reads_the_spaced_part_of_mixed_script_text() -> None:
    from rewriters.text import blank_unspaced

    mixed = "患者张伟，电话13812345678。Contact amelie@exemple.fr"
    blanked = blank_unspaced(mixed)
    assert len(blanked) == len(mixed) and blanked.strip().startswith("13812345678")
    assert blanked[blanked.index("amelie") :] == "amelie@exemple.fr"


@pytest.mark.parametrize(
    ("name", "gender"),
    [("Sophie Lang", "female"), ("Dr. Jane Doe", "female"), ("Marie-Claire Dubois", "female"),
     ("Hans Müller", "male"), ("Pierre-Yves Martin", "male"), ("Giulia Bianchi", "female"),
     ("Jean-Pierre Lefebvre", "male")],  # "Jean" alone is ambiguous; the compound is not
)  # fmt: skip
def test_a_person_surrogate_keeps_the_given_name_gender(name: str, gender: str) -> None:
    """The model writes pronouns for the surrogate; the app reads them next to the original name."""
    given = name.split()[-2].rstrip(".")
    assert (gender_of(given) or gender_of(given.split("-")[0])) == gender
    names = USNames.first_names_female if gender == "female" else USNames.first_names_male
    factory = SurrogateFactory(KEY)
    for tenant in ("a", "b", "c"):
        surrogate = factory.make(tenant, "PERSON", name)
        assert surrogate.split()[0] in names, surrogate


def test_the_lines_above_a_street_address_name_who_is_there() -> None:
    """A signature or letter block: the person's name, a role, their organisation, then a street address.
    The name and organisation are taken, the role (everyday words) is left."""
    from rewriters.detect import addressee_lines

    text = "Thanks!\n> Mijail C Adomo\n> Sales manager\n> Otc Markets\n\n> 228 Ringvej 12\n> 2300 København"
    address = text.index("228")
    spans = [Span(address, len(text), "STREET_ADDRESS", 0.8, "addresses")]
    found = addressee_lines(text, spans)
    assert [(text[s.start : s.end], s.label) for s in found if s.detector == "addressee"] == [
        ("Mijail C Adomo", "PERSON"),
        ("Otc Markets", "ORGANIZATION"),
    ]
    # a line that already holds a span is kept as it is
    held = [Span(text.index("Otc"), text.index("Otc") + 11, "LOCATION", 0.9, "places"), *spans]
    assert [s.label for s in addressee_lines(text, held) if text[s.start : s.end] == "Otc Markets"] == ["LOCATION"]
    # a sentence above the address, or an address inside a sentence: no block
    for prose in ("We moved our office last year.\n228 Ringvej 12", "Please send it to\n228 Ringvej 12",
                  "Otc Markets\nThe office is at 228 Ringvej 12"):
        address = prose.index("228")
        spans = [Span(address, len(prose), "STREET_ADDRESS", 0.8, "addresses")]
        assert addressee_lines(prose, spans) == spans, prose


def test_the_organisation_a_person_is_from() -> None:
    from rewriters.detect import person_affiliations

    text = "Tom I. Holzman from Predilytics met Diana, who is from Lyon, and Anna from Sales."
    spans = [
        Span(0, 14, "PERSON", 0.8, "presidio"),
        Span(text.index("Diana"), text.index("Diana") + 5, "PERSON", 0.8, "presidio"),
        Span(text.index("Anna"), text.index("Anna") + 4, "PERSON", 0.8, "presidio"),
    ]
    found = person_affiliations(text, spans)
    assert [text[s.start : s.end] for s in found if s.label == "ORGANIZATION"] == ["Predilytics"]


def test_a_surrogate_brings_no_quote_the_value_did_not_have() -> None:
    """Inside SQL or a JSON string a fake 'O'Connor' would end the string: such candidates are skipped."""
    from policies import Policy
    from rewriters.rewrite import Rewriter, RewriteSession, _Prompt

    session, prompt = RewriteSession(policy=Policy(name="p", version="1"), tenant="t"), _Prompt("INSERT ...")
    assert not Rewriter._usable("PERSON", "Liam O'Connor", "Imran Chaudhry", session, prompt)
    assert Rewriter._usable("PERSON", "Liam Connor", "Imran Chaudhry", session, prompt)
    assert Rewriter._usable("PERSON", "Siobhán O'Neill", "Niamh O'Brien", session, prompt)
