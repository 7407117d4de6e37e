"""The service's /docs page in a real Chromium: Swagger UI renders from the package alone
(every request stays on the service's origin) and its CSP refuses nothing it needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from jotkit.server import FrozenClock

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]


def test_docs_page_renders_offline_under_its_csp(browser: Any, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from server.harness import START, Server, make_settings

    srv = Server(make_settings(tmp_path / "data"), FrozenClock(START)).start()
    try:
        context = browser.new_context()
        page = context.new_page()
        urls: list[str] = []
        console: list[str] = []
        page.on("request", lambda r: urls.append(r.url))
        page.on("console", lambda m: console.append(m.text))
        page.goto(srv.url + "/docs")
        page.wait_for_selector("[data-path='/auth/login']", timeout=20000)
        assert page.locator(".opblock").count() >= 14
        assert urls and all(u.startswith(srv.url + "/") for u in urls), urls
        assert not [m for m in console if "Content Security Policy" in m], console
        context.close()
    finally:
        srv.stop()
