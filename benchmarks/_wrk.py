"""What the service load benchmarks share: free ports, the wrk command line and its output.

wrk (Debian package ``wrk``) is driven with ``--latency`` so that p50/p99 can be read back.
"""

from __future__ import annotations

import re
import socket
import sys

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}

#: A wrk Lua script that refreshes a pool of refresh tokens, keeping each rotated successor.
REFRESH_LUA = """
local tokens = {%s}
request = function()
  local t = table.remove(tokens) or "exhausted"
  return wrk.format("POST", "/auth/refresh", {["Content-Type"] = "application/json"},
                    '{"refresh_token":"' .. t .. '"}')
end
response = function(status, headers, body)
  local t = body:match('"refresh_token":"([^"]+)"')
  if t then table.insert(tokens, t) end
end
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def latency_ms(text: str) -> float:
    """wrk's latency text (``850.12us``, ``3.2ms``, ``1.1s``) in milliseconds; NaN if unreadable."""
    m = re.match(r"([\d.]+)(us|ms|s|m)\b", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def wrk_command(
    url: str,
    duration: int,
    connections: int,
    headers: dict[str, str] | None = None,
    script: str | None = None,
) -> list[str]:
    """The wrk command line for one load run (one thread, latency distribution on)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    if script:
        cmd += ["-s", script]
    return [*cmd, url]


def parse_wrk(out: str) -> dict[str, float]:
    """req/s, p50 and p99 (ms) and non-2xx count from wrk's output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = latency_ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = latency_ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if p50 != p50 or p99 != p99:  # NaN: show what wrk printed
        print(out, file=sys.stderr)
    return {"rps": rps, "p50": p50, "p99": p99, "errors": float(non2xx.group(1)) if non2xx else 0}
