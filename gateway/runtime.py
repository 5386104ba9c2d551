"""Everything a gateway process loads once: policies, detectors, the rewriter, the audit store, upstreams."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from gateway.audit import AuditStore, check_schema
from gateway.budget import BudgetLedger
from gateway.errors import BadRequest, NotFound
from gateway.ppvd import load_guards
from gateway.secret import load_secret
from gateway.secure import secure_upstream
from gateway.settings import Settings, TenantKey
from gateway.upstream import Upstream, build_upstreams
from policies import Policy, load_policies
from policies.schema import Action
from rewriters.detect import DetectionEngine
from rewriters.detectors.base import DetectorError
from rewriters.detectors.presidio import AnalyzerCache
from rewriters.ppvd.store import PpvdStoreError
from rewriters.rewrite import Rewriter
from rewriters.surrogates import SurrogateFactory

if TYPE_CHECKING:
    from rewriters.damper.candidates import DamperCandidates
    from rewriters.ppvd import PpvdGuard
    from rewriters.privqa import Relevance


class StartupError(RuntimeError):
    """The gateway cannot start as configured; the message says what to fix."""


@dataclass
class Runtime:
    settings: Settings
    policies: dict[str, Policy]
    engines: dict[str, DetectionEngine]
    rewriter: Rewriter
    secret: bytes
    audit: AuditStore
    budgets: BudgetLedger
    upstreams: dict[str, Upstream]  # per vendor, for cloud domains
    tenants: dict[str, TenantKey]
    secure: dict[str, Upstream]  # per domain whose policy names a secure backend (started on first use)
    guards: dict[str, PpvdGuard]  # PPVD stores, per domain whose policy names one

    @classmethod
    def build(cls, settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> Runtime:
        # Schema check (gateway.audit.SchemaError): migrates SQLite; a database behind `privgate db upgrade` fails
        # here, before the slow detector warm-up.
        check_schema(settings.database_url)
        policies = load_policies(settings.policy_dir)
        if settings.default_domain not in policies:
            loaded = ", ".join(sorted(policies))
            raise StartupError(f"default domain {settings.default_domain!r} has no policy (loaded: {loaded})")
        analyzers = AnalyzerCache()
        engines = {}
        for name, policy in policies.items():
            try:
                engines[name] = DetectionEngine.for_policy(policy, analyzers)
            except DetectorError as exc:  # a missing or corrupt learnt artifact: refuse to start, never run without it
                raise StartupError(f"domain {name!r}: {exc}") from exc
        for engine in engines.values():  # the first spaCy call is slow: pay it at start-up, not in a request
            engine.detect(["Warm-up: Jane Doe wrote to jane@example.org from Paris."])
        secret = load_secret(settings)
        try:
            guards = load_guards(policies, secret)
        except PpvdStoreError as exc:  # a missing, corrupt or foreign store must stop start-up
            raise StartupError(str(exc)) from exc
        damper = load_dampers(policies)
        relevance = load_relevance(policies)
        audit = AuditStore(settings.database_url)
        return cls(
            settings=settings,
            policies=policies,
            engines=engines,
            rewriter=Rewriter(secret, SurrogateFactory(secret), damper=damper, relevance=relevance),
            secret=secret,
            audit=audit,
            budgets=BudgetLedger(audit.engine),
            upstreams=build_upstreams(settings, transport),
            tenants={t.key_sha256: t for t in settings.tenants},
            secure={name: secure_upstream(p) for name, p in policies.items() if p.backend != "cloud"},
            guards=guards,
        )

    def upstream_for(self, domain: str, vendor: str) -> Upstream:
        """The vendor's cloud upstream, or the domain's secure backend (which speaks OpenAI's API)."""
        secure = self.secure.get(domain)
        if secure is None:
            if vendor == "secure":
                raise NotFound(f"domain {domain!r} has no secure backend: this path is served by secure backends only")
            return self.upstreams[vendor]
        if vendor not in ("openai", "secure"):
            raise BadRequest(f"domain {domain!r} is served by a secure backend, which speaks the OpenAI API only")
        return secure

    async def aclose(self) -> None:
        for upstream in (*self.upstreams.values(), *self.secure.values()):
            await upstream.client.aclose()
        self.audit.close()


def load_dampers(policies: dict[str, Policy]) -> dict[str, DamperCandidates]:
    """The DAMPER rewriter of each policy with a `damper:` section. Every named artifact is verified now, so a
    missing, corrupt or foreign one stops start-up; the model is loaded only for a policy that has a
    `dp_rewrite` label the artifact serves (one model per artifact and settings)."""
    wanted = {name: p for name, p in policies.items() if p.damper is not None}
    if not wanted:
        return {}
    from rewriters.damper.artifact import DamperArtifact
    from rewriters.damper.candidates import DamperCandidates
    from rewriters.embedding import EmbedderError, load_embedder

    loaded: dict[tuple[str, int, int, float], DamperCandidates] = {}
    out = {}
    for name, policy in wanted.items():
        config = policy.damper
        assert config is not None
        try:
            artifact = DamperArtifact.load(config.artifact)
            if not any(policy.action_for(label) is Action.DP_REWRITE for label in artifact.labels):
                continue
            key = (config.artifact, config.candidates, config.max_new_tokens, config.timeout_s)
            if key not in loaded:
                loaded[key] = DamperCandidates.from_artifact(
                    artifact,
                    load_embedder("all-MiniLM-L6-v2"),
                    config.candidates,
                    config.max_new_tokens,
                    config.timeout_s,
                )
        except (DetectorError, EmbedderError) as exc:
            raise StartupError(f"domain {name!r}: {exc}") from exc
        out[name] = loaded[key]
    return out


def load_relevance(policies: dict[str, Policy]) -> Relevance | None:
    """PRIV-QA's embedding relevance, when a policy uses it (multilingual e5: questions come in six languages)."""
    if not any(p.privqa and p.privqa_relevance for p in policies.values()):
        return None
    from rewriters.embedding import EmbedderError, load_embedder
    from rewriters.privqa import Relevance

    try:
        return Relevance(load_embedder("multilingual-e5-small"))
    except EmbedderError as exc:
        raise StartupError(f"PRIV-QA relevance: {exc}") from exc
