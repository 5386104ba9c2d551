"""The rewriting prompt and the cleaning of the model's answer.

A 135M-parameter model follows a task far better from a few worked examples than from instructions
alone: each prompt carries the same four shots (one per domain and two languages besides English).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

PROMPT_VERSION = "damper-prompt/1"
MAX_WORDS = 12
MAX_CHARS = 90
CONTEXT_CHARS = 240  # of the text around the span: enough for its sentence, short enough to keep prefill cheap

_SYSTEM = (
    "You replace one private detail in a text by a vaguer phrase of the same kind, in the language of the text, "
    "so that the text keeps its meaning but no longer identifies anyone. Answer with the phrase only."
)
_SHOTS = (
    (
        "I was treated for acute myeloid leukaemia at 34 and relapsed last year.",
        "Condition",
        "acute myeloid leukaemia",
        "a blood cancer",
    ),
    ("Elle gagne 84 500 euros par an comme infirmière.", "Income", "84 500 euros par an", "un revenu moyen"),
    (
        "He was charged with aggravated burglary after the break-in on Elm Street.",
        "Criminal charge",
        "aggravated burglary",
        "a property offence",
    ),
    ("La paciente toma warfarina 5 mg desde el infarto.", "Medication", "warfarina 5 mg", "un anticoagulante"),
)


@dataclass(frozen=True)
class SpanItem:
    """One private span to rewrite: the text it sits in, its offsets and its label."""

    text: str
    start: int
    end: int
    label: str

    @property
    def value(self) -> str:
        return self.text[self.start : self.end]


def category(label: str) -> str:
    """'TEST_RESULT' -> 'Test result': how the prompt names a label."""
    return label.replace("_", " ").capitalize()


def context_of(item: SpanItem, sees_span: bool = True) -> str:
    """The text around the span; with `sees_span` false the span itself is replaced by its category tag,
    so the candidates cannot depend on the span's value (the strict DP setting)."""
    half = CONTEXT_CHARS // 2
    lo, hi = max(0, item.start - half), min(len(item.text), item.end + half)
    middle = item.value if sees_span else f"[{item.label}]"
    return (item.text[lo : item.start] + middle + item.text[item.end : hi]).strip()


def messages(item: SpanItem, sees_span: bool = True) -> list[dict[str, str]]:
    """The chat for one span: system, shots, then the span in its context."""
    chat = [{"role": "system", "content": _SYSTEM}]
    for text, name, value, answer in _SHOTS:
        chat.append({"role": "user", "content": f"Text: {text}\n{name}: {value}"})
        chat.append({"role": "assistant", "content": answer})
    shown = item.value if sees_span else f"[{item.label}]"
    chat.append({"role": "user", "content": f"Text: {context_of(item, sees_span)}\n{category(item.label)}: {shown}"})
    return chat


_QUOTES = "\"'`«»“”„‘’「」"
_LEAD = re.compile(r"^(?:[-*•]\s*|(?:answer|replacement|phrase)\s*:\s*)", re.IGNORECASE)


def clean(answer: str) -> str | None:
    """The phrase the model wrote, or None when it wrote something else (a sentence, a list, nothing)."""
    line = answer.strip().split("\n", 1)[0].strip()
    line = _LEAD.sub("", line).strip().strip(_QUOTES).strip().rstrip(".;,").strip().strip(_QUOTES).strip()
    if not line or len(line) > MAX_CHARS or len(line.split()) > MAX_WORDS or ":" in line:
        return None
    if any(ch == "\ufffd" or unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in line):
        return None  # broken bytes or control characters: not text anyone wrote
    return line
