"""A bounded pool for password hashing: argon2id (RFC 9106) work runs on a fixed number of
threads, with a bounded number of requests waiting for one; past that, logins are shed.

Each argon2id run at the default cost holds 64 MiB and a core for a few hundred milliseconds.
On an unbounded pool a login flood makes every request wait behind every hash (token checks
included, since they share the event loop and the cores) and memory grows with the flood.
Here at most ``workers`` hashes run at once, at most ``queue`` more wait, and any further
login gets 503 ``temporarily_unavailable`` with ``Retry-After`` at once (docs/service.md).

The pool belongs to one :class:`~jotkit.server.sessions.AuthService` (no module state); its
threads start on first use and stop in :meth:`HashPool.close`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from .errors import ServiceError

__all__ = ["HashPool", "PoolFull"]

T = TypeVar("T")

RETRY_AFTER_SECONDS = 1
"""``Retry-After`` of a shed login: a queue slot frees within about one hash."""


HASH_NICENESS = 19
"""How much lower (``nice``) the pool threads run than the event loop, i.e. the lowest priority
there is (on Linux niceness is per thread), so token checks get the cores first while hashes
use the idle CPU. Each hash runs its lanes on its pool thread alone (``passwords``), so the
pool never has more than ``workers`` runnable threads. At +10 with argon2's own lane threads
(2 hashes x p=4, CFS weight 110 each) the hashes still outweighed the loop (1024) on a 2-core
host (benchmarks/results-service.md, the login flood). The price: when other work keeps every
core busy, logins get little CPU and slow down."""


def _lower_priority() -> None:
    """Pool thread initializer: lower this thread's CPU priority (Linux; elsewhere a no-op)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0) + HASH_NICENESS)


class PoolFull(ServiceError):
    """Every worker is busy and the queue is full: the login is shed (HTTP 503)."""

    def __init__(self) -> None:
        super().__init__(
            "temporarily_unavailable",
            "Too many logins in progress; retry shortly.",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class HashPool:
    """``workers`` threads for argon2id and room for ``queue`` waiting jobs.

    Admission is counted on the event loop (one thread, so a plain counter is atomic); a job
    leaves the count when its thread work ends (or when it is cancelled before it started), not
    when its awaiting request goes away, so a disconnecting client cannot make room for more
    concurrent hashes than the bound."""

    def __init__(self, workers: int, queue: int) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        if queue < 0:
            raise ValueError("queue must be >= 0")
        self.workers = workers
        self.queue = queue
        self.in_flight = 0  # running + waiting jobs admitted on the event loop
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="jotkit-argon2", initializer=_lower_priority
        )

    @property
    def capacity(self) -> int:
        """Running plus waiting jobs admitted at most."""
        return self.workers + self.queue

    @property
    def full(self) -> bool:
        """True when a login would be shed now (checked again when it is submitted)."""
        return self.in_flight >= self.capacity

    async def run(self, fn: Callable[..., T], *args: object, shed: bool = True) -> T:
        """Run ``fn(*args)`` on a pool thread. With ``shed`` (logins), raise :class:`PoolFull`
        when ``capacity`` jobs are already admitted; without it (creating users), wait."""
        if shed and self.full:
            raise PoolFull()
        loop = asyncio.get_running_loop()
        self.in_flight += 1
        try:
            future = self._executor.submit(fn, *args)
        except BaseException:
            self.in_flight -= 1
            raise

        def settled(_: concurrent.futures.Future[T]) -> None:
            # a closed loop (shutdown) has nothing left to count
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._settle)

        future.add_done_callback(settled)
        return await asyncio.wrap_future(future)

    def _settle(self) -> None:
        self.in_flight -= 1

    def close(self) -> None:
        """Stop the threads (waiting jobs are cancelled; running ones finish)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
