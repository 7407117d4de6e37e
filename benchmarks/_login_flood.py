"""The login-flood scenario of ``make bench-service`` (issue 10 §2): token checks under a flood
of correct logins at the default argon2id cost (t=3, 64 MiB, p=4).

Each round loads ``GET /auth/me`` with wrk, once alone and once while 64 other wrk
connections send correct logins back to back (ignoring ``Retry-After``, as an attacker
would). Reports medians over the rounds: the /auth/me p99 and req/s ratios (flood / alone),
the server's peak RSS (VmHWM) against baseline + workers x 64 MiB + 64 MB, and the login
status counts (200, 503 shed, any other 5xx). Not a test: nothing here asserts.

Every "alone" run starts only once the server is idle (its CPU time still for a second): a
flood leaves about 1.5 s of queued hashes behind it, and an "alone" run started at once
measured that drain (about 11 k req/s and p99 10 ms against 15 k and 4 ms when idle), which
made the flood look harmless by comparison.
"""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _servers import cpu_seconds  # benchmarks/_servers.py
from _wrk import parse_wrk, wrk_command  # benchmarks/_wrk.py

FLOOD_CLIENTS = 64
ARGON2_MIB = 64  # the default memory cost, 65536 KiB

#: wrk Lua: POST a correct login, count responses by status (one wrk thread).
LOGIN_LUA = """
local body = %s
counts = {}
request = function()
  return wrk.format("POST", "/auth/login", {["Content-Type"] = "application/json"}, body)
end
response = function(status, headers, resp)
  counts[status] = (counts[status] or 0) + 1
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
done = function(summary, latency, requests)
  for _, t in ipairs(threads) do
    local c = t:get("counts")
    for status, n in pairs(c) do io.write(string.format("STATUS %%d %%d\\n", status, n)) end
  end
end
"""


def _rss_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def _wait_idle(pid: int, *, limit: float = 60.0) -> float:
    """Wait until the server used under 2 % CPU over 1 s (the hashing queue has drained);
    return the seconds waited."""
    start = time.monotonic()
    before = cpu_seconds(pid)
    while time.monotonic() - start < limit:
        time.sleep(1.0)
        after = cpu_seconds(pid)
        if after - before < 0.02:
            break
        before = after
    return time.monotonic() - start


def _me(url: str, duration: int, connections: int, token: str) -> dict[str, float]:
    cmd = wrk_command(url + "/auth/me", duration, connections, {"Authorization": f"Bearer {token}"})
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def run_flood(url: str, pid: int, token: str, email: str, password: str, *, workers: int,
              duration: int, connections: int, rounds: int,
              log: Callable[[str], None] = print) -> list[str]:
    """Run the scenario against a started service; return markdown lines."""
    tmp = Path(tempfile.mkdtemp(prefix="jotkit-flood-"))
    script = tmp / "login.lua"
    body = json.dumps({"email": email, "password": password})
    script.write_text(LOGIN_LUA % json.dumps(body))
    baseline_kib = _rss_kib(pid, "VmRSS")
    alone: list[dict[str, float]] = []
    flooded: list[dict[str, float]] = []
    statuses: dict[int, int] = {}
    for rnd in range(rounds):
        waited = _wait_idle(pid)
        alone.append(_me(url, duration, connections, token))
        log(f"round {rnd + 1}: /auth/me alone {alone[-1]} (after {waited:.1f} s to go idle)")
        flood_cmd = wrk_command(url, duration + 4, FLOOD_CLIENTS, script=str(script))
        flood = subprocess.Popen(flood_cmd, stdout=subprocess.PIPE, text=True)
        time.sleep(2)  # let the flood fill the pool and the queue
        flooded.append(_me(url, duration, connections, token))
        out, _ = flood.communicate(timeout=duration + 120)
        for status, count in re.findall(r"^STATUS (\d+) (\d+)$", out, re.M):
            statuses[int(status)] = statuses.get(int(status), 0) + int(count)
        log(f"round {rnd + 1}: /auth/me during the flood {flooded[-1]}; logins {statuses}")
    peak_kib = _rss_kib(pid, "VmHWM")

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    p99_ratio = med(flooded, "p99") / med(alone, "p99")
    rps_ratio = med(flooded, "rps") / med(alone, "rps")
    budget_mb = baseline_kib / 1024 + workers * ARGON2_MIB + 64
    peak_mb = peak_kib / 1024
    other_5xx = sum(n for s, n in statuses.items() if s >= 500 and s != 503)
    lines = [
        f"Login flood: {FLOOD_CLIENTS} wrk connections sending correct logins back to back "
        f"(argon2id t=3, 64 MiB, p=4; JOTKIT_ARGON2_WORKERS={workers}), /auth/me with "
        f"wrk -t1 -c{connections}, {duration} s, median of {rounds} rounds; each alone run "
        f"starts once the server is idle:",
        "",
        "| /auth/me | req/s | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| alone | {med(alone, 'rps'):.0f} | {med(alone, 'p50'):.2f} | {med(alone, 'p99'):.2f} |",
        f"| during the flood | {med(flooded, 'rps'):.0f} | {med(flooded, 'p50'):.2f} | "
        f"{med(flooded, 'p99'):.2f} |",
        "",
        f"p99 ratio **{p99_ratio:.2f}x** (target <= 2x, {'met' if p99_ratio <= 2 else 'MISSED'});"
        f" req/s ratio **{rps_ratio:.2f}x** (target >= 0.8x, "
        f"{'met' if rps_ratio >= 0.8 else 'MISSED'}); peak RSS **{peak_mb:.0f} MB** vs budget "
        f"{budget_mb:.0f} MB (baseline {baseline_kib / 1024:.0f} + {workers} x {ARGON2_MIB} + 64; "
        f"{'met' if peak_mb <= budget_mb else 'MISSED'}); logins: "
        f"{statuses.get(200, 0)} x 200, {statuses.get(503, 0)} x 503, other 5xx {other_5xx}, "
        f"all statuses {dict(sorted(statuses.items()))}.",
        "",
    ]
    return lines
