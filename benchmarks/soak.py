"""Soak (issue 10 §5): minutes of mixed load on one ``jotkit serve``, watching for leaks.

One real ``jotkit serve`` (one worker, SQLite, the default argon2 cost) and an asyncio load
generator with ``--clients`` virtual users. Each user loops: log in; then three times: 20
``GET /auth/me``, one refresh; one RFC 7662 introspection; a few bad tokens (garbage, a
tampered signature, an ``alg: none`` token) that must get 401; log out; and check that the
logged-out token gets 401. Every response is checked against what it must be; anything else,
or a transport error, is an *unexpected error*.

Every ``--sample`` seconds the server's RSS (``VmRSS``) and open file descriptors are read from
``/proc``; every five samples the RSS is also read *between logins* (new logins wait a moment
until the ones in flight are answered, so no argon2 hash holds its 64 MiB: the service's own
memory); per minute the p50/p99 of ``/auth/me`` and of the refresh are computed. After a
warm-up (``--warmup``), done means: 0 unexpected errors, RSS slope between logins under
1 MB/min (least squares), no file-descriptor growth, p99 steady (the last minute's within 2x
the first minute's after warm-up).

What the service keeps in memory is bounded: the verified-token cache by
``JOTKIT_TOKEN_CACHE_SIZE`` entries, the deny-list by the revocations of the last
``JOTKIT_ACCESS_TTL``. With the defaults (10,000 entries, 15 minutes) both still fill during a
10-minute run at this load (about 1,200 new tokens a minute, about 2 MB a minute) and the
slope would measure the filling, not a leak. So the soak runs the service with a 1,000-entry
cache and a 60 s access-token lifetime, which fill during the warm-up; anything that still
grows after it grows without a bound. ``--service-defaults`` runs the defaults instead.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--clients 8] [--service-defaults]

``--probe FILE`` runs the server under ``benchmarks/_soak_probe.py``, which records where its
memory is (``tracemalloc`` with ``--tracemalloc N``, glibc arenas, container sizes).

Writes ``benchmarks/results-soak.md``. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import os
import platform
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from _wrk import free_port  # benchmarks/_wrk.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results-soak.md"
PASSWORD = "soak-password-123"
CLIENT = ("soak-rs", secrets.token_urlsafe(24))


@dataclass
class Stats:
    counts: dict[str, int] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    # (elapsed seconds, endpoint, latency ms)
    latencies: list[tuple[float, str, float]] = field(default_factory=list)
    # logins sent and not yet answered: while one is, an argon2 hash may hold 64 MiB
    logins_in_flight: int = 0
    # cleared for a moment by the quiet sampler: no new login starts while it is clear
    login_gate: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, t0: float, what: str, ms: float) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1
        self.latencies.append((time.monotonic() - t0, what, ms))


def _proc_status(pid: int) -> tuple[float, int]:
    rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def _seed(env: dict[str, str], users: int) -> list[str]:
    from jotkit.server import Settings, SystemClock
    from jotkit.server.audit_log import AuditLog
    from jotkit.server.metrics import Metrics
    from jotkit.server.sessions import AuthService
    from jotkit.server.store.sql import SqlStore

    async def run() -> list[str]:
        settings = Settings.from_env(env)
        clock, metrics = SystemClock(), Metrics()
        store = SqlStore(settings.effective_database_url)
        svc = AuthService(settings, store, clock, metrics, AuditLog(clock, metrics))
        await store.start()
        emails = [f"soak{i}@example.com" for i in range(users)]
        for email in emails:
            await svc.add_user(email, PASSWORD)
        await store.close()
        svc.close()
        return emails

    return asyncio.run(run())


def _bad_tokens(access: str) -> list[str]:
    head, payload, sig = access.split(".")
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    none = base64.urlsafe_b64encode(b'{"alg":"none"}').rstrip(b"=").decode()
    return ["garbage", f"{head}.{payload}.{flipped}", f"{none}.{payload}.", "a.b.c"]


async def _user(client: httpx.AsyncClient, email: str, stats: Stats, t0: float,
                stop: float) -> None:
    async def call(what: str, expected: int, method: str, url: str,
                   **kw: object) -> httpx.Response | None:
        start = time.perf_counter()
        login = what == "login"
        stats.logins_in_flight += login
        try:
            r = await client.request(method, url, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            stats.unexpected.append(f"{what}: {type(exc).__name__}: {exc}")
            return None
        finally:
            stats.logins_in_flight -= login
        stats.record(t0, what, (time.perf_counter() - start) * 1000)
        if r.status_code != expected:
            stats.unexpected.append(f"{what}: {r.status_code} {r.text[:200]}")
            return None
        return r

    while time.monotonic() < stop:
        await stats.login_gate.wait()
        r = await call("login", 200, "POST", "/auth/login",
                       json={"email": email, "password": PASSWORD})
        if r is None:
            await asyncio.sleep(0.5)
            continue
        tokens = r.json()
        for _ in range(3):
            for _ in range(20):
                await call("me", 200, "GET", "/auth/me",
                           headers={"Authorization": f"Bearer {tokens['access_token']}"})
            r = await call("refresh", 200, "POST", "/auth/refresh",
                           json={"refresh_token": tokens["refresh_token"]})
            if r is None:
                break
            tokens = r.json()
        r = await call("introspect", 200, "POST", "/oauth/introspect", auth=CLIENT,
                       data={"token": tokens["access_token"]})
        if r is not None and r.json().get("active") is not True:
            stats.unexpected.append(f"introspect: inactive {r.text[:200]}")
        for bad in _bad_tokens(tokens["access_token"]):
            await call("bad-token", 401, "GET", "/auth/me",
                       headers={"Authorization": f"Bearer {bad}"})
        await call("logout", 200, "POST", "/auth/logout",
                   headers={"Authorization": f"Bearer {tokens['access_token']}"})
        await call("after-logout", 401, "GET", "/auth/me",
                   headers={"Authorization": f"Bearer {tokens['access_token']}"})


async def _sampler(pid: int, t0: float, stop: float, every: float,
                   samples: list[tuple[float, float, int]]) -> None:
    while time.monotonic() < stop:
        rss, fds = _proc_status(pid)
        samples.append((time.monotonic() - t0, rss, fds))
        await asyncio.sleep(every)


async def _quiet_sampler(pid: int, stats: Stats, t0: float, stop: float, every: float,
                         quiet: list[tuple[float, float]]) -> None:
    """Every ``every`` seconds, the RSS at a moment when no login is in flight: every hash has
    ended and unmapped its 64 MiB, so what is left is the service's own memory. The argon2
    pool is busy nearly all the time under this load, so such a moment is made: new logins
    wait (the other requests go on) until the ones in flight are answered, about one hash."""
    stats.login_gate.set()
    while time.monotonic() + every < stop:
        await asyncio.sleep(every)
        stats.login_gate.clear()
        try:
            give_up = time.monotonic() + 30
            while stats.logins_in_flight and time.monotonic() < give_up:
                await asyncio.sleep(0.005)
            if not stats.logins_in_flight:
                quiet.append((time.monotonic() - t0, _proc_status(pid)[0]))
        finally:
            stats.login_gate.set()


async def _load(url: str, emails: list[str], pid: int, seconds: float, every: float
                ) -> tuple[Stats, list[tuple[float, float, int]], list[tuple[float, float]]]:
    stats, samples, quiet = Stats(), [], []
    t0 = time.monotonic()
    stop = t0 + seconds
    limits = httpx.Limits(max_connections=len(emails) + 4)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        await asyncio.gather(_sampler(pid, t0, stop, every, samples),
                             _quiet_sampler(pid, stats, t0, stop, every * 5, quiet),
                             *(_user(client, e, stats, t0, stop) for e in emails))
    return stats, samples, quiet


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope (y per x)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes excluded from slopes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sample", type=float, default=2.0)
    parser.add_argument("--probe", type=Path, default=None,
                        help="run the server under benchmarks/_soak_probe.py, records to this file")
    parser.add_argument("--tracemalloc", type=int, default=0, help="with --probe: frames")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--token-cache-size", type=int, default=1000,
                        help="JOTKIT_TOKEN_CACHE_SIZE of the server (fills during the warm-up)")
    parser.add_argument("--access-ttl", type=float, default=60.0,
                        help="JOTKIT_ACCESS_TTL of the server in seconds (under the warm-up)")
    parser.add_argument("--service-defaults", action="store_true",
                        help="the service's own cache size and access-token lifetime instead")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="jotkit-soak-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env.update(JOTKIT_DATA_DIR=str(tmp), JOTKIT_PORT=str(port), JOTKIT_LOG_LEVEL="WARNING",
               JOTKIT_LOGIN_IP_LIMIT="1000000", JOTKIT_LOGIN_PAIR_LIMIT="1000000",
               JOTKIT_LOGIN_ACCOUNT_LIMIT="1000000",
               JOTKIT_INTROSPECTION_CLIENTS=f"{CLIENT[0]}:{CLIENT[1]}")
    if args.service_defaults:
        args.token_cache_size = args.access_ttl = None
    else:
        env["JOTKIT_TOKEN_CACHE_SIZE"] = str(args.token_cache_size)
        env["JOTKIT_ACCESS_TTL"] = f"{args.access_ttl:g}"
    emails = _seed(env, args.clients)
    command = [str(Path(sys.executable).with_name("jotkit")), "serve"]
    if args.probe is not None:
        command = [sys.executable, str(ROOT / "benchmarks" / "_soak_probe.py"),
                   "--out", str(args.probe), "--tracemalloc", str(args.tracemalloc),
                   "--base", str(args.warmup * 60),
                   "--every", "60" if args.tracemalloc else "20"]
    proc = subprocess.Popen(command, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit("jotkit serve did not start")
            time.sleep(0.1)
        started = dt.datetime.now(dt.UTC)
        stats, samples, quiet = asyncio.run(
            _load(url, emails, proc.pid, args.minutes * 60, args.sample))
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    _write(args, started, stats, samples, quiet)


def _write(args: argparse.Namespace, started: dt.datetime, stats: Stats,
           samples: list[tuple[float, float, int]], quiet: list[tuple[float, float]]) -> None:
    warm = args.warmup * 60
    # Each login's argon2 hash maps 64 MiB while it runs and unmaps it when done, so a sample
    # taken at any time reads the service's memory plus 0, 1 or 2 hashes (the per-minute lowest
    # and highest samples below swing by 64-128 MB). The slope that decides is taken over the
    # samples read while no login was in flight ("between logins": every hash had ended), the
    # service's own memory; the per-minute lowest sample and every sample are shown as well.
    steady = [(t / 60, rss) for t, rss, _fds in samples if t >= warm]
    floors: dict[int, float] = {}
    for t, rss in steady:
        floors[int(t)] = min(rss, floors.get(int(t), rss))
    base = [(m + 0.5, rss) for m, rss in sorted(floors.items())]
    low_slope = _slope(base) if len(base) > 2 else float("nan")
    all_slope = _slope(steady) if len(steady) > 2 else float("nan")
    calm = [(t / 60, rss) for t, rss in quiet if t >= warm]
    rss_slope = _slope(calm) if len(calm) > 2 else float("nan")
    fds_after = [fds for t, _rss, fds in samples if t >= warm]
    minutes = int(args.minutes)
    rows = []
    for m in range(minutes):
        window = [(what, ms) for t, what, ms in stats.latencies if m * 60 <= t < (m + 1) * 60]
        me = [ms for what, ms in window if what == "me"]
        ref = [ms for what, ms in window if what == "refresh"]
        rows.append((m + 1, len(window) / 60, _pct(me, 0.5), _pct(me, 0.99), _pct(ref, 0.99)))
    first = next((r for r in rows if (r[0] - 1) * 60 >= warm), rows[0] if rows else None)
    last = rows[-1] if rows else None
    p99_steady = bool(first and last and last[3] <= 2 * first[3])
    total = sum(stats.counts.values())
    verdicts = [
        ("unexpected errors", f"{len(stats.unexpected)}", not stats.unexpected),
        ("RSS slope after warm-up, between logins "
         f"({len(calm)} samples with no argon2 hash in flight)",
         f"{rss_slope:+.2f} MB/min (< 1; per-minute lowest sample {low_slope:+.2f}, "
         f"every sample {all_slope:+.2f})",
         abs(rss_slope) < 1.0),
        ("file descriptors after warm-up",
         f"{min(fds_after)}..{max(fds_after)} (first {fds_after[0]}, last {fds_after[-1]})"
         if fds_after else "-", bool(fds_after) and fds_after[-1] <= fds_after[0] + 2),
        ("/auth/me p99, last minute vs first after warm-up",
         f"{last[3]:.1f} ms vs {first[3]:.1f} ms" if first and last else "-", p99_steady),
    ]
    load = os.getloadavg()
    bounds = ("the service's default token cache and access-token lifetime"
              if args.token_cache_size is None else
              f"`JOTKIT_TOKEN_CACHE_SIZE={args.token_cache_size}` and `JOTKIT_ACCESS_TTL="
              f"{args.access_ttl:g}` s so that the bounded caches fill during the warm-up")
    lines = [
        "# Soak (benchmarks/soak.py, issue 10 §5)", "",
        f"Run {started:%Y-%m-%d %H:%M UTC}, {args.minutes:g} minutes ({args.warmup:g} warm-up), "
        f"{args.clients} virtual users on one `jotkit serve` (1 worker, SQLite, default argon2 "
        f"cost, {bounds}); {platform.machine()}, {os.cpu_count()} cores shared with the load "
        f"generator and other jobs, Python {platform.python_version()}. Load average at the end: "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.", "",
        f"Requests: {total} ({total / (args.minutes * 60):.0f}/s); "
        + ", ".join(f"{k} {v}" for k, v in sorted(stats.counts.items())) + ".", "",
        "| check | measured | pass |", "|---|---|---|",
        *(f"| {name} | {value} | {'yes' if ok else '**NO**'} |" for name, value, ok in verdicts),
        "", "Per minute:", "",
        "| minute | req/s | /auth/me p50 ms | /auth/me p99 ms | refresh p99 ms |",
        "|---:|---:|---:|---:|---:|",
        *(f"| {m} | {rps:.0f} | {p50:.1f} | {p99:.1f} | {rp99:.1f} |"
          for m, rps, p50, p99, rp99 in rows),
        "", "Server RSS and open file descriptors per minute:", "",
        "| minute | RSS between logins MB (median, samples) | lowest RSS MB | highest RSS MB "
        "| fds at the end |", "|---:|---:|---:|---:|---:|",
    ]
    for m in range(minutes):
        window = [(rss, fds) for t, rss, fds in samples if m * 60 <= t < (m + 1) * 60]
        between = [rss for t, rss in quiet if m * 60 <= t < (m + 1) * 60]
        if window:
            lines.append(f"| {m + 1} | {_pct(between, 0.5):.1f} ({len(between)}) | "
                         f"{min(r for r, _ in window):.1f} | "
                         f"{max(r for r, _ in window):.1f} | {window[-1][1]} |")
    if stats.unexpected:
        lines += ["", "Unexpected errors (first 20):", ""]
        lines += [f"- `{e}`" for e in stats.unexpected[:20]]
    args.results.write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:16]))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
