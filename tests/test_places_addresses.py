"""The structural detectors: postal addresses by their layout, places by public gazetteers, and people
by coordination with a detected person."""

from __future__ import annotations

import pytest

from rewriters.detect import coordinated_names, name_parts, propagate_values
from rewriters.detectors.addresses import AddressDetector
from rewriters.detectors.names import NameDetector
from rewriters.detectors.places import PlaceDetector
from rewriters.spans import Span
from tests.test_general_patterns import NEGATIVES

ADDRESSES = [
    # a block of lines: street, unit, place without evidence of its own, state, country and postcode
    (
        "The address of Persint is 6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677",
        "6750 Koskikatu 25 Apt. 864\nArtilleros\n, CO\n Uruguay 64677",
    ),
    ("Philippe Guernon\n\n0104 Hafnarstraeti 5\n Suite 179\n Akureyri\n Iceland 80296", None),
    ("0138 Brisas 6802\n Suite 084\n María Albina\n Uruguay 77212", None),
    ("971 Kesk 53\n Suite 343\n Pärnu\n Estonia", None),
    # military and PO-box forms start at the unit
    ("PSC 3294, Box 9168\nAPO AA 61487", None),
    ("Unit 4719 Box 7394\nDPO AP 70942", None),
    # one line, comma-separated, in several countries' layouts
    ("Tomomi Nishiyama lives at 86036 Rua do Arenque 1634, Goiânia", "86036 Rua do Arenque 1634, Goiânia"),
    ("She lives at 86036 Rua do Arenque 1634, Goiânia. She works", "86036 Rua do Arenque 1634, Goiânia"),
    ("I live at 123 Main Street, Springfield, IL 62704 with my wife.", "123 Main Street, Springfield, IL 62704"),
    ("Kontor: Magrethevej 298, 4000 Roskilde", "Magrethevej 298, 4000 Roskilde"),
    ("Please send it to Harjukuja 54", "Harjukuja 54"),
    ("Envoyez-le au 8 rue des Lilas, 69003 Lyon.", "8 rue des Lilas, 69003 Lyon"),
    ("Dirección: Calle de Alcalá 45, 28014 Madrid", "Calle de Alcalá 45, 28014 Madrid"),
    ("Lieferadresse: Lindenstraße 12, 10969 Berlin", "Lindenstraße 12, 10969 Berlin"),
    ("Spedire a Via Roma 15, 20121 Milano", "Via Roma 15, 20121 Milano"),
    ("Ship to 18 McPherson Road Suite 019 today", "18 McPherson Road Suite 019"),
    ("I live at 12 Elm Street Apt 4 in Boston", "12 Elm Street Apt 4"),
    ("Leave it at the door of Apt. 022, thanks", "Apt. 022"),
    ("i live at 12 rue des lilas, 69003 Lyon", "12 rue des lilas, 69003 Lyon"),
    ("Andrew had given Andrew his address: 5366 Pivovarská 276", "5366 Pivovarská 276"),
    ("Daniela lives at 92597 Jahu 80, near the lake", "92597 Jahu 80"),
    # the town that ends the line after a typed street, even when no gazetteer knows it
    ("Cendrillon Coudert lives at 333 Golfskálinn 78, Borgarnes", "333 Golfskálinn 78, Borgarnes"),
    ("Send it to 12 Main Street\nThanks", "12 Main Street"),
    ("The bus drops you off at 13813 3784 Archwood Avenue", "13813 3784 Archwood Avenue"),
    ("name: hyuuma t. maida\naddress: unit 4526 box 0671\ndpo ap 40902", "unit 4526 box 0671\ndpo ap 40902"),
    (
        "> Hafþór Smárason\n> 4923 Parmova 109\n> Suite 380\n> Maribor\n> Slovenia 82709",
        "4923 Parmova 109\n> Suite 380\n> Maribor\n> Slovenia 82709",
    ),
    (
        "0138 Brisas 6802\n Apt. 461\n Soto del Barco\n\n Spain 61709",
        "0138 Brisas 6802\n Apt. 461\n Soto del Barco\n\n Spain 61709",
    ),
]

