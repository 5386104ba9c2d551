"""PPVD: a privacy-preserving vector store that finds and replaces memorised sensitive content in answers.

Stage 1 `probe` (what a model reproduces), stages 2-3 `build_store` (high-risk sentences in FAISS,
their sanitised versions beside them, encrypted at rest), stage 4 `PpvdGuard` (match-and-replace in
whole answers and streams). Importing this package loads no model.
"""

from rewriters.ppvd.build import build_store
from rewriters.ppvd.corpus import CorpusError, Record, read_corpus
from rewriters.ppvd.guard import GuardResult, Hit, PpvdGuard, StreamGuard
from rewriters.ppvd.probe import ProbeConfig, ProbeResult, ProbeSummary, probe, read_high_risk
from rewriters.ppvd.sanitise import policy_sanitiser
from rewriters.ppvd.store import PpvdStoreError, StoreMeta, derive_key

__all__ = [
    "CorpusError",
    "GuardResult",
    "Hit",
    "PpvdGuard",
    "PpvdStoreError",
    "ProbeConfig",
    "ProbeResult",
    "ProbeSummary",
    "Record",
    "StoreMeta",
    "StreamGuard",
    "build_store",
    "derive_key",
    "policy_sanitiser",
    "probe",
    "read_corpus",
    "read_high_risk",
]
