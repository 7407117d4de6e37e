"""Per-request overhead of the FastAPI `require_token` dependency (warm JWKS cache).

The same FastAPI endpoint is called with and without the dependency, in one
process and one run, through a direct ASGI call loop (no sockets), so the
difference is the cost of authentication alone. The core's
``jotkit.Verifier.decode`` time for the same token is measured alongside:
the target is overhead <= core verify + 10 µs.

Variants:
  bare        the endpoint without auth (baseline)
  noop-dep    the endpoint with a no-op async dependency taking the Request:
              what FastAPI's dependency injection itself costs
  auth        Depends(require_token(scopes=["read"])), JWKS client with a warm
              cache, verified-token LRU cache on (the default)
  auth-nolru  the same with the LRU cache off: full signature check per request
  core        jotkit.Verifier(...).decode(token) alone

Run: .venv/bin/python benchmarks/bench_integrations.py [--rounds 15] [--calls 2000]
Writes benchmarks/results-integrations.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

import jotkit
from jotkit.integrations import TokenVerifier
from jotkit.integrations.fastapi import JotkitAuth, require_token
from jotkit.jwks_client import JWKSClient

ISSUER = "https://auth.bench"
AUDIENCE = "orders"
OUT = Path(__file__).resolve().parent / "results-integrations.md"


def jwks_server(jwks: dict[str, Any]) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps(jwks).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"


async def noop_dependency(request: Request) -> dict[str, str]:
    """Baseline dependency: as cheap as a dependency can be."""
    return {"sub": "user-1"}


def build_app(verifier: TokenVerifier) -> FastAPI:
    app = FastAPI()
    JotkitAuth(app, verifier)

    @app.get("/bare")
    async def bare() -> dict[str, str]:
        return {"sub": "user-1"}

    @app.get("/noop-dep")
    async def noop_dep(claims: Annotated[dict, Depends(noop_dependency)]):
        return {"sub": claims["sub"]}

    @app.get("/auth")
    async def auth(claims: Annotated[dict, Depends(require_token(scopes=["read"]))]):
        return {"sub": claims["sub"]}

    return app


def scope_for(path: str, token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
        "headers": [(b"host", b"bench"), (b"authorization", f"Bearer {token}".encode())],
    }


async def call_loop(app: FastAPI, scope: dict[str, Any], n: int) -> float:
    """Seconds per request for n sequential ASGI calls."""
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    start = time.perf_counter_ns()
    for _ in range(n):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter_ns() - start
    if set(status) != {200}:
        raise SystemExit(f"unexpected statuses {set(status)} for {scope['path']}")
    return elapsed / n / 1e9


def drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (no I/O) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise RuntimeError("the coroutine suspended")


def verifier_loop(verifier: TokenVerifier, token: str, n: int) -> float:
    header = f"Bearer {token}"
    start = time.perf_counter_ns()
    for _ in range(n):
        drive(verifier.aauthenticate(header, scopes=("read",)))
    return (time.perf_counter_ns() - start) / n / 1e9


def core_loop(decode: Callable[[str], Any], token: str, n: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(n):
        decode(token)
    return (time.perf_counter_ns() - start) / n / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--alg", default="ES256")
    args = parser.parse_args()

    key = jotkit.Key.generate(args.alg, kid="bench-1")
    token = jotkit.encode(
        {"scope": "read write"},
        key,
        expires_in="1h",
        issuer=ISSUER,
        audience=AUDIENCE,
        subject="user-1",
        headers={"typ": "at+jwt"},
    )
    httpd, url = jwks_server(jotkit.KeySet([key.public()]).to_jwks())
    try:
        jwks = JWKSClient(url, max_age=3600)
        jwks.get_key_set()  # warm the JWKS cache
        common = {"issuer": ISSUER, "audience": AUDIENCE}
        verifier_lru = TokenVerifier(jwks, **common)
        verifier_nolru = TokenVerifier(jwks, cache_size=0, **common)
        app_lru = build_app(verifier_lru)
        app_nolru = build_app(verifier_nolru)
        core = jotkit.Verifier(key.public(), algorithms=[args.alg], typ="at+jwt", **common)

        loop = asyncio.new_event_loop()
        variants: dict[str, Callable[[int], float]] = {
            "bare": lambda n: loop.run_until_complete(
                call_loop(app_lru, scope_for("/bare", token), n)
            ),
            "noop-dep": lambda n: loop.run_until_complete(
                call_loop(app_lru, scope_for("/noop-dep", token), n)
            ),
            "auth": lambda n: loop.run_until_complete(
                call_loop(app_lru, scope_for("/auth", token), n)
            ),
            "auth-nolru": lambda n: loop.run_until_complete(
                call_loop(app_nolru, scope_for("/auth", token), n)
            ),
            "core": lambda n: core_loop(core.decode, token, n),
            "verifier-nolru": lambda n: verifier_loop(verifier_nolru, token, n),
            "verifier-lru": lambda n: verifier_loop(verifier_lru, token, n),
        }
        for run in variants.values():  # warm-up
            run(max(50, args.calls // 10))
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, run in variants.items():
                samples[name].append(run(args.calls))
        loop.close()
        fetches = jwks.fetch_count
    finally:
        httpd.shutdown()
        httpd.server_close()

    med = {name: statistics.median(vals) * 1e6 for name, vals in samples.items()}
    low = {name: min(vals) * 1e6 for name, vals in samples.items()}

    def row(label: str, name: str, base: str | None) -> str:
        m, lo = med[name], low[name]
        over = "" if base is None else f"{m - med[base]:.1f} | {lo - low[base]:.1f}"
        return f"| {label} | {m:.1f} | {lo:.1f} | {over or ' | '} |"

    lines = [
        "# FastAPI `require_token` overhead per request",
        "",
        f"Python {platform.python_version()}, {platform.machine()}, alg {args.alg}; "
        f"{args.rounds} rounds x {args.calls} in-process ASGI calls per variant (interleaved); "
        f"JWKS fetches during the run: {fetches} (warm cache). The machine is shared, so "
        "the minimum over rounds is shown next to the median.",
        "",
        "| variant | median µs/req | min µs/req | overhead vs bare, median | overhead, min |",
        "|---|---:|---:|---:|---:|",
        row("bare endpoint (no auth)", "bare", None),
        row("no-op FastAPI dependency (framework DI cost)", "noop-dep", "bare"),
        row("require_token, warm JWKS, LRU on (default)", "auth", "bare"),
        row("require_token, warm JWKS, LRU off (full verify)", "auth-nolru", "bare"),
        row(f"core Verifier.decode ({args.alg})", "core", None),
        row("TokenVerifier.aauthenticate, LRU off (no framework)", "verifier-nolru", "core"),
        row("TokenVerifier.aauthenticate, LRU on (no framework)", "verifier-lru", None),
        "",
    ]
    budget_m, budget_l = med["core"] + 10.0, low["core"] + 10.0
    glue_m = med["verifier-nolru"] - med["core"]
    glue_l = low["verifier-nolru"] - low["core"]
    di_m, di_l = med["noop-dep"] - med["bare"], low["noop-dep"] - low["bare"]
    full_m, full_l = med["auth-nolru"] - med["bare"], low["auth-nolru"] - low["bare"]
    lru_m, lru_l = med["auth"] - med["bare"], low["auth"] - low["bare"]

    def verdict(value: float, budget: float) -> str:
        return "PASS" if value <= budget else "FAIL"

    lines += [
        "Target: the verify path adds <= core verify + 10 µs "
        f"(median {budget_m:.1f} µs, min {budget_l:.1f} µs).",
        "",
        f"- jotkit's verify path beyond the core verify (LRU off, no framework): "
        f"median {glue_m:.1f} µs, min {glue_l:.1f} µs -> {verdict(glue_l, 10.0)} (<= 10 µs)",
        f"- end-to-end overhead, LRU on (default): median {lru_m:.1f} µs, min {lru_l:.1f} µs "
        f"-> {verdict(lru_l, budget_l)}",
        f"- end-to-end overhead, LRU off: median {full_m:.1f} µs, min {full_l:.1f} µs -> "
        f"{verdict(full_l, budget_l)}; of this, FastAPI's own dependency injection costs "
        f"median {di_m:.1f} µs, min {di_l:.1f} µs (a no-op dependency), and "
        f"without it: min {full_l - di_l:.1f} µs -> {verdict(full_l - di_l, budget_l)}",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    OUT.write_text(text)
    print(f"wrote {OUT}", file=sys.stderr)


if __name__ == "__main__":
    main()
