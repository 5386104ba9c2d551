"""Prometheus metrics: counts and latencies by endpoint, domain, label and action; never a value.

Each app gets its own registry (tests run several apps in one process). With several uvicorn
workers, set PROMETHEUS_MULTIPROC_DIR and /metrics aggregates every worker's files.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from gateway.audit import AuditEntry

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "privgate_requests",
            "Requests by endpoint, outcome, status and domain",
            ["endpoint", "outcome", "status", "domain"],
            registry=r,
        )
        self.spans = Counter(
            "privgate_spans", "Sensitive spans found, by label and action", ["label", "action"], registry=r
        )
        self.leaks = Counter("privgate_leaks", "Protected values found in an outbound body", ["domain"], registry=r)
        self.refused = Counter("privgate_refused", "Requests refused, by reason", ["domain", "reason"], registry=r)
        self.upstream = Histogram(
            "privgate_upstream_seconds", "Upstream time", ["endpoint"], buckets=_LATENCY_BUCKETS, registry=r
        )
        self.overhead = Histogram(
            "privgate_overhead_seconds",
            "Time spent in the gateway, upstream excluded",
            ["endpoint", "domain"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dp_spent = Counter(
            "privgate_dp_epsilon_spent", "Differential-privacy ε spent, by tenant", ["tenant"], registry=r
        )
        self.detection = Histogram(
            "privgate_detection_seconds",
            "Detection and rewriting time per request",
            ["domain"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )

    def observe(self, entry: AuditEntry, detection_ms: float | None) -> None:
        """Everything a finished request tells, from its audit entry (which holds no raw value)."""
        self.requests.labels(entry.endpoint, entry.outcome, str(entry.status), entry.domain).inc()
        for span in entry.spans:
            self.spans.labels(span["label"], span["action"]).inc()
        epsilon = sum(span.get("epsilon") or 0.0 for span in entry.spans)
        if epsilon:
            self.dp_spent.labels(entry.tenant).inc(epsilon)
        if entry.leaks:
            self.leaks.labels(entry.domain).inc(len(entry.leaks))
        if entry.outcome == "refused" and entry.error:
            self.refused.labels(entry.domain, entry.error).inc()
        if entry.upstream_ms is not None:
            self.upstream.labels(entry.endpoint).observe(entry.upstream_ms / 1000)
        self.overhead.labels(entry.endpoint, entry.domain).observe(max(entry.overhead_ms, 0.0) / 1000)
        if detection_ms is not None:
            self.detection.labels(entry.domain).observe(detection_ms / 1000)

    def render(self) -> bytes:
        if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
            combined = CollectorRegistry()
            multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(combined))
        return bytes(generate_latest(self.registry))
