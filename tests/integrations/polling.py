"""Liveness waits for tests that drive real processes (never a timed assertion)."""

import time
from collections.abc import Callable

import httpx


def wait_until(
    check: Callable[[], bool], what: str, timeout: float = 60.0, interval: float = 0.1
) -> None:
    """Poll ``check()`` every ``interval`` seconds until it holds; an HTTP error counts as
    "not yet" (the process may still be starting). Fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
