"""Instructions per operation under valgrind's callgrind: a load-independent companion to
``bench_core.py`` (same material, same adapters, same calls).

For each (operation, algorithm, implementation) it runs this script twice under
``valgrind --tool=callgrind``: once with 0 and once with N timed iterations (both after the
same set-up and warm-up), and reports (Ir(N) - Ir(0)) / N, the instructions one call costs.
Instruction counts do not depend on the machine's load, so ratios are stable on a busy
2-core box where wall-time medians drift; they do not see cache misses or branch stalls.

Usage::

    .venv/bin/python benchmarks/bench_callgrind.py                 # the default rows
    .venv/bin/python benchmarks/bench_callgrind.py --rows "verify HS256 floor,verify HS256 jotkit"
    .venv/bin/python benchmarks/bench_callgrind.py --output /tmp/cg.md
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: (operation, algorithm, implementation, iterations)
DEFAULT_ROWS = (
    ("verify", "HS256", "floor", 4000),
    ("verify", "HS256", "loose floor", 4000),
    ("verify", "HS256", "jotkit Verifier", 4000),
    ("verify", "HS256", "jotkit", 4000),
    ("verify", "HS256", "PyJWT", 2000),
    ("verify", "RS256", "floor", 1000),
    ("verify", "RS256", "jotkit Verifier", 1000),
    ("verify", "RS256", "jotkit", 1000),
    ("verify", "PS256", "floor", 1000),
    ("verify", "PS256", "jotkit Verifier", 1000),
    ("verify", "PS256", "jotkit", 1000),
    ("verify", "ES256", "floor", 400),
    ("verify", "ES256", "loose floor", 400),
    ("verify", "ES256", "jotkit Verifier", 400),
    ("verify", "ES256", "jotkit", 400),
    ("verify", "ES256", "PyJWT", 400),
    ("sign", "HS256", "floor", 4000),
    ("sign", "HS256", "jotkit", 4000),
)
WARMUP = 300
#: RSA rows use the RFC 7515 §A.2 key (published; vendored for the tests) in every run.
RSA_VECTOR = HERE.parent / "tests" / "vectors" / "rfc7515" / "a_2_rs256.json"
_IR = re.compile(r"Collected : (\d+)")


def _child(op: str, alg: str, impl: str, n: int) -> None:
    """Set up one cell exactly as bench_core does, warm it up, then call it ``n`` times."""
    sys.path.insert(0, str(HERE))
    import bench_core

    fixed = None
    if alg[:2] in ("RS", "PS"):  # a generated RSA key differs per run, and so would Ir(0)
        import json

        import jotkit

        vector = json.loads(RSA_VECTOR.read_text(encoding="utf-8"))
        fixed = jotkit.Key.from_jwk(vector["jwk"], alg)
    material = bench_core.make_material(alg, fixed)
    (cell,) = bench_core.build_cells(op, material, impls=[impl])
    if cell.call is None:
        raise SystemExit(f"{op} {alg} {impl}: n/a ({cell.na})")
    call = cell.call
    for _ in itertools.repeat(None, WARMUP):
        call()
    for _ in itertools.repeat(None, n):
        call()


def _instructions(op: str, alg: str, impl: str, n: int) -> int:
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        op,
        alg,
        impl,
        str(n),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    match = _IR.search(done.stderr)
    if done.returncode != 0 or match is None:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr[-2000:]}")
    return int(match.group(1))


def per_op(op: str, alg: str, impl: str, n: int) -> int:
    """Instructions per call: (Ir with n iterations - Ir with none) / n."""
    return round((_instructions(op, alg, impl, n) - _instructions(op, alg, impl, 0)) / n)


def render(results: Sequence[tuple[str, str, str, int, int]]) -> str:
    """A markdown table; ratios against the tight floor and against PyJWT of the same row."""
    base = {(op, alg): ir for op, alg, impl, _, ir in results if impl == "floor"}
    pyjwt = {(op, alg): ir for op, alg, impl, _, ir in results if impl == "PyJWT"}
    lines = [
        "| operation | implementation | iterations | instructions / op | ÷ tight floor | "
        "PyJWT ÷ this |",
        "|---|---|---|---|---|---|",
    ]
    for op, alg, impl, n, ir in results:
        floor = base.get((op, alg))
        ratio = f"{ir / floor:.3f}×" if floor else "—"
        peer = pyjwt.get((op, alg))
        speed = f"{peer / ir:.2f}×" if peer and impl != "PyJWT" else "—"
        lines.append(f"| {op} {alg} | {impl} | {n} | {ir:,} | {ratio} | {speed} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["--child"]:
        _child(args[1], args[2], args[3], int(args[4]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="", help="comma-separated 'op alg impl' rows")
    p.add_argument("--output", metavar="PATH", help="also write the markdown table here")
    opts = p.parse_args(args)
    rows = list(DEFAULT_ROWS)
    if opts.rows:
        wanted = [r.strip() for r in opts.rows.split(",") if r.strip()]
        rows = [r for r in DEFAULT_ROWS if f"{r[0]} {r[1]} {r[2]}" in wanted]
    results = []
    for op, alg, impl, n in rows:
        ir = per_op(op, alg, impl, n)
        print(f"# {op} {alg} {impl}: {ir:,} instructions/op", file=sys.stderr, flush=True)
        results.append((op, alg, impl, n, ir))
    table = render(results)
    print(table)
    if opts.output:
        Path(opts.output).write_text(table + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
