"""Apply a policy's actions to detected spans, and remember how to undo them in the answer."""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from policies.schema import Action, Policy
from rewriters.damper.prompt import SpanItem
from rewriters.dp import DpSampler, draw
from rewriters.privqa import Relevance, generalize, question_needs, question_of
from rewriters.restore import Restorer
from rewriters.spans import Span
from rewriters.surrogates import SurrogateFactory
from rewriters.text import word_set

if TYPE_CHECKING:
    from rewriters.damper.candidates import DamperCandidates

_MAX_ATTEMPTS = 16
log = logging.getLogger("privgate.rewrite")
# (label, value) -> (candidates, utilities) from a DAMPER rewriter, or None: it failed, the fallback applies
_Proposals = dict[tuple[str, str], tuple[list[str], list[float]] | None]


class PolicyBlocked(Exception):
    """The policy says a label found in this request must never leave: refuse the request."""

    def __init__(self, labels: Sequence[str], reason: str = "it contains") -> None:
        self.labels = sorted(set(labels))
        super().__init__(f"request refused by policy: {reason} " + ", ".join(self.labels))


class BudgetExhausted(PolicyBlocked):
    """The tenant's DP budget for this window is spent and the policy says: refuse."""


class Budget(Protocol):
    """A tenant's differential-privacy budget for the current window (the gateway's is persisted)."""

    def spend(self, epsilon: float) -> bool:
        """Take `epsilon` if the window still has it, atomically; False (and nothing taken) if not."""
        ...


@dataclass(frozen=True)
class SpanRecord:
    """What the audit keeps of a span: never the value, only a keyed hash of it."""

    slot: int
    start: int
    end: int
    label: str
    detector: str
    score: float
    action: Action
    value_hash: str
    epsilon: float | None = None  # spent on this span (dp_rewrite only)


@dataclass
class RewriteSession:
    """Everything one request's rewrite produced; passed explicitly, never a shared dict."""

    policy: Policy
    tenant: str
    records: list[SpanRecord] = field(default_factory=list)
    surrogates: dict[str, str] = field(default_factory=dict)  # surrogate -> original
    name_parts: dict[str, str | None] = field(default_factory=dict)  # "Becker" -> "Müller"; None: ambiguous
    protected_values: dict[str, str] = field(default_factory=dict)  # original -> label: must not leave

    def surrogate_part(self, name_part: str) -> str | None:
        """The part of a full name's surrogate that stands for this part of the real name, when only one
        does."""
        fakes = [fake for fake, real in self.name_parts.items() if real == name_part]
        return fakes[0] if len(fakes) == 1 else None

    def restorer(self) -> Restorer:
        """Surrogates, unambiguous name parts ('Ms. Lopez'), and their upper-case forms ('LOPEZ')."""
        parts = {p: o for p, o in self.name_parts.items() if o is not None and p not in self.surrogates}
        mapping = {**parts, **self.surrogates}
        shouted = {s.upper(): o.upper() for s, o in mapping.items() if s.upper() != s and s.upper() not in mapping}
        return Restorer({**shouted, **mapping})


def value_hash(secret: bytes, value: str) -> str:
    """Keyed hash for the audit: lets you count repeats of a value without storing it."""
    return hmac.new(secret, b"audit\x00" + value.encode(), hashlib.sha256).hexdigest()[:24]


_SYNTAX = "'\"`\\’"  # characters that end or escape a string in the text around a value


