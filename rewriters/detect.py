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
        from rewriters.detectors.prototypes import PrototypeDetector  # faiss and an embedder: only when asked

        detectors.append(PrototypeDetector.open(config.prototypes.artifact))
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
        for rule in (coordinated_names, signature_organisations):  # what a text's layout adds to what was found
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


# a line of title-case words with no digits: "Otc Markets", "Google Public Data Explorer", "Hubbard, Fox and Gillespie"
_TITLE_WORD = r"\p{Lu}[\p{L}\p{M}'’&.-]*"
_TITLE_LINE = pyregex.compile(
    rf"[ \t>]*(?P<value>{_TITLE_WORD}(?:,?[ ](?:(?:and|&|of|de|du|der|und|y|e)[ ])?{_TITLE_WORD}){{0,5}})[ \t]*"
)


def signature_organisations(text: str, spans: list[Span], protects: Callable[[str], bool] | None = None) -> list[Span]:
    """In a signature block (a person's name on a line, a street address within the next lines), the
    title-case line under the name is their organisation: "Ella H. Snider / Otc Markets / 228 Ringvej".

    The employer narrows down who signed; a job title caught the same way is harmless to rewrite.
    """
    if not any(s.label == "PERSON" for s in spans) or not any(s.label == "STREET_ADDRESS" for s in spans):
        return spans
    lines, offset = [], 0
    for line in text.split("\n"):
        if line.strip(" \t>"):
            lines.append((offset, offset + len(line)))
        offset += len(line) + 1
    extra = []
    for k in range(1, len(lines) - 1):
        above, (start, end) = lines[k - 1], lines[k]
        if any(s.start < end and start < s.end for s in spans):
            continue
        named = [s for s in spans if s.label == "PERSON" and s.start <= above[1] and above[0] <= s.start]
        if not named or text[above[0] : above[1]].strip(" \t>") != text[named[0].start : named[0].end]:
            continue
        below = lines[k + 1 : k + 4]
        if not any(s.label == "STREET_ADDRESS" and any(a <= s.start < b for a, b in below) for s in spans):
            continue
        m = _TITLE_LINE.fullmatch(text, start, end)
        if m is not None and not is_stop_word(m.group("value").split()[0]):
            extra.append(Span(m.start("value"), m.end("value"), "ORGANIZATION", named[0].score, "signature"))
    return merge_spans([*spans, *extra], protects) if extra else spans


def propagate_values(
    texts: Sequence[str], spans: list[list[Span]], protects: Callable[[str], bool] | None = None
) -> list[list[Span]]:
    """Flag every other occurrence of a detected value, in any slot.

    A name the NER caught in the user's message but missed in the system prompt or a tool result
    would otherwise leave the machine raw. Matching is exact and word-bounded (`rewriters.text`).
    """
    labels: dict[str, Span] = {}
    for text, text_spans in zip(texts, spans, strict=True):
        for s in text_spans:
            value = text[s.start : s.end]
            if value.strip() and (value not in labels or s.score > labels[value].score):
                labels[value] = s
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
