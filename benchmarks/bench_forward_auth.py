"""Load benchmark of ``jotkit forward-auth`` (issue 14 §1): req/s against a bare endpoint.

Starts two servers on free ports with the same stack (uvicorn, the hardened httptools
protocol, the options of ``jotkit.edge.uvicorn_options``), each in its own process:

* **forward-auth**: ``jotkit.edge.serve`` verifying ES256 access tokens through a local JWKS
  server, with a ``[[paths]]`` rule and a ``--claim-header`` mapping, as deployed;
* **bare**: a raw ASGI app answering every request 200 with an empty body;
* **floor**: the bare app answering with the very headers forward-auth answers for the
  token (fetched from it once): what sending them costs in uvicorn, without any verifying.

wrk loads all three with the same request headers (one valid token, seen before, as for a
client's repeated requests) in alternating rounds. The table gives the medians, the ratio per
round, the server's CPU time per request (from /proc: a saturated server's req/s follows it,
and it is far less sensitive than req/s to the other processes on the machine) and the load
average. Target: forward-auth >= 0.9x bare.

    .venv/bin/python benchmarks/bench_forward_auth.py [--duration 5] [--rounds 5]
        [--connections 16] [--output benchmarks/results-forward-auth.md]
    .venv/bin/python benchmarks/bench_forward_auth.py --profile   # cProfile of one app call
    .venv/bin/python benchmarks/bench_forward_auth.py --callgrind [--requests 2000]

``--callgrind`` counts the instructions each server process executes per request (valgrind's
callgrind, total with N requests minus total with N/4, over one keep-alive connection from
a plain socket client): unlike req/s it repeats within about 1% on a busy machine. It
counts user space only (uvicorn, the app, the event loop), not the kernel's socket work,
which is the same for every server, so its ratio is a lower bound of the req/s ratio of a
saturated server.

Not a test: nothing here asserts timings.
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
import time
from pathlib import Path
from typing import Any

import httpx
from _servers import cpu_seconds, jwks_server  # benchmarks/_servers.py
from _wrk import free_port, parse_wrk, wrk_command  # benchmarks/_wrk.py

import jotkit

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results-forward-auth.md"
ISSUER, AUDIENCE = "https://auth.bench", "orders"
RULES = '[[paths]]\nprefix = "/admin/"\nroles = ["admin"]\n'


def bare_app(headers: list[tuple[bytes, bytes]]) -> Any:
    """An ASGI app answering 200, ``headers``, empty body, for every request; its head is
    prepared once, as forward-auth prepares a reused answer (jotkit.edge._protocol)."""
    from jotkit.edge._protocol import PREPARED_HEAD, prepare_head

    start = {"type": "http.response.start", "status": 200, "headers": headers,
             PREPARED_HEAD: prepare_head(200, headers)}
    body = {"type": "http.response.body", "body": b""}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        await send(start)
        await send(body)

    return app


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        else:
            await send({"type": "lifespan.shutdown.complete"})
            return


def _config(jwks_url: str, where: Path) -> Any:
    from jotkit.edge import load_config

    path = where / "forward-auth.toml"
    path.write_text(RULES)
    return load_config(path, jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE,
                       require_scopes=["orders:read"], claim_headers=["email=X-Auth-Email"])


def _serve(kind: str, port: int, jwks_url: str, where: str) -> None:
    import uvicorn

    from jotkit.edge import serve, uvicorn_options

    if kind == "bare":
        app = bare_app([(b"content-length", b"0")])
        uvicorn.run(app, **uvicorn_options("127.0.0.1", port, "warning"))
    elif kind == "floor":
        headers = json.loads(Path(where, "floor-headers.json").read_text())
        app = bare_app([(k.encode(), v.encode()) for k, v in headers])
        uvicorn.run(app, **uvicorn_options("127.0.0.1", port, "warning"))
    else:
        serve(_config(jwks_url, Path(where)), host="127.0.0.1", port=port, log_level="warning")


def _token(key: jotkit.Key) -> str:
    return jotkit.encode({"sub": "bench-user", "scope": "orders:read orders:write",
                          "roles": ["staff"], "email": "bench@example.com"}, key,
                         expires_in="1h", issuer=ISSUER, audience=AUDIENCE,
                         headers={"typ": "at+jwt"})


def _wait(url: str, headers: dict[str, str]) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url, headers=headers, timeout=2)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _load() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def profile(calls: int) -> None:
    """cProfile of ``calls`` in-process ASGI calls of the app (no network), and µs per call."""
    import cProfile
    import pstats

    from jotkit.edge.forward_auth import ForwardAuthApp
    from jotkit.integrations import TokenVerifier

    key = jotkit.Key.generate("ES256", kid="bench")
    import tempfile

    with tempfile.TemporaryDirectory() as where:
        config = _config("https://jwks.invalid/jwks.json", Path(where))
    verifier = TokenVerifier(key.public(), issuer=ISSUER, audience=AUDIENCE,
                             require=("exp", "sub"), scopes=config.require_scopes)
    app = ForwardAuthApp(config, verifier=verifier)
    scope = {"type": "http", "method": "GET", "path": "/_auth", "headers": [
        (b"host", b"127.0.0.1"), (b"authorization", b"Bearer " + _token(key).encode()),
        (b"x-forwarded-uri", b"/orders/1"), (b"x-forwarded-method", b"GET")]}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: Any) -> None:
        pass

    async def run(target: Any, n: int) -> None:
        for _ in range(n):
            await target(scope, receive, send)

    for name, target in (("bare", bare_app([(b"content-length", b"0")])), ("forward-auth", app)):
        asyncio.run(run(target, 1000))
        started = time.perf_counter()
        asyncio.run(run(target, calls))
        print(f"{name:>13}: {(time.perf_counter() - started) / calls * 1e6:.2f} µs per call")
    profiler = cProfile.Profile()
    profiler.runcall(asyncio.run, run(app, calls))
    pstats.Stats(profiler).sort_stats("tottime").print_stats(15)


def _instructions(kind: str, requests: int, jwks_url: str, where: str,
                  head: bytes) -> int:
    """Instructions (callgrind ``summary``) of one server process serving ``requests``
    requests over one keep-alive connection, from start to exit."""
    import signal
    import socket

    port = free_port()
    out = Path(where, f"callgrind.{kind}.{requests}")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
         __file__, "--serve", kind, "--port", str(port), "--jwks", jwks_url, "--where", where],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"})  # the same dict layouts every run
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=600)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"{kind} did not start under valgrind") from None
                time.sleep(0.5)
        with sock:
            request = head.replace(b"{port}", str(port).encode())
            for _ in range(requests):
                sock.sendall(request)
                answer = b""
                while b"\r\n\r\n" not in answer:
                    chunk = sock.recv(65536)
                    if not chunk:
                        raise RuntimeError(f"{kind} closed the connection")
                    answer += chunk
                if not answer.startswith(b"HTTP/1.1 200 "):
                    raise RuntimeError(f"{kind} answered {answer[:80]!r}")
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no callgrind summary in {out}")


def callgrind(requests: int, output: Path) -> None:
    """Instructions per request of bare, floor and forward-auth (see the module docstring)."""
    import tempfile

    from jotkit.edge.forward_auth import claim_headers

    key = jotkit.Key.generate("ES256", kid="bench")
    jwks, jwks_url = jwks_server(jotkit.KeySet([key.public()]).to_jwks())
    token = _token(key)
    head = (b"GET /_jotkit_auth HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            b"Authorization: Bearer " + token.encode() + b"\r\n"
            b"X-Forwarded-Uri: /orders/1\r\nX-Forwarded-Method: GET\r\n\r\n")
    low = max(requests // 4, 1)
    per: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as where:
            config = _config(jwks_url, Path(where))
            claims = jotkit.decode_unverified(token)[1]
            answered = [("content-length", "0"),
                        *((k.decode(), v.decode())
                          for k, v in claim_headers(claims, config.claim_headers))]
            Path(where, "floor-headers.json").write_text(json.dumps(answered))
            for kind in ("bare", "floor", "forward-auth"):
                counts = [_instructions(kind, n, jwks_url, where, head) for n in (low, requests)]
                per[kind] = (counts[1] - counts[0]) / (requests - low)
                print(f"{kind:>13}: {per[kind]:,.0f} instructions per request "
                      f"({counts[0]:,} for {low}, {counts[1]:,} for {requests})", flush=True)
    finally:
        jwks.shutdown()
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    text = "\n".join([
        f"## {when}: instructions per request (callgrind, {requests} minus {low} requests)",
        "",
        "| server | instructions / request | bare / server |",
        "|---|---:|---:|",
        *(f"| {kind} | {n:,.0f} | {per['bare'] / n:.2f}x |" for kind, n in per.items()),
        "",
        "forward-auth / bare by user-space instructions: "
        f"**{per['bare'] / per['forward-auth']:.2f}x** (the kernel's share of a request, "
        "the same for each server, is not counted).",
        "",
    ])
    print("\n" + text)
    with output.open("a") as fh:
        fh.write(text + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--serve", choices=["bare", "floor", "forward-auth"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--jwks", help=argparse.SUPPRESS)
    parser.add_argument("--where", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        _serve(args.serve, args.port, args.jwks, args.where)
        return
    if args.profile:
        profile(50_000)
        return
    if args.callgrind:
        callgrind(args.requests, args.output)
        return
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed (apt-get install wrk; `make bench-forward-auth` does)")
    import tempfile

    key = jotkit.Key.generate("ES256", kid="bench")
    jwks, jwks_url = jwks_server(jotkit.KeySet([key.public()]).to_jwks())
    headers = {"Authorization": f"Bearer {_token(key)}", "X-Forwarded-Uri": "/orders/1",
               "X-Forwarded-Method": "GET"}
    procs: dict[str, subprocess.Popen[bytes]] = {}
    urls: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as where:
        try:
            for kind in ("forward-auth", "bare", "floor"):
                port = free_port()
                procs[kind] = subprocess.Popen(
                    [sys.executable, __file__, "--serve", kind, "--port", str(port),
                     "--jwks", jwks_url, "--where", where])
                urls[kind] = f"http://127.0.0.1:{port}/_jotkit_auth"
                if kind == "forward-auth":  # the floor answers forward-auth's headers
                    first = _wait(urls[kind], headers)
                    assert first.headers["x-auth-subject"] == "bench-user", first.headers
                    answered = [(k, v) for k, v in first.headers.multi_items() if k != "date"]
                    Path(where, "floor-headers.json").write_text(json.dumps(answered))
            for kind, url in urls.items():
                first = _wait(url, headers)
                assert first.status_code == 200, (kind, first.status_code, first.text)
            load_before = _load()
            runs: dict[str, list[dict[str, float]]] = {k: [] for k in ("bare", "floor",
                                                                        "forward-auth")}
            for i in range(args.rounds):
                order = list(runs) if i % 2 == 0 else list(reversed(runs))
                for kind in order:
                    cpu = cpu_seconds(procs[kind].pid)
                    out = subprocess.run(
                        wrk_command(urls[kind], args.duration, args.connections, headers),
                        capture_output=True, text=True, check=True).stdout
                    result = parse_wrk(out)
                    done = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
                    result["cpu_us"] = (cpu_seconds(procs[kind].pid) - cpu) / done * 1e6
                    runs[kind].append(result)
                    print(f"round {i + 1} {kind:>12}: {result['rps']:9.0f} req/s  "
                          f"p50 {result['p50']:.2f} ms  p99 {result['p99']:.2f} ms  "
                          f"server CPU {result['cpu_us']:.1f} µs/req  "
                          f"non-2xx {result['errors']:.0f}", flush=True)
            load_after = _load()
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.wait(timeout=10)
            jwks.shutdown()
    ratios = [f["rps"] / b["rps"] for f, b in zip(runs["forward-auth"], runs["bare"],
                                                   strict=True)]
    med = {kind: {m: statistics.median(r[m] for r in rs)
                  for m in ("rps", "p50", "p99", "cpu_us")}
           for kind, rs in runs.items()}
    errors = sum(r["errors"] for rs in runs.values() for r in rs)
    ratio = med["forward-auth"]["rps"] / med["bare"]["rps"]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"## {when}: forward-auth vs a bare endpoint and the header floor",
        "",
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, wrk -t1 -c{args.connections} -d{args.duration}s, "
        f"{args.rounds} alternating rounds; load average (1/5/15 min) before {load_before}, "
        f"after {load_after}; non-2xx answers: {errors:.0f}.",
        "",
        "| server | req/s (median) | p50 ms | p99 ms | server CPU µs/request (median) |",
        "|---|---:|---:|---:|---:|",
        *(f"| {kind} | {m['rps']:.0f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['cpu_us']:.1f} |"
          for kind, m in med.items()),
        "",
        f"forward-auth / bare, median req/s: **{ratio:.2f}x** (target >= 0.9x); per round: "
        + ", ".join(f"{r:.2f}" for r in ratios) + ". By server CPU per request (what a "
        f"saturated server's req/s follows, less sensitive to the machine's other load): "
        f"**{med['bare']['cpu_us'] / med['forward-auth']['cpu_us']:.2f}x**. Against the "
        f"floor (the same answer headers, no verifying): "
        f"**{med['floor']['rps'] and med['forward-auth']['rps'] / med['floor']['rps']:.2f}x** "
        f"by req/s, **{med['floor']['cpu_us'] / med['forward-auth']['cpu_us']:.2f}x** by CPU.",
        "",
    ]
    text = "\n".join(lines)
    print("\n" + text)
    if not args.output.exists():
        args.output.write_text("# forward-auth benchmark (`make bench-forward-auth`)\n\n"
                               "Appended by benchmarks/bench_forward_auth.py, newest last.\n\n")
    with args.output.open("a") as fh:
        fh.write(text + "\n")


if __name__ == "__main__":
    main()
