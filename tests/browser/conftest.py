"""Fixtures for the debugger page tests: a real server and Debian's Chromium via Playwright."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jotkit_debugger_server import serve_app

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def debugger_url() -> Iterator[str]:
    """The debugger served standalone by uvicorn on 127.0.0.1 (a real HTTP server)."""
    pytest.importorskip("starlette")
    from jotkit.debugger import create_app

    with serve_app(create_app()) as url:
        yield url


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    # Module scope, not session: sync Playwright runs an event loop in this thread while it
    # is open, and any later test on the same xdist worker that calls asyncio.run() would fail.
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


class RequestLog:
    """Every request the page makes, and the strings that must never appear in one."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.watched: set[str] = set()

    def watch(self, *values: str) -> None:
        self.watched.update(v for v in values if v)

    def record(self, request: Any) -> None:
        self.requests.append(
            {
                "url": request.url,
                "method": request.method,
                "headers": dict(request.headers),
                "post": request.post_data or "",
            }
        )

    def leaks(self) -> list[str]:
        out = []
        for r in self.requests:
            blob = " ".join([r["url"], r["post"], *r["headers"].values()])
            for w in self.watched:
                # the token, or any of its segments
                for piece in {w, *[p for p in w.split(".") if len(p) > 16]}:
                    if piece in blob:
                        out.append(f"{r['method']} {r['url']} carries {piece[:20]}...")
        return out


@pytest.fixture
def page(browser: Any, debugger_url: str, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh page on the debugger; after the test: no request carried a watched value,
    every request stayed on the page's origin, no JS error; a screenshot is saved."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    log = RequestLog()
    errors: list[str] = []
    pg.on("request", log.record)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.request_log = log
    pg.goto(debugger_url)
    pg.wait_for_selector("body[data-ready='1']")
    yield pg
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert log.leaks() == []
    foreign = [r["url"] for r in log.requests if not r["url"].startswith((debugger_url, "data:"))]
    assert foreign == [], "the page contacted another origin"
    assert errors == []
