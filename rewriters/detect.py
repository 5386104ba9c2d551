"""Run a policy's detectors over a request's text slots and merge what they find."""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import regex as pyregex

from policies.schema import Policy
from rewriters.detectors.addresses import AddressDetector
from rewriters.detectors.base import Detector, DetectorError
from rewriters.detectors.chinese import ChineseNameDetector
from rewriters.detectors.fields import FieldDetector
from rewriters.detectors.names import NameDetector
from rewriters.detectors.patterns import PatternDetector
from rewriters.detectors.places import PlaceDetector
from rewriters.detectors.presidio import AnalyzerCache, PresidioDetector
from rewriters.gazetteer import is_everyday_word, is_frequent_english_word, lookup
from rewriters.names import can_start_a_name
from rewriters.spans import Span, merge_spans
from rewriters.text import any_of, is_stop_word, is_word_char


def build_detectors(policy: Policy, analyzers: AnalyzerCache) -> list[Detector]:
    config = policy.detectors
    detectors: list[Detector] = []
    if config.presidio.enabled:
        analyzer = analyzers.analyzer(config.presidio.models)
        detectors.append(PresidioDetector(analyzer, config.presidio, analyzers.guesser()))
    if config.chinese.enabled:
        detectors.append(ChineseNameDetector(config.chinese.score))
    if config.names.enabled:
        detectors.append(NameDetector(config.names.score))
    if config.places.enabled:
        detectors.append(PlaceDetector(config.places.score))
    if config.addresses.enabled:
        detectors.append(AddressDetector(config.addresses.score))
    if config.fields.enabled:
        detectors.append(FieldDetector(config.fields.score))
    if config.prototypes is not None and config.prototypes.enabled:
        from rewriters.detectors.prototypes import ByLanguage, PrototypeDetector  # faiss, an embedder: when asked

        english = PrototypeDetector.open(config.prototypes.artifact)
        if config.prototypes.multilingual_artifact is None:
            detectors.append(english)
        else:
            other = PrototypeDetector.open(config.prototypes.multilingual_artifact)
            detectors.append(ByLanguage(english, other, analyzers.guesser()))
    if config.patterns or config.deny_lists:
        detectors.append(PatternDetector(config.patterns, config.deny_lists))
    return detectors


