"""examples/sso end to end in Debian's Chromium: a server-rendered FastAPI app and a
single-page app (PKCE in the browser) on two ports share one ``jotkit serve`` sign-in.
Log in once, use both apps; log out in one and both are logged out (back-channel logout)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from jotkit.server.clock import SystemClock
from jotkit.server.oauth.clients import new_client
from server.harness import PASSWORD, Server, make_settings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sso"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]
EMAIL = "sso-user@example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, f"{url} exited"
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            assert time.monotonic() < deadline, f"{url} did not start"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    idp_port, web_port, spa_port = _free_port(), _free_port(), _free_port()
    issuer = f"http://127.0.0.1:{idp_port}"
    web, spa = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{spa_port}"
    settings = make_settings(tmp_path_factory.mktemp("sso-example"), issuer=issuer)
    idp = Server(settings, SystemClock(), port=idp_port).start()  # type: ignore[arg-type]
    idp.add_user(EMAIL)
    now = idp.clock.now()
    web_client, web_secret = new_client(
        "Web app", now=now, redirect_uris=[f"{web}/callback"],
        post_logout_redirect_uris=[f"{web}/"], first_party=True,
        backchannel_logout_uri=f"{web}/backchannel-logout",
    )
    spa_client, _ = new_client(
        "Single-page app", now=now, redirect_uris=[f"{spa}/"], public=True,
        post_logout_redirect_uris=[f"{spa}/"], first_party=True,
        backchannel_logout_uri=f"{spa}/backchannel-logout",
    )
    for record in (web_client, spa_client):
        idp.run(idp.service.store.clients.create(record))
    env = dict(os.environ, SSO_ISSUER=issuer, SSO_CLIENT_ID=web_client.client_id,
               SSO_CLIENT_SECRET=str(web_secret), SSO_WEBAPP_PORT=str(web_port),
               SSO_SPA_CLIENT_ID=spa_client.client_id, SSO_SPA_PORT=str(spa_port))
    procs = [
        subprocess.Popen([sys.executable, str(EXAMPLE / name)], env=env)
        for name in ("webapp.py", "spa_host.py")
    ]
    try:
        _wait_up(web + "/", procs[0])
        _wait_up(spa + "/config.json", procs[1])
        yield {"web": web, "spa": spa, "idp": idp}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=30)
        idp.stop()


def _sign_in_everywhere(page: Any, web: str, spa: str, first: bool) -> Any:
    page.goto(web + "/")
    page.get_by_role("link", name="Sign in").click()
    if first:  # the only password prompt of the SSO session
        page.get_by_label("Email address").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector(f"#status:has-text('Signed in as {EMAIL}')")
    spa_page = page.context.new_page()
    spa_page.goto(spa + "/")
    spa_page.get_by_role("button", name="Sign in").click()  # no password: SSO
    spa_page.wait_for_selector(f"#status:has-text('Signed in as {EMAIL}')")
    return spa_page


def _wait_signed_out(page: Any, reload: bool) -> None:
    deadline = time.monotonic() + 20
    while True:
        if reload:
            page.reload()
        if page.locator("#status").inner_text() == "Signed out":
            return
        assert time.monotonic() < deadline, "still signed in"
        time.sleep(0.2)


def test_log_in_once_use_both_apps_log_out_in_one_logs_out_both(
    apps: dict[str, Any], chromium_path: str
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    web, spa = apps["web"], apps["spa"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_context().new_page()
        errors: list[str] = []

        def watch(p: Any) -> None:  # script errors, and failed responses but favicons
            p.on("pageerror", lambda exc: errors.append(str(exc)))
            p.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                 if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)

        watch(page)
        page.context.on("page", watch)
        # 1. one password prompt, both apps signed in; log out in the SPA
        spa_page = _sign_in_everywhere(page, web, spa, first=True)
        spa_page.get_by_role("button", name="Sign out").click()
        spa_page.wait_for_selector("#status:has-text('Signed out')")
        _wait_signed_out(page, reload=True)  # the web app heard it over the back channel
        # 2. again (a new password prompt: the SSO session ended); log out in the web app
        spa_page.close()
        spa_page = _sign_in_everywhere(page, web, spa, first=True)
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_selector("#status:has-text('Signed out')")
        _wait_signed_out(spa_page, reload=False)  # the SPA's host heard it; the page polls
        browser.close()
    assert not errors, errors