NOT_ADDRESSES = [
    "We have 3 Docker Containers, USA region is next.",
    "Windows 10, Germany edition",
    "I waited 5 minutes down the road",
    "Chapter 3\nSection 4",
    "Ticket 4521 Status, Open",
    "see page 12 Figure 3, Table 2",
    "Order 1234 Shipped\nTracking 55555",
    "I have 2 Dogs, Berlin is far",
    "took 3 Advil, Paris felt better",
    "In 2019 Hans Müller moved to Berlin",
    "Am Platz 3 stand ein Baum.",
    "Il corso di Python 3 inizia domani",
    # a street type out of its place makes no street
    "I have 5 Park tickets",
    "use a 3 Way Handshake here",
    "we need 2 Green Lights",
    "the test suite 3 times; Unit 4 tests; Box 2 of 5",
    "we walked 3 miles down the road, then 2 via points and 4 route changes",
    "Our office lives at 3 Docker Hosts now; address: 2 Servers",
    "RUN groupadd --system --gid 10001 privgate \\\n && useradd --uid 10001 privgate",
    "navigate 3 pages, aggregate 5 rows, the brigade 12 and arcade 4",
]


@pytest.fixture(scope="module")
def addresses() -> AddressDetector:
    return AddressDetector(0.75)


@pytest.fixture(scope="module")
def places() -> PlaceDetector:
    return PlaceDetector(0.6)


def found(detector: AddressDetector | PlaceDetector | NameDetector, text: str) -> list[str]:
    return [text[s.start : s.end] for s in detector.detect([text])[0]]


@pytest.mark.parametrize(("text", "expected"), ADDRESSES, ids=[a[0][:40] for a in ADDRESSES])
def test_address_is_found_whole(addresses: AddressDetector, text: str, expected: str | None) -> None:
    assert found(addresses, text) == [expected if expected is not None else text.split("\n\n")[-1]]


@pytest.mark.parametrize("text", NOT_ADDRESSES + NEGATIVES)
def test_no_address_in_ordinary_text(addresses: AddressDetector, text: str) -> None:
    assert found(addresses, text) == []


def test_addresses_are_labelled_and_scored(addresses: AddressDetector) -> None:
    (span,) = addresses.detect(["Spedire a Via Roma 15, 20121 Milano"])[0]
    assert (span.label, span.score, span.detector) == ("STREET_ADDRESS", 0.75, "addresses")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("serving Southern Tunisia", ["Tunisia"]),
        ("Akureyri\n Iceland 80296", ["Akureyri", "Iceland"]),
        ("SEINÄJOKI, Finland", ["SEINÄJOKI", "Finland"]),
        ("Ich ziehe von Frankfurt am Main nach Rio de Janeiro", ["Frankfurt am Main", "Rio de Janeiro"]),
        # country names in the languages we serve
        ("Er lebt in Deutschland, elle vit en Allemagne, vive en Alemania.", ["Deutschland", "Allemagne", "Alemania"]),
        ("Trasferito in Germania dalla Svizzera", ["Germania", "Svizzera"]),
        ("Born in Aalborg, raised in Goiânia", ["Aalborg", "Goiânia"]),
        # a name no gazetteer holds, where the sentence says it is a place
        ("He grew up in SUND and flew to Reguengos de Monsaraz on Tuesday", ["SUND", "Reguengos de Monsaraz"]),
        ("I'm Naomi, originally from ΕΓΚΩΜΗ; j'habite à Plouharnel", ["ΕΓΚΩΜΗ", "Plouharnel"]),
        # a country typed in lower case after a preposition of place
        ("i'm originally from switzerland, we moved to united kingdom", ["switzerland", "united kingdom"]),
        ("vivo en españa; ich ziehe nach deutschland", ["españa", "deutschland"]),
    ],
)
def test_places_are_found(places: PlaceDetector, text: str, expected: list[str]) -> None:
    assert found(places, text) == expected


