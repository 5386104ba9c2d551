"""Sustained load on privgate: throughput, latency, errors and memory under concurrent clients.

Starts the fake LLM (privgate's echo app under uvicorn) and, one at a time, a gateway upstreamed
to it for each of {pass-through policy, shipped `general` policy} x {1, 2 workers}. Each target
(the echo server itself first, "direct") gets an untimed warm-up (200+ requests), then C clients
(one httpx.AsyncClient, keep-alive) send ~1 KB chat-completions prompts with PII, different in
every request (a unique name and e-mail on top of a pool of Faker prompts), for a fixed time.
Reported per target: sustained successful requests/s, median and p99 latency, error rate (non-2xx
or transport errors), the RSS (VmRSS) summed over the server's process tree (parent + workers)
after warm-up, at half time and at the end, the cores busy in each server process and in the load
generator (a worker left idle, or a saturated client, shows there), and the gateway/direct ratio.

Targets: pass-through >= 50% of direct throughput with zero errors; memory growth after warm-up
< 5% of the warm RSS (see MEMORY_NOTE). Everything runs on loopback; every server is killed at
exit, Ctrl-C included. A default run takes about 4 minutes, --quick about 2; `--duration 300` is
the 5-minute memory soak (about 28 minutes).

    .venv/bin/python bench/load.py [--duration SECONDS] [--concurrency C] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from faker import Faker

sys.path.insert(0, str(Path(__file__).resolve().parent))
import overhead as oh  # noqa: E402  (the sibling benchmark: servers, prompts, statistics, tables)

POOL = 300  # Faker prompts, each request adds a unique person on top
REQUEST_TIMEOUT_S = 30
WARMUP_REQUESTS, WARMUP_MAX_S = 200, 30  # models and caches settle before the first RSS reading
MAX_RPS_PER_CLIENT = 5000  # a bound on each client's loop count, far above what loopback allows
GROWTH_LIMIT = 0.05
MEMORY_NOTE = (f"memory target: growth after warm-up < {GROWTH_LIMIT:.0%} of the warm RSS. Allocator arenas, "
               "connection pools and caches move RSS by a few MB after warm-up, which this tolerates; a "
               "leak grows with the request count, so 'KB/req' shows the per-request bound a run can "
               "detect (a 30 s run is a smoke check, the 5-minute soak is the real test), and "
               "'2nd half' separates steady growth from a one-off step.")  # fmt: skip
CONFIGS = [("passthrough", 1), ("passthrough", 2), ("general", 1), ("general", 2)]


class Prompts:
    """~1 KB prompts, never the same twice: a pool of Faker notes plus a unique contact per request."""

    def __init__(self) -> None:
        fake, self.rng, self.n = Faker("en_US"), random.Random(7), 0
        self.pool = [oh.make_prompt(fake, 900_000 + i, 930) for i in range(POOL)]
        self.first = [fake.first_name() for _ in range(200)]
        self.last = [fake.last_name() for _ in range(200)]

    def next(self) -> bytes:
        self.n += 1
        first, last = self.rng.choice(self.first), self.rng.choice(self.last)
        extra = f" Also copy {first} {last} ({first.lower()}.{last.lower()}{self.n}@example.org)."
        return oh.chat_body(self.rng.choice(self.pool) + extra)


# ---------------------------------------------------------------- memory and CPU of a process tree
TICK = os.sysconf("SC_CLK_TCK")


def tree(root: int) -> dict[int, tuple[float, float]]:
    """{pid: (VmRSS in MB, CPU seconds)} of `root` and its descendants (parents found by scanning /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue  # exited meanwhile
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = {}, [root]
    while todo:
        pid = todo.pop(0)
        todo.extend(sorted(children.get(pid, [])))
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            rss = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmRSS:")]
            found[pid] = (int(rss[0].split()[1]) / 1024, (int(fields[11]) + int(fields[12])) / TICK)
        except (OSError, IndexError):
            pass  # gone, or a zombie
    return found


def rss_total(root: int) -> float:
    return sum(rss for rss, _ in tree(root).values())


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


# ---------------------------------------------------------------- load
@dataclass
class Run:
    name: str
    workers: int | str
    ok: list[float] = field(default_factory=list)  # latencies (ms) of 2xx answers
    errors: Counter[str] = field(default_factory=Counter)  # status code or exception name
    elapsed: float = 0.0
    rss: list[float] = field(default_factory=list)  # tree total after warm-up, at half time, at the end
    parts: list[float] = field(default_factory=list)  # after warm-up, per process (parent first)
    cpu: list[float] = field(default_factory=list)  # cores busy during the run, per process (parent first)
    client_cpu: float = 0.0  # cores busy in this process (the load generator)

    @property
    def rps(self) -> float:
        return len(self.ok) / self.elapsed if self.elapsed else 0.0

    @property
    def total(self) -> int:
        return len(self.ok) + sum(self.errors.values())


async def drive(url: str, prompts: Prompts, concurrency: int, duration: float, run: Run | None, pid: int) -> int:
    """`concurrency` clients send back to back until `duration` is over; results go to `run` (None: warm-up).

    Returns the number of answers (any status) received."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(trust_env=False, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        started, answered = time.perf_counter(), [0]
        deadline = started + duration

        async def one_client() -> None:
            for _ in range(int(duration * MAX_RPS_PER_CLIENT) + 1):
                if time.perf_counter() >= deadline:
                    return
                body, sent = prompts.next(), time.perf_counter()
                try:
                    response = await client.post(f"{url}/chat/completions", content=body, headers=oh.JSON)
                    error = "" if response.is_success else str(response.status_code)
                except httpx.TransportError as exc:
                    error = type(exc).__name__
                answered[0] += 1
                if run is not None and error:
                    run.errors[error] += 1
                elif run is not None:
                    run.ok.append(oh.ms(sent))

        async def half_time_rss() -> None:
            await asyncio.sleep(duration / 2)
            if run is not None:
                run.rss.append(rss_total(pid))

        async with asyncio.timeout(duration + REQUEST_TIMEOUT_S + 10), asyncio.TaskGroup() as group:
            for _ in range(concurrency):
                group.create_task(one_client())
            group.create_task(half_time_rss())
        if run is not None:
            run.elapsed = time.perf_counter() - started
        return answered[0]


def measure(run: Run, url: str, pid: int, prompts: Prompts, args: argparse.Namespace) -> Run:
    warmed, since = 0, time.monotonic()  # rounds of `warmup` s until WARMUP_REQUESTS, at most WARMUP_MAX_S
    while warmed < WARMUP_REQUESTS and time.monotonic() - since < WARMUP_MAX_S:
        warmed += asyncio.run(drive(url, prompts, args.concurrency, args.warmup, None, pid))
    warm, client_cpu = tree(pid), time.process_time()
    run.parts = [rss for rss, _ in warm.values()]
    run.rss.append(sum(run.parts))
    asyncio.run(drive(url, prompts, args.concurrency, args.duration, run, pid))
    end, run.client_cpu = tree(pid), (time.process_time() - client_cpu) / run.elapsed
    run.cpu = [(end[p][1] - warm[p][1]) / run.elapsed for p in warm if p in end]
    time.sleep(0.5)  # let the last responses' buffers go before the final reading
    run.rss.append(rss_total(pid))
    print(f"  {run.name} x{run.workers}: {run.rps:.0f} req/s, {sum(run.errors.values())} errors", flush=True)
    return run


# ---------------------------------------------------------------- servers
def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRIVGATE_") and "proxy" not in k.lower()}
    return env | {"NO_PROXY": "127.0.0.1,localhost"}


def start_gateway(procs: oh.Procs, tmp: Path, echo_url: str, domain: str, workers: int) -> str:
    home = tmp / f"{domain}-{workers}"
    (home / "policies").mkdir(parents=True)
    text = oh.PASSTHROUGH if domain == "passthrough" else oh.general_policy()[0]
    (home / "policies" / f"{domain}.yaml").write_text(text, encoding="utf-8")
    port = oh.free_port()
    env = server_env() | {
        "PRIVGATE_OPENAI_BASE_URL": echo_url, "PRIVGATE_ANTHROPIC_BASE_URL": echo_url.removesuffix("/v1"),
        "PRIVGATE_POLICY_DIR": str(home / "policies"), "PRIVGATE_DEFAULT_DOMAIN": domain,
        "PRIVGATE_DATA_DIR": str(home / "data"), "PRIVGATE_LOG_LEVEL": "warning",
        # a fixed key, as a deployment passes it (a Secret); workers then never race to create one
        "PRIVGATE_SECRET_KEY": "bench-load-secret-key-0123456789",
        "TMPDIR": str(home),  # `serve --workers` makes a metrics directory there: removed with the rest
    }  # fmt: skip
    privgate = str(Path(sys.executable).with_name("privgate"))
    # the schema first, as a deployment migrates before starting replicas: N workers meeting a fresh SQLite
    # file at once race to create it, and the loser stops the whole server
    subprocess.run([privgate, "db", "upgrade"], env=env, cwd=tmp, capture_output=True, timeout=120, check=True)
    argv = [privgate, "serve", "--host", oh.HOST, "--port", str(port), "--workers", str(workers)]
    oh.spawn(procs, f"gateway-{domain}-{workers}", argv, tmp, env)
    url = f"http://{oh.HOST}:{port}/v1"
    oh.wait_ready(procs[-1:], [url])
    return url


def stop(procs: oh.Procs) -> None:
    """Terminate each server, then SIGKILL its process group (workers included) whatever is left."""
    try:
        oh.stop_all(procs)
    finally:
        for _, proc, _ in procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):  # spawned in a session of its own
                os.killpg(proc.pid, signal.SIGKILL)
        procs.clear()


# ---------------------------------------------------------------- report
def report(runs: list[Run], args: argparse.Namespace) -> None:
    direct = runs[0].rps or float("nan")
    load: list[list[object]] = []
    memory: list[list[object]] = []
    for r in runs:
        errors = ", ".join(f"{k} x{v}" for k, v in r.errors.items()) or "-"
        error_rate = f"{sum(r.errors.values()) / max(r.total, 1):.2%}"
        cpu = "+".join(f"{c:.2f}" for c in r.cpu)
        load.append([r.name, r.workers, r.rps, r.rps / direct, oh.p50(r.ok), oh.p99(r.ok), r.total, error_rate,
                     errors, cpu, r.client_cpu])  # fmt: skip
        (before, half, after), growth = r.rss, r.rss[2] - r.rss[0]
        memory.append([r.name, r.workers, f"{before:.0f}", "+".join(f"{p:.0f}" for p in r.parts), f"{after:.0f}",
                       f"{growth:+.1f}", f"{growth / max(before, 1):+.1%}", f"{after - half:+.1f}",
                       f"{growth * 1024 / max(r.total, 1):+.2f}"])  # fmt: skip
    oh.table(f"Sustained load: {args.concurrency} clients, {args.duration:.0f} s per target after a "
             f"warm-up of {WARMUP_REQUESTS}+ requests; latency of 2xx answers in ms; cores busy in the server's "
             "processes (parent first) and in the load generator",
             ["target", "workers", "req/s", "vs direct", "p50", "p99", "requests", "err rate", "errors",
              "server CPU", "client CPU"],
             load)  # fmt: skip
    oh.table("Memory: VmRSS of the server's process tree in MB (after warm-up, per process parent first, at "
             "the end; growth over the run and over its 2nd half, per request in KB)",
             ["target", "workers", "warm", "warm per process", "end", "growth", "growth %", "2nd half", "KB/req"],
             memory)  # fmt: skip
    print(
        "\n  with --workers: the supervisor first, then its children by pid (the workers and multiprocessing's\n"
        "  ~13 MB resource tracker); a worker near 0 CPU got none of the keep-alive connections"
    )
    verdicts = []
    for r in runs[1:]:
        growth = (r.rss[2] - r.rss[0]) / max(r.rss[0], 1)
        if r.name == "passthrough":
            verdict = "PASS" if r.rps >= 0.5 * direct and not r.errors else "MISS"
            verdicts.append(f"passthrough x{r.workers}: {r.rps / direct:.0%} of direct, "
                            f"{sum(r.errors.values())} errors (target >= 50%, 0): {verdict}")  # fmt: skip
        verdict = "PASS" if growth < GROWTH_LIMIT else "MISS"
        verdicts.append(f"{r.name} x{r.workers}: memory growth {growth:+.1%} (target < {GROWTH_LIMIT:.0%}): {verdict}")
    busy = [f"{r.name} x{r.workers}" for r in runs if r.client_cpu > 0.9]
    if busy:  # then that target could have served more: a ratio to a client-bound 'direct' is flattering
        verdicts.append(f"the load generator used a whole core on: {', '.join(busy)}")
    print("\nTargets:\n  " + "\n  ".join(verdicts))
    print(f"\n{MEMORY_NOTE}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=None, help="seconds of load per target (default 30)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 8 s per target")
    args = parser.parse_args()
    args.duration = max(1.0, args.duration or (8.0 if args.quick else 30.0))
    args.concurrency = max(1, args.concurrency)
    args.warmup = 3.0 if args.quick else 5.0
    cores = len(os.sched_getaffinity(0))  # what nproc prints
    load_before = loadavg()
    print(f"machine: nproc {cores}; the load generator, the echo "
          "server and the gateway share them" + (": on 2 cores the client competes with the gateway, so "
          "absolute figures understate a dedicated replica" if cores <= 2 else ""), flush=True)  # fmt: skip
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the finally blocks still stop the servers
    started = time.monotonic()
    prompts = Prompts()
    echo_procs: oh.Procs = []
    with tempfile.TemporaryDirectory(prefix="privgate-load-") as tmp_name:
        tmp = Path(tmp_name)
        try:
            echo_url = oh.start_servers(echo_procs, tmp, {})["direct"]  # no policies: the echo server alone
            runs = [measure(Run("direct", "-"), echo_url, echo_procs[0][1].pid, prompts, args)]
            for domain, workers in CONFIGS:
                procs: oh.Procs = []
                try:
                    url = start_gateway(procs, tmp, echo_url, domain, workers)
                    runs.append(measure(Run(domain, workers), url, procs[0][1].pid, prompts, args))
                finally:
                    log = procs[0][2] if procs else None
                    stop(procs)
                lines = log.read_text(errors="replace").splitlines() if log else []
                lines = [line for line in lines if line.startswith("{") or "rror" in line]  # not the banner
                if lines:  # the gateways log at warning level: anything there is worth a look
                    print(f"    its log has {len(lines)} warning/error line(s), the last: {lines[-1][:300]}")
        finally:
            stop(echo_procs)
    report(runs, args)
    print(f"\nload average (1 min) before {load_before}, after {loadavg()}: other work skews the figures")
    print(f"\ntotal {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # the servers are already stopped by then
        sys.exit("interrupted")
