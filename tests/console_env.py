"""The console's test gateway (shared by test_console.py and test_console_browser.py; holds no tests).

The session's real runtime (detectors loaded once), with an admin token, a store of its own, and one
more domain, `clinic`: the shipped general policy plus a deny-list of diagnoses that are masked.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from fastapi import FastAPI

from gateway import create_app
from gateway.audit import AuditStore
from gateway.budget import BudgetLedger
from gateway.runtime import Runtime
from gateway.settings import TenantKey
from gateway.upstream import build_upstreams
from policies import Policy
from rewriters.detect import DetectionEngine
from rewriters.detectors.patterns import PatternDetector

ADMIN_TOKEN = "console-admin-token-never-shown-4b7e19"
TENANT_KEY = "pg-key-of-the-clinic-team-9931"
DIAGNOSES = ["type 2 diabetes", "asthma", "hypertension"]


def clinic_policy(general: Policy) -> Policy:
    data = general.model_dump(mode="json")
    data.update(name="clinic", version="c1", description="General policy plus masked diagnoses (console tests).")
    data["detectors"]["deny_lists"] = [*data["detectors"]["deny_lists"], {"label": "DIAGNOSIS", "values": DIAGNOSES}]
    data["actions"] = {**data["actions"], "DIAGNOSIS": "mask"}
    return Policy.model_validate(data)


def console_runtime(runtime: Runtime, data_dir: Path, **settings_update: object) -> Runtime:
    clinic = clinic_policy(runtime.policies["general"])
    # the general engine's detectors (spaCy already loaded) plus the clinic's deny-list
    engine = DetectionEngine(
        [*runtime.engines["general"].detectors, PatternDetector([], clinic.detectors.deny_lists[-1:])],
        clinic.protects,
    )
    tenants = [TenantKey(key_sha256=TenantKey.hash_key(TENANT_KEY), tenant="clinic-team", domain="clinic")]
    settings = runtime.settings.model_copy(
        update={
            "tenants": tenants,
            "data_dir": data_dir,
            "admin_token_sha256": hashlib.sha256(ADMIN_TOKEN.encode()).hexdigest(),
            **settings_update,
        }
    )
    audit = AuditStore(f"sqlite:///{data_dir / 'audit.db'}")
    return dataclasses.replace(
        runtime,
        settings=settings,
        policies={**runtime.policies, "clinic": clinic},
        engines={**runtime.engines, "clinic": engine},
        tenants={t.key_sha256: t for t in tenants},
        audit=audit,
        budgets=BudgetLedger(audit.engine),
        upstreams=build_upstreams(settings),
    )


def console_app(runtime: Runtime) -> FastAPI:
    return create_app(runtime=runtime)
