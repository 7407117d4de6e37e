"""The soak's memory probe: ``jotkit serve`` (one worker) with a thread that records, every
``--every`` seconds, where the process's memory is, so that an RSS slope can be explained.

    .venv/bin/python benchmarks/soak.py --probe [--tracemalloc 1]

Each record (one JSON line in ``--out``) holds: RSS and its split from
``/proc/self/smaps_rollup`` (anonymous vs file-backed), glibc ``mallinfo2`` summed over all
arenas (bytes handed out, free bytes kept in the arenas, ``mmap``-ed blocks), CPython's
allocated block count, the size of every container the service holds (token cache, deny-list,
...), the number of objects per type the garbage collector tracks, and with ``--tracemalloc N``
the Python heap traced by ``tracemalloc`` plus the top growth by source line since the first
record after ``--base`` seconds (written to ``<out>.top.txt``). Debug only: not used by
``make soak`` unless ``--probe`` is given.
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import gc
import json
import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _mallinfo() -> dict[str, float]:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    fn = getattr(libc, "mallinfo2", None)
    if fn is None:
        return {}
    fn.restype = _Mallinfo2
    info = fn()
    mib = 1024 * 1024
    return {"arena_mb": info.arena / mib, "mmap_mb": info.hblkhd / mib,
            "in_use_mb": info.uordblks / mib, "free_mb": info.fordblks / mib,
            "top_pad_mb": info.keepcost / mib}


def _smaps() -> dict[str, float]:
    out: dict[str, float] = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value, *_ = line.split()
        out[name.rstrip(":")] = int(value) / 1024
    keep = ("Rss", "Anonymous", "Pss_File", "Pss_Anon", "Swap")
    return {k: round(out[k], 2) for k in keep if k in out}


def _sizes(app: Any) -> dict[str, int]:
    """len() of every container on the service and on ``app.state`` (one level down too)."""
    sizes: dict[str, int] = {}
    svc = app.state.service
    roots: list[tuple[str, Any]] = [("svc", svc), ("state", app.state._state)]
    roots += [(f"svc.{k}", v) for k, v in vars(svc).items() if hasattr(v, "__dict__")]
    roots += [(f"state.{k}", v) for k, v in app.state._state.items() if hasattr(v, "__dict__")]
    for label, obj in roots:
        items = obj.items() if isinstance(obj, dict) else vars(obj).items()
        for name, value in items:
            if isinstance(value, dict | list | set | collections.deque | collections.OrderedDict):
                sizes[f"{label}.{name}"] = len(value)
    return sizes


def _types() -> dict[str, int]:
    return dict(collections.Counter(type(o).__name__ for o in gc.get_objects()))


def _probe(app: Any, out: Path, every: float, base_after: float, stop: threading.Event) -> None:
    t0 = time.monotonic()
    base: tracemalloc.Snapshot | None = None
    types0: dict[str, int] | None = None
    while not stop.wait(every):
        t = time.monotonic() - t0
        record: dict[str, Any] = {"t": round(t, 1), **_smaps(), **_mallinfo(),
                                  "py_blocks": sys.getallocatedblocks()}
        try:
            record["sizes"] = _sizes(app)
        except (AttributeError, RuntimeError) as exc:  # not started yet / changed during read
            record["sizes"] = {"error": repr(exc)}
        types = _types()
        record["gc_objects"] = sum(types.values())
        if tracemalloc.is_tracing():
            record["traced_mb"] = tracemalloc.get_traced_memory()[0] / 1024 / 1024
        if t >= base_after:
            if types0 is None:
                types0 = types
            grown = {k: v - types0.get(k, 0) for k, v in types.items()}
            record["types_grown"] = dict(sorted(
                ((k, v) for k, v in grown.items() if v), key=lambda kv: -abs(kv[1]))[:15])
            if tracemalloc.is_tracing():
                snap = tracemalloc.take_snapshot().filter_traces(
                    (tracemalloc.Filter(False, tracemalloc.__file__),))
                if base is None:
                    base = snap
                else:
                    top = snap.compare_to(base, "traceback")[:25]
                    lines = [f"t={t:.0f}s traced {record['traced_mb']:.1f} MB"]
                    for stat in top:
                        lines.append(f"{stat.size_diff / 1024:+.1f} KiB {stat.count_diff:+d} "
                                     f"blocks")
                        lines += [f"    {frame}" for frame in stat.traceback.format()]
                    out.with_suffix(".top.txt").write_text("\n".join(lines) + "\n")
        with out.open("a") as fh:
            fh.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--every", type=float, default=20.0)
    parser.add_argument("--base", type=float, default=120.0, help="seconds before the baseline")
    parser.add_argument("--tracemalloc", type=int, default=0, help="frames (0: off)")
    args = parser.parse_args()
    if args.tracemalloc:
        tracemalloc.start(args.tracemalloc)

    import uvicorn

    from jotkit.server import Settings
    from jotkit.server.app import create_app
    from jotkit.server.serving import uvicorn_options

    settings = Settings.from_env(dict(os.environ))
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    app = create_app(settings)
    stop = threading.Event()
    thread = threading.Thread(target=_probe, args=(app, args.out, args.every, args.base, stop),
                              daemon=True)
    thread.start()
    try:
        uvicorn.run(app, **uvicorn_options(settings, workers=1))
    finally:
        stop.set()


if __name__ == "__main__":
    main()