class Rewriter:
    """Turns (texts, spans) into rewritten texts under a policy; one per process."""

    def __init__(
        self,
        secret: bytes,
        surrogates: SurrogateFactory,
        dp: DpSampler | None = None,
        damper: Mapping[str, DamperCandidates] | None = None,
        relevance: Relevance | None = None,
    ) -> None:
        """`damper` maps a policy name to the DAMPER rewriter its `damper:` section names; `relevance` lets
        PRIV-QA keep spans a question asks for in words its rules do not know."""
        self._secret = secret
        self._factory = surrogates
        self._dp = dp or DpSampler()
        self._damper = dict(damper or {})
        self._relevance = relevance

    def rewrite(
        self,
        texts: Sequence[str],
        spans: Sequence[Sequence[Span]],
        policy: Policy,
        tenant: str,
        budget: Budget | None = None,
        question: str | None = None,
    ) -> tuple[list[str], RewriteSession]:
        """`budget` is charged once for the request's distinct dp_rewrite values (None: unlimited);
        `question` (the user's latest turn) lets a `privqa` policy generalise what it does not need."""
        session = RewriteSession(policy=policy, tenant=tenant)
        blocked = [s.label for slot in spans for s in slot if policy.action_for(s.label) is Action.BLOCK]
        if blocked:
            raise PolicyBlocked(blocked)
        plan = self._plan(texts, spans, policy, question)
        dp_allowed = self._charge_dp(plan, policy, budget)
        proposals = self._propose(texts, spans, plan, policy) if dp_allowed else {}
        assigned: dict[tuple[str, str], tuple[str, Action]] = {}  # (label, original) -> replacement, action
        mask_counts: dict[str, int] = {}
        prompt = _Prompt("\n".join(texts))
        # full names first, so a name alone ("Valida") can take its part of the full name's surrogate
        for key in sorted(plan, key=lambda k: -len(k[1].split())):
            if key[0] == "PERSON" and plan[key] is Action.PSEUDONYMIZE and len(key[1].split()) > 1:
                assigned[key] = self._replacement(
                    Action.PSEUDONYMIZE, *key, tenant, session, mask_counts, prompt, proposals
                )
        out = []
        for slot, (text, slot_spans) in enumerate(zip(texts, spans, strict=True)):
            ordered = sorted(slot_spans, key=lambda s: s.start)
            replacements = []
            for span in ordered:  # in reading order, so tags number as a reader meets them
                value = text[span.start : span.end]
                action = plan[(span.label, value)]
                if action is Action.DP_REWRITE and not dp_allowed:
                    action = Action.MASK  # the budget is spent and the policy says: mask instead
                replacement = value
                if action in (Action.PSEUDONYMIZE, Action.MASK, Action.DP_REWRITE, Action.GENERALIZE):
                    key = (span.label, value)
                    if key not in assigned:
                        assigned[key] = self._replacement(
                            action, span.label, value, tenant, session, mask_counts, prompt, proposals
                        )
                    replacement, action = assigned[key]
                    if replacement != value:
                        session.protected_values[value] = span.label
                epsilon = policy.dp.epsilon_for(span.label) if action is Action.DP_REWRITE else None
                session.records.append(
                    SpanRecord(
                        slot,
                        span.start,
                        span.end,
                        span.label,
                        span.detector,
                        span.score,
                        action,
                        value_hash(self._secret, value),
                        epsilon,
                    )
                )
                replacements.append(replacement)
            for span, replacement in reversed(list(zip(ordered, replacements, strict=True))):  # back to front
                text = text[: span.start] + replacement + text[span.end :]
            out.append(text)
        return out, session

    def _plan(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]], policy: Policy, question: str | None
    ) -> dict[tuple[str, str], Action]:
        """The action for each distinct (label, value): the policy's, unless PRIV-QA finds the
        question does not need a value it would substitute; then it is generalised."""
        plan = {}
        question = question_of(question) if question is not None else None
        relevance = self._relevance if policy.privqa_relevance else None
        for text, slot in zip(texts, spans, strict=True):
            for span in slot:
                key = (span.label, text[span.start : span.end])
                action = policy.action_for(span.label)
                substitutes = action in (Action.PSEUDONYMIZE, Action.DP_REWRITE, Action.MASK)
                if (
                    policy.privqa
                    and question is not None
                    and substitutes
                    and not question_needs(question, key[1], key[0], relevance=relevance)
                ):
                    action = Action.GENERALIZE
                plan[key] = action
        return plan

    def _propose(
        self, texts: Sequence[str], spans: Sequence[Sequence[Span]], plan: dict[tuple[str, str], Action], policy: Policy
    ) -> _Proposals:
        """DAMPER candidate sets for the request's dp_rewrite values its rewriter serves: one generate call,
        kept for this request only. If the rewriter fails, the policy's `damper.on_failure` applies."""
        damper = self._damper.get(policy.name)
        if damper is None or policy.damper is None:
            return {}
        items: dict[tuple[str, str], SpanItem] = {}
        for text, slot in zip(texts, spans, strict=True):
            for span in slot:
                key = (span.label, text[span.start : span.end])
                if plan.get(key) is Action.DP_REWRITE and damper.serves(span.label) and key not in items:
                    items[key] = SpanItem(text, span.start, span.end, span.label)
        if not items:
            return {}
        try:
            sets = damper.candidate_sets(list(items.values()))
        except Exception as exc:  # a broken or slow model must never let the raw span through
            log.warning("DAMPER rewriter failed (%s): %s applies", type(exc).__name__, policy.damper.on_failure)
            if policy.damper.on_failure == "block":
                raise PolicyBlocked([label for label, _ in items], "the rewriter is unavailable for") from exc
            return dict.fromkeys(items)
        return {key: space if space[0] else None for key, space in zip(items, sets, strict=True)}

    def _charge_dp(self, plan: dict[tuple[str, str], Action], policy: Policy, budget: Budget | None) -> bool:
        """Spend ε for each distinct dp_rewrite value of the request, all or nothing."""
        distinct = {key for key, action in plan.items() if action is Action.DP_REWRITE}
        cost = sum(policy.dp.epsilon_for(label) for label, _ in distinct)
        if not cost or budget is None or budget.spend(cost):
            return True
        if policy.dp.on_exhausted == "block":
            raise BudgetExhausted(sorted({label for label, _ in distinct}), "the tenant's DP budget is spent for")
        return False

    def _replacement(
        self,
        action: Action,
        label: str,
        value: str,
        tenant: str,
        session: RewriteSession,
        mask_counts: dict[str, int],
        prompt: _Prompt,
        proposals: _Proposals,
    ) -> tuple[str, Action]:
        """The replacement of a value and the action it really got (a mask when nothing else fits)."""
        if action is Action.GENERALIZE:
            coarse = generalize(label, value)
            if coarse is not None and coarse != value:
                return coarse, action  # lossy on purpose: not restored in the answer
        if action is Action.DP_REWRITE:
            epsilon = session.policy.dp.epsilon_for(label)
            if (label, value) in proposals:  # a DAMPER rewriter serves this label; None: it failed, mask
                space = proposals[(label, value)]
                sampled = draw(*space, epsilon) if space is not None else None
            else:
                sampled = self._dp.sample(label, value, epsilon)
            if sampled == value:
                return value, action  # the mechanism may return the original itself: that is DP too
            # only exact collisions are refused (a DP name may share a first name with the prompt)
            if sampled is not None and self._usable("", sampled, value, session, prompt):
                session.surrogates[sampled] = value
                self._map_name_parts(label, sampled, value, session, prompt)  # "Ms. Palmer" comes back too
                return sampled, action
        if action is Action.PSEUDONYMIZE:
            part = session.surrogate_part(value) if label == "PERSON" else None
            if part is not None and self._usable(label, part, value, session, prompt):
                session.surrogates[part] = value  # "Valida M. Ibragimov" -> "Anna K. Smith", "Valida" -> "Anna"
                return part, action
            for attempt in range(_MAX_ATTEMPTS):
                candidate = self._factory.make(tenant, label, value, attempt)
                if self._usable(label, candidate, value, session, prompt):
                    session.surrogates[candidate] = value
                    self._map_name_parts(label, candidate, value, session, prompt)
                    return candidate, action
        # a mask tag, also the fallback when no collision-free replacement was found
        while True:
            mask_counts[label] = mask_counts.get(label, 0) + 1
            tag = f"[{label}_{mask_counts[label]}]"
            if tag not in prompt.text and tag not in session.surrogates:
                session.surrogates[tag] = value
                return tag, Action.MASK

    @staticmethod
    def _usable(label: str, candidate: str, value: str, session: RewriteSession, prompt: _Prompt) -> bool:
        """A surrogate must be new: not the value, not another value's surrogate, not in the prompt;
        a name must not share a word with the prompt (restoring 'Amanda' alone would be a guess); and it
        brings no quote or backslash the value did not have ('O'Connor' inside a SQL or JSON string)."""
        return (
            bool(candidate.strip())
            and not any(c in candidate and c not in value for c in _SYNTAX)
            and candidate.casefold() != value.casefold()
            and candidate not in session.surrogates
            and candidate not in prompt.text
            and not (label == "PERSON" and any(len(w) >= 3 and w in prompt.words for w in word_set(candidate)))
        )

    @staticmethod
    def _map_name_parts(label: str, surrogate: str, value: str, session: RewriteSession, prompt: _Prompt) -> None:
        """'Ms. Becker' in the answer should come back as 'Ms. Müller': map name parts one to one.

        Only when both names have the same number of parts, and only parts that are unambiguous.
        """
        if label != "PERSON":
            return
        fake_parts, real_parts = surrogate.split(), value.split()
        if len(fake_parts) < 2 or len(fake_parts) != len(real_parts):
            return
        for fake, real in zip(fake_parts, real_parts, strict=True):
            if len(fake) < 3 or fake in prompt.words:
                continue
            known = session.name_parts.setdefault(fake, real)
            if known != real:
                session.name_parts[fake] = None  # two people share this part: restoring it would guess


@dataclass(frozen=True)
class _Prompt:
    """All text of one request, and its words, computed once for the collision checks."""

    text: str
    words: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", frozenset(word_set(self.text)))
