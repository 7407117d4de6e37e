"""Per-request cost of DPoP (RFC 9449 §7) at a resource server, against one ES256 verify.

The question (issue 12): is the OVERHEAD of DPoP verification per request at a resource server
at most 1.3x one ES256 signature verification? Every row runs in the same process and run:

* ``es256 primitive``: one ECDSA P-256 verify through ``cryptography`` (the DER signature
  prepared beforehand): the yardstick, the least a proof check can cost;
* ``proof check``: :meth:`jotkit.dpop.ProofVerifier.verify` alone (parse, the cached key of
  the client, the signature, ``htm``/``htu``/``iat``/``ath``/``jkt``);
* ``bearer`` / ``dpop`` through :meth:`jotkit.integrations.TokenVerifier.authenticate`, the one
  path every adapter takes, with the token cache off (every token verified: ES256) and on (the
  usual case: a client reuses its token): ``dpop`` adds the proof check, its replay record
  and the ``cnf.jkt`` binding. Overhead = ``dpop`` - ``bearer``.

Each proof is used once (the replay cache would refuse a second use), so they are made before
the clock starts. Wall time: the median over rounds of the per-op time of each round, rows
interleaved round by round so load drifts hit all of them. ``--callgrind`` also counts
instructions per op under valgrind (``(Ir(N) - Ir(0)) / N``, load-independent).

Usage::

    .venv/bin/python benchmarks/bench_dpop.py [--rounds 15] [--ops 200] [--callgrind]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

import jotkit
from jotkit import dpop
from jotkit.integrations import TokenVerifier

ISSUER = "https://auth.example.com"
URL = "https://api.example.com/orders"
NOW = 1_800_000_000.0
ROWS = ("es256 primitive", "proof check", "bearer, no cache", "dpop, no cache",
        "bearer, cached", "dpop, cached")


class Material:
    """Keys, one access token bound to the client's key, and proofs made in advance."""

    def __init__(self) -> None:
        self.issuer_key = jotkit.Key.generate("ES256", kid="k1")
        self.client_key = jotkit.Key.generate("ES256")
        self.token = jotkit.encode(
            {"scope": "orders:read", "client_id": "c1",
             "cnf": {"jkt": self.client_key.thumbprint()}},
            self.issuer_key, expires_in=900, issuer=ISSUER, audience="api", subject="u1",
            jti=True, headers={"typ": "at+jwt"}, now=NOW,
        )
        self.bearer_token = jotkit.encode(  # the same claims without cnf: a plain bearer token
            {"scope": "orders:read", "client_id": "c1"},
            self.issuer_key, expires_in=900, issuer=ISSUER, audience="api", subject="u1",
            jti=True, headers={"typ": "at+jwt"}, now=NOW,
        )
        signing_input, _, sig = self.token.rpartition(".")
        raw = jotkit._b64.b64decode(sig)
        self.der = encode_dss_signature(int.from_bytes(raw[:32]), int.from_bytes(raw[32:]))
        self.signing_input = signing_input.encode("ascii")
        public = self.issuer_key.public().to_pem()
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        loaded = load_pem_public_key(public)
        assert isinstance(loaded, ec.EllipticCurvePublicKey)
        self.public = loaded

    def proofs(self, n: int) -> list[str]:
        """``n`` distinct proofs for ``GET URL`` with this token."""
        return [dpop.proof(self.client_key, "GET", URL, self.token, now=NOW) for _ in range(n)]

    def verifier(self, cache: bool) -> TokenVerifier:
        """A resource server's verifier (clock fixed at NOW)."""
        return TokenVerifier(self.issuer_key.public(), issuer=ISSUER, audience="api",
                             cache_size=1024 if cache else 0, clock=lambda: NOW)


