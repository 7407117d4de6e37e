"""Load benchmark of the auth service (issue 3): req/s and p50/p99 latency.

Starts, on free ports, (1) the jotkit service with uvicorn, one worker, default ES256 keys,
and (2) a bare FastAPI app with one unauthenticated endpoint returning a similar JSON body.
Loads ``GET /bare``, ``GET /auth/me`` (one valid access token) and ``POST /auth/refresh``
(a pool of sessions; every response's new refresh token is used next) with ``wrk`` when it is
installed (Debian package ``wrk``), otherwise with a bounded httpx async load generator.
Then the login-flood scenario (``benchmarks/_login_flood.py``, issue 10 §2): /auth/me alone
and during a flood of 64 connections sending correct logins at the default argon2id cost.
Appends markdown tables to ``benchmarks/results-service.md``.

    .venv/bin/python benchmarks/bench_service.py [--duration 8] [--connections 32]
        [--flood-rounds 3] [--flood-only]   (JOTKIT_ARGON2_WORKERS/_QUEUE reach the service)
    .venv/bin/python benchmarks/bench_service.py --me-only [--me-rounds 5] [--callgrind]

``--me-only`` runs just the bare endpoint and ``/auth/me``: 5 interleaved rounds (the order
alternates round by round), medians of req/s and of server CPU per request, the ratio per
round; ``--callgrind`` adds instructions per request of each server under valgrind
(``(Ir(N) - Ir(0)) / N`` over the whole process: uvicorn, the app, the event loop), which
does not move with the machine's load. wrk rounds are timed: run them under
``flock /tmp/jotkit-bench.lock``; ``--me-only --me-rounds 0 --callgrind`` counts
instructions only (no lock needed).

Not a test: nothing here asserts timings. Target (issue 10 §4): /auth/me >= 90 % of the bare
endpoint, by req/s and by server CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _oauth_load import INTROSPECTION_CLIENT, TARGETS  # benchmarks/_oauth_load.py
from _servers import cpu_seconds  # benchmarks/_servers.py
from _wrk import REFRESH_LUA, free_port, parse_wrk, wrk_command  # benchmarks/_wrk.py

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results-service.md"
PASSWORD = "bench-password-123"


# -- server processes --------------------------------------------------------------------
def _serve(kind: str, port: int, data_dir: str) -> None:
    import uvicorn

    if kind == "bare":
        from fastapi import FastAPI

        app = FastAPI()

        @app.get("/bare")
        async def bare() -> dict[str, object]:
            return {
                "id": "0123456789abcdef0123456789abcdef",
                "email": "bench@example.com",
                "roles": ["user"],
                "session": {"id": "abcdefghijklmnopqrstuv", "authenticated_at": 1,
                            "token_issued_at": 1, "token_expires_at": 2},
            }

        uvicorn.run(app, host="127.0.0.1", port=port, workers=1, log_level="warning",
                    access_log=False)
        return
    from jotkit.server import Settings, create_app

    settings = Settings.from_env(
        {"JOTKIT_DATA_DIR": data_dir, "JOTKIT_PORT": str(port), "JOTKIT_LOGIN_IP_LIMIT": "100000",
         "JOTKIT_LOGIN_ACCOUNT_LIMIT": "100000", "JOTKIT_LOGIN_PAIR_LIMIT": "100000",
         "JOTKIT_LOG_LEVEL": "WARNING", "JOTKIT_CLIENT_AUTH_LIMIT": "100000",
         "JOTKIT_INTROSPECTION_CLIENTS": ":".join(INTROSPECTION_CLIENT),
         **{k: v for k, v in os.environ.items() if k.startswith("JOTKIT_ARGON2_")}}
    )
    from jotkit.server.serving import uvicorn_options  # what `jotkit serve` runs

    uvicorn.run(create_app(settings), **uvicorn_options(settings, workers=1, log_level="warning"))


def _start(kind: str, data_dir: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--data-dir", data_dir],
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + ("/bare" if kind == "bare" else "/healthz"), timeout=1)
            return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


def _add_user(data_dir: str) -> None:
    from jotkit.server import Settings, SystemClock
    from jotkit.server.audit_log import AuditLog
    from jotkit.server.metrics import Metrics
    from jotkit.server.sessions import AuthService
    from jotkit.server.store.sql import SqlStore

    async def run() -> None:
        settings = Settings.from_env({"JOTKIT_DATA_DIR": data_dir})
        clock, metrics = SystemClock(), Metrics()
        svc = AuthService(settings, SqlStore(settings.effective_database_url), clock, metrics,
                          AuditLog(clock, metrics))
        await svc.store.start()
        await svc.add_user("bench@example.com", PASSWORD)
        await svc.store.close()

    asyncio.run(run())


# -- load generators ---------------------------------------------------------------------
def _measured(pid: int, run):  # type: ignore[no-untyped-def]
    before = cpu_seconds(pid)
    result = run()
    used = cpu_seconds(pid) - before
    total = result["rps"] * result["duration"]
    result["cpu_us"] = used / total * 1e6 if total else float("nan")
    return result


def _wrk(url: str, duration: int, connections: int, headers: dict[str, str] | None = None,
         script: str | None = None) -> dict[str, float]:
    cmd = wrk_command(url, duration, connections, headers, script)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return {**parse_wrk(out), "duration": float(duration)}


async def _httpx_load(url: str, duration: float, connections: int, method: str,
                      headers: dict[str, str] | None, tokens: list[str] | None
                      ) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration

    async def worker(client: httpx.AsyncClient, token: str | None) -> None:
        nonlocal errors
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            if method == "GET":
                r = await client.get(url, headers=headers)
            else:
                r = await client.post(url, json={"refresh_token": token})
                if r.status_code == 200:
                    token = r.json()["refresh_token"]
            latencies.append((time.perf_counter() - t0) * 1000)
            errors += r.status_code != 200

    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        started = time.perf_counter()
        await asyncio.gather(*[
            worker(client, tokens[i] if tokens else None) for i in range(connections)
        ])
        elapsed = time.perf_counter() - started
    q = statistics.quantiles(latencies, n=100)
    return {"rps": len(latencies) / elapsed, "p50": q[49], "p99": q[98], "errors": errors,
            "duration": elapsed}


# -- in-process ASGI comparison ---------------------------------------------------------
def _asgi_cpu(data_dir: str, iterations: int = 20000, rounds: int = 3) -> tuple[float, float]:
    """CPU µs per request of the bare app and of /auth/me, calling the ASGI apps directly
    (no sockets, no HTTP parsing): the cost of the app itself, measured with process time,
    so it barely moves with the machine's load. Returns the best of ``rounds`` for each."""
    from fastapi import FastAPI

    from jotkit.server import Settings, create_app
    from jotkit.server.sessions import ClientInfo

    bare = FastAPI()

    @bare.get("/bare")
    async def bare_endpoint() -> dict[str, object]:
        return {"id": "0123456789abcdef0123456789abcdef", "email": "bench@example.com",
                "roles": ["user"], "session": {"id": "abcdefghijklmnopqrstuv",
                                               "authenticated_at": 1, "token_issued_at": 1,
                                               "token_expires_at": 2}}

    app = create_app(Settings.from_env({"JOTKIT_DATA_DIR": data_dir,
                                        "JOTKIT_LOG_LEVEL": "WARNING"}))

    async def call(target, path: str, headers: list[tuple[bytes, bytes]]) -> None:  # type: ignore[no-untyped-def]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: object) -> None:
            return None

        await target(scope, receive, send)

    async def run() -> tuple[float, float]:
        async with app.router.lifespan_context(app):
            svc = app.state.service
            issued = await svc.login("bench@example.com", PASSWORD, ClientInfo("127.0.0.1", "b"))
            auth = [(b"host", b"x"), (b"authorization", b"Bearer " + issued.access_token.encode())]
            best = {"bare": float("inf"), "me": float("inf")}
            for _ in range(rounds):
                for name, target, path, hdr in (("bare", bare, "/bare", [(b"host", b"x")]),
                                                ("me", app, "/auth/me", auth)):
                    t0 = time.process_time()
                    for _ in range(iterations):
                        await call(target, path, hdr)
                    cost = (time.process_time() - t0) / iterations * 1e6
                    best[name] = min(best[name], cost)
            return best["bare"], best["me"]

    return asyncio.run(run())