@pytest.mark.parametrize(
    "text",
    [
        # cities that are everyday words or given names need context, which the NER model has
        "Nice work on the Reading list, and the Mobile app can Split the Bath.",
        "Florence will review it.",
        # codes and tech words are not places, nor are function words some town is also called
        "ERROR INFO WARN DEBUG GET POST VAT The In On At",
        "pip install Django Flask Celery; kubectl apply -f Helm",
        "email info@aalborg.dk or see /srv/Aalborg/data",
        "a chad of paper, in the morning, from china import wall",
        # after a place cue, an everyday word, a given name or a possessive is no place
        "I'm in Love, we are based in Excel, I'm in Sarah's team and i'm in Marketing; Tom lives in Rose",
    ],
)
def test_no_place_without_evidence(places: PlaceDetector, text: str) -> None:
    assert found(places, text) == []


def test_places_are_never_found_in_the_pattern_negatives(places: PlaceDetector) -> None:
    flagged = {t: found(places, t) for t in NEGATIVES}
    # the one negative that names a real city: a place, rightly (the negatives are for patterns)
    assert {t: v for t, v in flagged.items() if v} == {"She was born in 1985 and moved to Paris in 2010.": ["Paris"]}


def test_names_take_middle_initials_and_skip_function_words() -> None:
    names = NameDetector(0.6)
    assert found(names, "Contact Ella H. Snider or Sari J. Paavolainen today") == [
        "Ella H. Snider",
        "Sari J. Paavolainen",
    ]
    # German capitalises nouns; "Sie" is a given name somewhere, but a pronoun here
    assert found(names, "Geben Sie Ihr Passwort ein.") == []


def test_a_list_holding_a_person_is_a_list_of_people() -> None:
    text = "Our 3 founders: Eklund, Michael and Hodge. Meet Paris, Anna and Berlin."
    at = text.index
    person = Span(at("Michael"), at("Michael") + 7, "PERSON", 0.85, "presidio")
    anna = Span(at("Anna"), at("Anna") + 4, "PERSON", 0.85, "presidio")
    paris = Span(at("Paris"), at("Paris") + 5, "LOCATION", 0.85, "presidio")
    found = coordinated_names(text, [person, anna, paris])
    added = {text[s.start : s.end]: s for s in found if s.detector == "coordination"}
    assert set(added) == {"Eklund", "Hodge"}  # a list with a place in it is no list of people
    assert all(s.label == "PERSON" and s.score == 0.85 for s in added.values())
    assert coordinated_names(text, [paris]) == [paris]
    # an acronym after a name is no list item: "Harriet Okonkwo, MRN 4471-2290"
    record = "Patient Harriet Okonkwo, MRN 4471-2290, was admitted."
    harriet = Span(8, 23, "PERSON", 0.85, "presidio")
    assert coordinated_names(record, [harriet]) == [harriet]


def test_a_detected_persons_name_parts_are_found_alone_in_every_slot() -> None:
    texts = ["Valida spent a year as the assistant to Valida M. Ibragimov.", "Ibragimov's reply", "key young ideas"]
    full = texts[0].index("Valida M.")
    spans = [[Span(full, full + len("Valida M. Ibragimov"), "PERSON", 0.8, "presidio")], [], []]
    found = propagate_values(texts, spans)
    assert [[t[s.start : s.end] for s in f] for t, f in zip(texts, found, strict=True)] == [
        ["Valida", "Valida M. Ibragimov"],
        ["Ibragimov"],
        [],
    ]
    # initials, acronyms, frequent English words and places are no parts; a lower-case name gives lower-case ones
    assert name_parts("Brad L Key") == [] and name_parts("Kathrine Filemonsen DDS") == ["Kathrine", "Filemonsen"]
    assert name_parts("olga krylova") == ["olga", "krylova"] and name_parts("Zoe Young") == ["Zoe"]
    assert name_parts("Valida") == [] and name_parts("Classifier Intended Audience") == []
    assert name_parts("Mike McKerns\nMaintainer") == ["McKerns"]  # "mike" is a frequent English word