def make_op(row: str, m: Material, n: int) -> Callable[[], None]:
    """A callable running ``row`` once per call (proof rows consume one fresh proof per call;
    ``n`` bounds how many calls it will get)."""
    header = "DPoP " + m.token
    if row == "es256 primitive":
        algo = ec.ECDSA(hashes.SHA256())
        pub, der, data = m.public, m.der, m.signing_input
        return lambda: pub.verify(der, data, algo)
    proofs = iter(m.proofs(n) if "dpop" in row or row == "proof check" else ())
    if row == "proof check":
        pv = dpop.ProofVerifier()
        jkt = m.client_key.thumbprint()
        token = m.token
        return lambda: pv.verify(next(proofs), method="GET", url=URL, now=NOW,
                                 access_token=token, jkt=jkt) and None
    verifier = m.verifier(cache="cached" in row)
    if row.startswith("bearer"):
        bearer = "Bearer " + m.bearer_token
        return lambda: verifier.authenticate(bearer) and None
    return lambda: verifier.authenticate(
        header, dpop=[next(proofs)], method="GET", url=URL) and None


def wall(rounds: int, ops: int) -> dict[str, float]:
    """Median per-op seconds of every row, rows interleaved round by round."""
    m = Material()
    samples: dict[str, list[float]] = {row: [] for row in ROWS}
    ops_of = {row: make_op(row, m, (rounds + 1) * ops) for row in ROWS}
    for op in ops_of.values():  # warm-up round (caches, first proof's key parse)
        for _ in range(ops):
            op()
    for _ in range(rounds):
        for row, op in ops_of.items():
            start = time.perf_counter()
            for _ in range(ops):
                op()
            samples[row].append((time.perf_counter() - start) / ops)
    return {row: statistics.median(values) for row, values in samples.items()}


_IR = re.compile(r"Collected : (\d+)")


def _child(row: str, n: int, made: int) -> None:
    """Under callgrind: set ``row`` up with ``made`` proofs (the same for every ``n``, so
    making them cancels out of Ir(n) - Ir(0)), warm up, then run it ``n`` times."""
    m = Material()
    op = make_op(row, m, made)
    for _ in range(50):
        op()
    for _ in range(n):
        op()


def callgrind(n: int) -> dict[str, float]:
    """Instructions per op of every row: (Ir(n) - Ir(0)) / n under callgrind."""
    out: dict[str, float] = {}
    for row in ROWS:
        counts = []
        for iterations in (0, n):
            proc = subprocess.run(
                ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                 sys.executable, __file__, "--child", row, str(iterations), str(n + 50)],
                capture_output=True, text=True, check=True,
                env={**os.environ, "PYTHONHASHSEED": "0"},
            )
            found = _IR.search(proc.stderr)
            assert found, proc.stderr[-2000:]
            counts.append(int(found.group(1)))
        out[row] = (counts[1] - counts[0]) / n
    return out


def report(times: dict[str, float], irs: dict[str, float] | None) -> str:
    """The results as Markdown, with the overhead ratios against the ES256 primitive."""
    load = os.getloadavg()
    es = times["es256 primitive"]
    lines = [
        "# DPoP at a resource server (benchmarks/bench_dpop.py)",
        "",
        f"Python {sys.version.split()[0]}, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}, medians per op.",
        "",
        "| row | µs/op | × ES256 verify |" + (" Ir/op |" if irs else ""),
        "|---|---:|---:|" + ("---:|" if irs else ""),
    ]
    for row in ROWS:
        cell = f"| {row} | {times[row] * 1e6:.1f} | {times[row] / es:.2f} |"
        if irs:
            cell += f" {irs[row]:,.0f} |"
        lines.append(cell)
    lines.append("")
    for kind in ("no cache", "cached"):
        over = times[f"dpop, {kind}"] - times[f"bearer, {kind}"]
        line = (f"- DPoP overhead per request ({kind}): {over * 1e6:.1f} µs = "
                f"**{over / es:.2f}×** one ES256 verify (target ≤ 1.3×)")
        if irs:
            ir_over = irs[f"dpop, {kind}"] - irs[f"bearer, {kind}"]
            line += f"; instructions: {ir_over / irs['es256 primitive']:.2f}×"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and print (and optionally write) the Markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=200)
    parser.add_argument("--callgrind", action="store_true")
    parser.add_argument("--callgrind-ops", type=int, default=300)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--child", nargs=3, metavar=("ROW", "N", "MADE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    times = wall(args.rounds, args.ops)
    irs = callgrind(args.callgrind_ops) if args.callgrind else None
    text = report(times, irs)
    print(text)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