# -- main --------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--serve", choices=["bare", "service"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--flood-rounds", type=int, default=3)
    parser.add_argument("--flood-only", action="store_true")
    parser.add_argument("--me-only", action="store_true",
                        help="only the bare endpoint vs /auth/me, interleaved rounds")
    parser.add_argument("--me-rounds", type=int, default=5)
    parser.add_argument("--callgrind", action="store_true",
                        help="with --me-only: instructions per request under valgrind")
    parser.add_argument("--callgrind-requests", type=int, default=2000)
    parser.add_argument("--no-flood", action="store_true",
                        help="skip the login-flood scenario (argon2 at full cost)")
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, args.data_dir)
        return
    if args.flood_only:
        _flood(args)
        return
    if args.me_only:
        _me_only(args)
        return

    use_wrk = shutil.which("wrk") is not None
    conns = args.connections
    tool = f"wrk -t1 -c{conns}" if use_wrk else f"httpx async ({conns} conns)"
    tmp = tempfile.mkdtemp(prefix="jotkit-bench-")
    _add_user(tmp)
    asgi_bare, asgi_me = _asgi_cpu(tmp)
    bare_proc, bare_url = _start("bare", tmp)
    svc_proc, svc_url = _start("service", tmp)
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        with httpx.Client(base_url=svc_url, timeout=60) as c:
            def session() -> dict[str, str]:
                r = c.post("/auth/login", json={"email": "bench@example.com",
                                                "password": PASSWORD})
                r.raise_for_status()
                return r.json()

            access = session()["access_token"]
            refresh_tokens = [session()["refresh_token"] for _ in range(args.connections + 4)]
        auth = {"Authorization": f"Bearer {access}"}
        # warm-up
        for url, hdr in ((bare_url + "/bare", None), (svc_url + "/auth/me", auth)):
            for _ in range(200):
                httpx.get(url, headers=hdr)
        for rnd in range(args.rounds):
            if use_wrk:
                bare = _measured(bare_proc.pid, lambda: _wrk(
                    bare_url + "/bare", args.duration, args.connections))
                me = _measured(svc_proc.pid, lambda: _wrk(
                    svc_url + "/auth/me", args.duration, args.connections, auth))
            else:
                bare = _measured(bare_proc.pid, lambda: asyncio.run(_httpx_load(
                    bare_url + "/bare", args.duration, args.connections, "GET", None, None)))
                me = _measured(svc_proc.pid, lambda: asyncio.run(_httpx_load(
                    svc_url + "/auth/me", args.duration, args.connections, "GET", auth, None)))
            rows.append((f"bare FastAPI GET /bare (round {rnd + 1})", bare))
            rows.append((f"jotkit GET /auth/me (round {rnd + 1})", me))
        pool = refresh_tokens[: args.connections + 4]
        if use_wrk:
            script = Path(tmp) / "refresh.lua"
            script.write_text(REFRESH_LUA % ",".join(json.dumps(t) for t in pool))
            rows.append(("jotkit POST /auth/refresh", _measured(svc_proc.pid, lambda: _wrk(
                svc_url, args.duration, args.connections, script=str(script)))))
        else:
            rows.append(("jotkit POST /auth/refresh", _measured(svc_proc.pid, lambda: asyncio.run(
                _httpx_load(svc_url + "/auth/refresh", args.duration, args.connections, "POST",
                            None, pool)))))
        if use_wrk:
            rows += _oauth_rows(args, tmp, svc_proc.pid, svc_url)
        else:
            print("token-endpoint rows skipped: they need wrk")
    finally:
        for proc in (bare_proc, svc_proc):
            proc.terminate()
            proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)

    bare_best = max(r["rps"] for name, r in rows if name.startswith("bare"))
    me_best = max(r["rps"] for name, r in rows if "/auth/me" in name)
    ratio = me_best / bare_best
    bare_cpu = min(r["cpu_us"] for name, r in rows if name.startswith("bare"))
    me_cpu = min(r["cpu_us"] for name, r in rows if "/auth/me" in name)
    load = os.getloadavg()[0]
    lines = [
        "",
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} — {tool}, {args.duration} s per run",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}; uvicorn 1 worker; ES256 keys.",
        "",
        f"Load average at the end: {load:.1f} (other jobs share the machine; req/s and latency"
        " move with it, server CPU per request much less).",
        "",
        "| endpoint | req/s | p50 ms | p99 ms | server CPU µs/req | non-2xx |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows:
        lines.append(f"| {name} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                     f"{r['cpu_us']:.0f} | {int(r['errors'])} |")
    oauth = [(name, r) for name, r in rows if name.startswith("OAuth")]
    if oauth:
        lines += ["", "Token-endpoint targets (issue 11, one worker):", ""]
        for name, r in oauth:
            row = name.removeprefix("OAuth ").split(" (")[0]
            target = TARGETS[row]
            lines.append(f"- {row}: {r['rps']:.0f} req/s vs target {target:.0f} "
                         f"(**{r['rps'] / target:.0%}**), {r['cpu_us']:.0f} µs server CPU/req")
    lines += [
        "",
        f"/auth/me vs bare, best req/s: **{ratio:.0%}**; by server CPU per request "
        f"(capacity of one worker): **{bare_cpu / me_cpu:.0%}** (target >= 90 %).",
        "",
        f"In-process ASGI calls (no sockets; process CPU, best of 3 x 20000): bare "
        f"{asgi_bare:.0f} µs, /auth/me {asgi_me:.0f} µs per request -> "
        f"**{asgi_bare / asgi_me:.0%}**.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text("# Auth service load benchmark (benchmarks/bench_service.py)\n")
    with RESULTS.open("a") as fh:
        fh.write(text)
    if args.no_flood:
        print("login flood scenario skipped (--no-flood)")
    elif shutil.which("wrk") is not None:
        _flood(args)
    else:
        print("login flood scenario skipped: it needs wrk")


def _me_only(args: argparse.Namespace) -> None:
    """The bare endpoint vs ``GET /auth/me`` only (issue 10 §4): ``--me-rounds`` interleaved
    wrk rounds on one pair of servers, medians, the ratio per round; optionally callgrind."""
    if args.me_rounds and shutil.which("wrk") is None:
        raise SystemExit("--me-only needs wrk (apt-get install wrk)")
    tmp = tempfile.mkdtemp(prefix="jotkit-bench-")
    _add_user(tmp)
    load_before = os.getloadavg()
    bare_proc, bare_url = _start("bare", tmp)
    svc_proc, svc_url = _start("service", tmp)
    rounds: list[tuple[dict[str, float], dict[str, float]]] = []
    try:
        r = httpx.post(svc_url + "/auth/login", json={"email": "bench@example.com",
                                                      "password": PASSWORD}, timeout=60)
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        for url, hdr in ((bare_url + "/bare", None), (svc_url + "/auth/me", auth)):
            for _ in range(200):  # warm-up
                httpx.get(url, headers=hdr).raise_for_status()
        for rnd in range(args.me_rounds):
            def bare() -> dict[str, float]:
                return _measured(bare_proc.pid, lambda: _wrk(
                    bare_url + "/bare", args.duration, args.connections))

            def me() -> dict[str, float]:
                return _measured(svc_proc.pid, lambda: _wrk(
                    svc_url + "/auth/me", args.duration, args.connections, auth))

            if rnd % 2 == 0:  # alternate the order: a load drift hits both sides alike
                b = bare()
                m = me()
            else:
                m = me()
                b = bare()
            rounds.append((b, m))
    finally:
        for proc in (bare_proc, svc_proc):
            proc.terminate()
            proc.wait(timeout=30)
    irs = None
    if args.callgrind:
        port = int(svc_url.rsplit(":", 1)[1])
        irs = _callgrind_me(tmp, port, auth, args.callgrind_requests)
    shutil.rmtree(tmp, ignore_errors=True)
    load_after = os.getloadavg()

    tool = f"wrk -t1 -c{args.connections}, {args.duration} s per run" if rounds else (
        "callgrind only")

    def med(side: int, key: str) -> float:
        return statistics.median(r[side][key] for r in rounds)

    lines = [
        "",
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} — /auth/me vs bare only "
        f"(`--me-only`), {tool}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}; uvicorn 1 worker each; ES256 keys. Load average "
        f"(1/5/15 min) before {'/'.join(f'{x:.2f}' for x in load_before)}, after "
        f"{'/'.join(f'{x:.2f}' for x in load_after)}.",
        "",
    ]
    if rounds:
        lines += [
            "| round | bare req/s | /auth/me req/s | ratio | bare CPU µs/req | /auth/me CPU µs/req "
            "| CPU ratio (bare/me) | bare p99 ms | /auth/me p99 ms | non-2xx |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for i, (b, m) in enumerate(rounds, 1):
            lines.append(
                f"| {i}{' (me first)' if i % 2 == 0 else ''} | {b['rps']:.0f} | {m['rps']:.0f} | "
                f"{m['rps'] / b['rps']:.2f} | {b['cpu_us']:.1f} | {m['cpu_us']:.1f} | "
                f"{b['cpu_us'] / m['cpu_us']:.2f} | {b['p99']:.2f} | {m['p99']:.2f} | "
                f"{int(b['errors'] + m['errors'])} |")
        ratios = [m["rps"] / b["rps"] for b, m in rounds]
        cpu_ratios = [b["cpu_us"] / m["cpu_us"] for b, m in rounds]
        lines.append(
            f"| **median** | **{med(0, 'rps'):.0f}** | **{med(1, 'rps'):.0f}** | "
            f"**{statistics.median(ratios):.2f}** | **{med(0, 'cpu_us'):.1f}** | "
            f"**{med(1, 'cpu_us'):.1f}** | **{statistics.median(cpu_ratios):.2f}** | "
            f"{med(0, 'p99'):.2f} | {med(1, 'p99'):.2f} | |")
        lines += [
            "",
            f"/auth/me vs bare (target >= 0.90): median req/s {med(1, 'rps'):.0f} / "
            f"{med(0, 'rps'):.0f} = **{med(1, 'rps') / med(0, 'rps'):.2f}x** (median of the "
            f"per-round ratios {statistics.median(ratios):.2f}, range {min(ratios):.2f}-"
            f"{max(ratios):.2f}); server CPU per request, bare / me: "
            f"**{med(0, 'cpu_us') / med(1, 'cpu_us'):.2f}x**.",
            "",
        ]
    if irs is not None:
        n = args.callgrind_requests
        lines += [
            f"Instructions per request under callgrind (whole server process, "
            f"(Ir(300 + {n}) - Ir(300)) / {n} requests on one keep-alive connection after "
            f"300 warm-up ones): bare {irs['bare']:,.0f}, /auth/me {irs['service']:,.0f}"
            f" -> bare / me **{irs['bare'] / irs['service']:.2f}x**.",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text("# Auth service load benchmark (benchmarks/bench_service.py)\n")
    with RESULTS.open("a") as fh:
        fh.write(text)


def _keep_alive_gets(url: str, path: str, headers: dict[str, str], n: int) -> None:
    """``n`` sequential GETs on one keep-alive connection (a raw socket: no client library
    work to speak of), each answer read in full and checked to be a 200."""
    import socket

    host, port = url.removeprefix("http://").split(":")
    head = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    request = head.encode()
    with socket.create_connection((host, int(port)), timeout=600) as sock:
        buf = b""
        for _ in range(n):
            sock.sendall(request)
            while b"\r\n\r\n" not in buf:
                buf += sock.recv(65536)
            top, _, buf = buf.partition(b"\r\n\r\n")
            if not top.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(top.decode("latin-1"))
            length = int(re.search(rb"(?i)content-length: *(\d+)", top).group(1))  # type: ignore[union-attr]
            while len(buf) < length:
                buf += sock.recv(65536)
            buf = buf[length:]


def _callgrind_me(data_dir: str, service_port: int, auth: dict[str, str], n: int,
                  warm: int = 300) -> dict[str, float]:
    """Instructions per request of each server process under callgrind: the server is
    started under valgrind, answers ``warm`` requests (so first-request work cancels out),
    then ``n`` more or none, and is stopped (SIGINT, uvicorn's graceful exit); the result is
    ``(Ir(warm + n) - Ir(warm)) / n``. Uses the data directory, the port (the issuer names
    it) and the access token of the wrk rounds' service (the token lives 15 min; no login,
    hence no argon2, under valgrind)."""
    import signal

    irs: dict[str, float] = {}
    for kind in ("bare", "service"):
        counts = []
        for extra in (0, n):
            port = free_port() if kind == "bare" else service_port
            proc = subprocess.Popen(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                 sys.executable, __file__, "--serve", kind, "--port", str(port),
                 "--data-dir", data_dir],
                cwd=ROOT, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 900
                while True:
                    try:
                        httpx.get(url + ("/bare" if kind == "bare" else "/healthz"), timeout=5)
                        break
                    except httpx.HTTPError:
                        if time.monotonic() > deadline or proc.poll() is not None:
                            raise RuntimeError(f"{kind} did not start under valgrind") from None
                        time.sleep(0.5)
                path = "/bare" if kind == "bare" else "/auth/me"
                _keep_alive_gets(url, path, {} if kind == "bare" else auth, warm + extra)
            finally:
                proc.send_signal(signal.SIGINT)
                _, err = proc.communicate(timeout=600)
            found = re.search(r"Collected : (\d+)", err)
            if not found:
                raise RuntimeError(err[-2000:])
            counts.append(int(found.group(1)))
        irs[kind] = (counts[1] - counts[0]) / n
    return irs


def _oauth_rows(args: argparse.Namespace, tmp: str, pid: int, url: str
                ) -> list[tuple[str, dict[str, float]]]:
    """client_credentials, code exchange and introspection under wrk (issue 11 targets)."""
    import _oauth_load as oauth

    reg = oauth.register(tmp)
    with httpx.Client(base_url=url, timeout=60) as c:
        r = c.post("/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(reg["cc_id"], reg["cc_secret"]))
        r.raise_for_status()
        access = r.json()["access_token"]
    duration = min(args.duration, 5)  # codes live 60 s: make them just before the run
    codes, verifier = oauth.make_codes(tmp, reg, 1500 * duration)
    scripts = oauth.scripts(tmp, reg, codes, verifier, access)
    out = []
    for name in ("client_credentials", "code exchange", "introspection"):
        target = url + oauth.paths()[name]
        seconds = duration if name == "code exchange" else args.duration
        script = scripts[name]
        out.append((f"OAuth {name} (POST {oauth.paths()[name]})", _measured(
            pid, lambda t=target, d=seconds, s=script: _wrk(t, d, args.connections, script=s))))
    return out


def _flood(args: argparse.Namespace) -> None:
    """The login-flood scenario on a fresh service (default argon2id cost)."""
    from _login_flood import run_flood  # benchmarks/_login_flood.py

    from jotkit.server import Settings

    tmp = tempfile.mkdtemp(prefix="jotkit-bench-")
    _add_user(tmp)
    proc, url = _start("service", tmp)
    try:
        r = httpx.post(url + "/auth/login", json={"email": "bench@example.com",
                                                  "password": PASSWORD}, timeout=60)
        r.raise_for_status()
        token = r.json()["access_token"]
        for _ in range(200):  # warm-up
            httpx.get(url + "/auth/me", headers={"Authorization": f"Bearer {token}"})
        workers = Settings.from_env().effective_argon2_workers
        lines = run_flood(url, proc.pid, token, "bench@example.com", PASSWORD, workers=workers,
                          duration=args.duration, connections=args.connections,
                          rounds=args.flood_rounds)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(tmp, ignore_errors=True)
    head = [
        "",
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC} — login flood (issue 10 §2)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores (shared), Python "
        f"{platform.python_version()}; uvicorn 1 worker. Load average at the end "
        f"(1/5/15 min): {'/'.join(f'{x:.1f}' for x in os.getloadavg())}.",
        "",
    ]
    text = "\n".join(head + lines)
    print(text)
    with RESULTS.open("a") as fh:
        fh.write(text)


if __name__ == "__main__":
    main()