class DetectionEngine:
    """All of one policy's detectors; `detect` is the only entry point the gateway calls."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        protects: Callable[[str], bool] | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.detectors = list(detectors)
        self._protects = protects  # the policy's "is this label rewritten?", for the merge rule
        # A detector that spends its time outside the GIL (a transformer pass) runs in a thread of its
        # own while the others run here: a request waits for the slower part, not for the sum.
        beside = [d for d in self.detectors if getattr(d, "releases_gil", False)]
        self._pool = ThreadPoolExecutor(max_workers=len(beside), thread_name_prefix="detect") if beside else None
        # A chat request carries the whole conversation, so every turn re-sends the earlier ones: what the
        # detectors found in a text is kept, keyed by a keyed hash of the text (the text itself is not
        # kept, and a memory dump cannot confirm a guessed short text such as a lone name).
        self._cache: OrderedDict[bytes, list[list[Span]]] = OrderedDict()
        self._cache_key = os.urandom(32)
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    @classmethod
    def for_policy(cls, policy: Policy, analyzers: AnalyzerCache) -> DetectionEngine:
        return cls(build_detectors(policy, analyzers), policy.protects)

    def detect(self, texts: Sequence[str]) -> list[list[Span]]:
        found: list[list[Span]] = [[] for _ in texts]
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if not todo or not self.detectors:
            return found
        keys = [self._key_of(texts[i]) for i in todo]
        known = self._cached(keys)
        fresh = {key: texts[i] for i, key in zip(todo, keys, strict=True) if key not in known}  # repeats once
        if fresh:
            per_detector = self._run_all(list(fresh.values()))  # spans per detector, per fresh text
            computed = {key: [spans[j] for spans in per_detector] for j, key in enumerate(fresh)}
            self._remember(computed)
            known.update(computed)
        for i, key in zip(todo, keys, strict=True):
            for spans in known[key]:  # in policy order, so the merge sees what it always saw
                found[i].extend(spans)
        whole = [[to_word_edges(text, s) for s in spans] for text, spans in zip(texts, found, strict=True)]
        merged = [merge_spans(spans, self._protects) for spans in whole]
        # what a text's layout adds to what was found
        for rule in (coordinated_names, addressee_lines, person_affiliations):
            merged = [rule(text, spans, self._protects) for text, spans in zip(texts, merged, strict=True)]
        return propagate_values(texts, merged, self._protects)

    def _run_all(self, batch: list[str]) -> list[list[list[Span]]]:
        """Every detector over the batch, in policy order; GIL-free ones in their own thread."""
        pool = self._pool
        started = {
            id(d): pool.submit(_run, d, batch) for d in self.detectors if pool and getattr(d, "releases_gil", False)
        }
        results = {id(d): _run(d, batch) for d in self.detectors if id(d) not in started}
        results.update({key: future.result() for key, future in started.items()})
        return [results[id(d)] for d in self.detectors]

    def _key_of(self, text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), key=self._cache_key, digest_size=32).digest()

    def _cached(self, keys: list[bytes]) -> dict[bytes, list[list[Span]]]:
        with self._cache_lock:
            hits = {key: self._cache[key] for key in keys if key in self._cache}
            for key in hits:
                self._cache.move_to_end(key)
        return hits

    def _remember(self, computed: dict[bytes, list[list[Span]]]) -> None:
        if self._cache_size <= 0:
            return
        with self._cache_lock:
            self._cache.update(computed)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


def _run(detector: Detector, batch: list[str]) -> list[list[Span]]:
    try:
        return detector.detect(batch)
    except DetectorError:
        raise
    except Exception as exc:  # any failure must stop the request, not let it through raw
        raise DetectorError(f"detector {detector.name!r} failed: {type(exc).__name__}") from exc


def to_word_edges(text: str, span: Span) -> Span:
    """Widen a span that starts or ends inside a spaced word to the whole word.

    A recognizer may match 'RX6687416' inside 'LXRX66874160928456': replacing part of a token
    leaks the rest of it, and a surrogate glued to other letters could not be found again to
    restore it. Scripts without spaces (Chinese...) are left alone.
    """
    start, end = span.start, span.end
    while start > 0 and is_word_char(text[start - 1]) and is_word_char(text[start]):
        start -= 1
    while end < len(text) and is_word_char(text[end]) and is_word_char(text[end - 1]):
        end += 1
    return span if (start, end) == (span.start, span.end) else replace(span, start=start, end=end)


# an item is one to three name-cased words: an all-capital word is an acronym ("MRN"), a word with
# inner capitals a brand ("OpenAI", "GitHub")
_NAME_ITEM = r"\p{Lu}\p{Ll}[\p{Ll}\p{M}'’-]*(?:[ ]\p{Lu}\.?(?!\p{L}))?(?:[ ]\p{Lu}\p{Ll}[\p{Ll}\p{M}'’-]*){0,2}"
_AND = r"(?:,[ ]|[ ](?:and|or|&|et|ou|y|o|e|und|oder)[ ]|,[ ](?:and|et|y|e|und)[ ])"
# a coordinated list of two or more capitalised items: "Kónya, Becker and Vasquez"
_LIST = pyregex.compile(rf"(?<![\p{{L}}\p{{N}}]){_NAME_ITEM}(?:{_AND}{_NAME_ITEM})+(?![\p{{L}}\p{{N}}])")


def coordinated_names(text: str, spans: list[Span], protects: Callable[[str], bool] | None = None) -> list[Span]:
    """The other items of a list that holds a detected person are people too.

    The NER model finds "Michael" in "our founders: Eklund, Michael and Hodge" but not the surnames
    around it. Only lists whose every item is a capitalised name and where no item has another label.
    """
    if not any(s.label == "PERSON" for s in spans):
        return spans
    extra = []
    for match in _LIST.finditer(text):
        items = [
            (match.start() + m.start(), match.start() + m.end()) for m in pyregex.finditer(_NAME_ITEM, match.group())
        ]
        labelled = [[s for s in spans if s.start < e and b < s.end] for b, e in items]
        if any(s.label != "PERSON" for found in labelled for s in found):
            continue
        anchors = [s for found in labelled for s in found]
        if not anchors:
            continue
        score = min(s.score for s in anchors)
        for (b, e), found in zip(items, labelled, strict=True):
            if not found and not is_stop_word(text[b:e]):
                extra.append(Span(b, e, "PERSON", score, "coordination"))
    return merge_spans([*spans, *extra], protects) if extra else spans


# a line that labels rather than says: up to six words, no digit, no sentence's end ("Otc Markets",
# "Mijail C Adomo", "hubbard, fox and gillespie", "stillwater supercomputing inc.")
_BLOCK_LINE = pyregex.compile(
    r"[^\p{L}\p{N}\n]*(?P<value>\p{L}[\p{L}\p{M}'’&.,-]*(?:[ ][\p{L}\p{M}'’&.,-]+){0,5}?)(?<![,;:])[ \t]*"
)
_ABBREVIATION_END = pyregex.compile(r"(?:^|[ ])\p{L}{1,4}\.$")  # "Inc.", "Co.", "C." end a label, not a sentence


def addressee_lines(text: str, spans: list[Span], protects: Callable[[str], bool] | None = None) -> list[Span]:
    """The lines right above a street address name who is there: a letter's recipient, a signature's
    name and organisation, a shipping label ("Ella H. Snider / Otc Markets / 228 Ringvej").

    Up to three label-like lines above the address's first line (one blank line may part them) are
    taken, from the nearest up: one that already holds a span stays as it is; one whose words are all
    everyday words is a role or a heading ("nurse", "Shipping address") and is left; any other is the
    person (when it starts with a given name) or their organisation.
    """
    addresses = [s for s in spans if s.label == "STREET_ADDRESS"]
    if not addresses:
        return spans
    lines, offset = [], 0
    for line in text.split("\n"):
        lines.append((offset, offset + len(line)))
        offset += len(line) + 1
    extra: list[Span] = []
    for address in addresses:
        k = next(i for i, (a, b) in enumerate(lines) if a <= address.start <= b)
        lead = text[lines[k][0] : address.start]
        if len(lead.split()) > 3 or any(c in lead for c in ".:;!?"):
            continue  # the address is inside a sentence, not the head of a block
        taken, blanks = 0, 0
        for start, end in reversed(lines[:k]):
            if not text[start:end].strip(" \t>*•·-?"):
                blanks += 1
                if blanks > 1:
                    break
                continue
            m = _BLOCK_LINE.fullmatch(text, start, end)
            if m is None:
                break  # a sentence, a long line, or one that holds a digit: the block is over
            value, value_start = m.group("value").rstrip(" ,"), m.start("value")
            if any(c.isdigit() for c in value) or value.endswith(".") and not _ABBREVIATION_END.search(value):
                break
            taken += 1
            held = any(s.start < value_start + len(value) and value_start < s.end for s in spans)
            person = _is_person_line(value)
            if not held and (person or not all(is_everyday_word(w) or is_stop_word(w) for w in _words(value))):
                label = "PERSON" if person else "ORGANIZATION"
                extra.append(Span(value_start, value_start + len(value), label, address.score, "addressee"))
            if taken == 3:
                break
    return merge_spans([*spans, *extra], protects) if extra else spans


def _words(value: str) -> list[str]:
    return [w for w in (w.strip(".,&'’-") for w in value.split()) if w]


def _is_person_line(value: str) -> bool:
    """Two to four words, no list, that start with a given name or hold a middle initial ("naomi ryan",
    "Mijail C Adomo")."""
    words = _words(value)
    if not 2 <= len(words) <= 4 or "," in value or any(is_stop_word(w) for w in words if len(w) > 1):
        return False
    return can_start_a_name(words[0]) or any(len(w) == 1 and w.isupper() for w in words[1:-1])


# after a person's name, where they come from or work: "Tom I. Holzman from Predilytics", "Abby
# Holloway of Opencounter", "Diana is from Cloudmade"; a title-case run of up to five words
_TITLE_WORD = r"\p{Lu}[\p{L}\p{M}'’&-]*(?<!['’]s)"
_AFFILIATION = pyregex.compile(
    rf"[ ](?:is[ ])?(?:from|of|at|bei|chez|presso)[ ]"
    rf"(?P<org>{_TITLE_WORD}(?:,?[ ](?:(?:and|&|of|for)[ ])?{_TITLE_WORD}){{0,4}})"
    r"(?![\p{L}\p{N}]|[.]\p{L})"
)


def person_affiliations(text: str, spans: list[Span], protects: Callable[[str], bool] | None = None) -> list[Span]:
    """The organisation a detected person is from narrows down who they are; a known place ("from
    Lyon") is left to the place detectors, and one everyday word ("from Sales", "of Monday") is left."""
    extra = []
    for person in (s for s in spans if s.label == "PERSON"):
        m = _AFFILIATION.match(text, person.end)
        if m is None:
            continue
        org = m.group("org")
        start, end = m.start("org"), m.end("org")
        if any(s.start < end and start < s.end for s in spans) or lookup(org) is not None:
            continue
        words = org.replace(",", " ").split()
        if len(words) == 1 and (is_everyday_word(org) or is_stop_word(org)):
            continue
        extra.append(Span(start, end, "ORGANIZATION", person.score, "affiliation"))
    return merge_spans([*spans, *extra], protects) if extra else spans


def propagate_values(
    texts: Sequence[str], spans: list[list[Span]], protects: Callable[[str], bool] | None = None
) -> list[list[Span]]:
    """Flag every other occurrence of a detected value, in any slot, and of a detected person's given
    or family name alone ("Valida M. Ibragimov ... Valida spent a year", "starring Westgård").

    A name the NER caught in the user's message but missed in the system prompt or a tool result
    would otherwise leave the machine raw. Matching is exact and word-bounded (`rewriters.text`).
    """
    labels: dict[str, Span] = {}
    for text, text_spans in zip(texts, spans, strict=True):
        for s in text_spans:
            value = text[s.start : s.end]
            if value.strip() and (value not in labels or s.score > labels[value].score):
                labels[value] = s
    for value, s in list(labels.items()):
        if s.label == "PERSON":
            for part in name_parts(value):
                labels.setdefault(part, s)  # a value detected on its own keeps its own label
    if not labels:
        return spans
    regex = any_of(set(labels))
    assert regex is not None
    result = []
    for text, text_spans in zip(texts, spans, strict=True):
        extra = [
            Span(m.start(), m.end(), labels[m.group()].label, labels[m.group()].score, "propagate")
            for m in regex.finditer(text)
            if not any(s.start < m.end() and m.start() < s.end for s in text_spans)
        ]
        result.append(merge_spans([*text_spans, *extra], protects) if extra else text_spans)
    return result


# a word of a name, its possessive left out ("Vassiliev's"), inner hyphens and apostrophes kept ("O'Connor")
_NAME_PART = pyregex.compile(
    r"(?<![\p{L}\p{M}'’.-])\p{L}[\p{L}\p{M}]*(?:['’-]\p{L}[\p{L}\p{M}]+)*(?![\p{L}\p{M}.]|-\p{L}|['’]\p{L}{2})"
)
_INITIAL = pyregex.compile(r"[ ]\p{Lu}\.?[ ]")


def name_parts(name: str) -> list[str]:
    """The words of a person's name that identify them alone.

    Only a name of two words or more that starts with a given name or holds a middle initial ("Valida M.
    Ibragimov") gives parts: each word of three letters or more that is no initial, acronym ("DDS"),
    function word, frequent English word ("Young", "Key": too often the word itself) or known place. A
    name typed in lower case gives lower-case parts.
    """
    name = name.split("\n")[0]  # a span run on into the next line ("Mike McKerns\nMaintainer") is misread there
    words = [m.group() for m in _NAME_PART.finditer(name)]
    if len(name.split()) < 2 or not (words and can_start_a_name(words[0]) or _INITIAL.search(name)):
        return []  # only what reads as a person's name: "Classifier: Intended Audience" is a misread
    return [
        w
        for w in words
        if len(w) >= 3
        and not w.isupper()
        and (w[0].isupper() or name.islower())
        and not is_stop_word(w)
        and not is_frequent_english_word(w)
        and lookup(w) is None
    ]
