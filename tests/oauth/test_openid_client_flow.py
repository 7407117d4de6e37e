"""panva's openid-client (Node, OpenID-certified RP) runs the whole code + PKCE flow against a
real ``jotkit serve``, with Debian's Chromium (Playwright) signing in on the hosted login page:
discovery, authorization with state/nonce/PKCE, the code exchange with openid-client's default
ID-token checks, userinfo, refresh, and RP-initiated logout back to the client."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from jotkit.server.clock import SystemClock
from oauth.sso_helpers import add_client
from server.harness import PASSWORD, Server, make_settings

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _RpPages(BaseHTTPRequestHandler):
    """The RP's redirect targets: any GET answers a small page (the test reads the URL)."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"rp")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def rp_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _RpPages)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, rp_url: str) -> Iterator[Server]:
    RP = rp_url
    port = _free_port()
    settings = make_settings(
        tmp_path_factory.mktemp("oidc"), issuer=f"http://127.0.0.1:{port}",
        brand_name="Acme ID",
    )
    srv = Server(settings, SystemClock(), port=port).start()  # type: ignore[arg-type]
    srv.add_user("rp-user@example.com")
    add_client(
        srv, "node-rp", redirect_uris=(f"{RP}/cb",),
        post_logout_redirect_uris=(f"{RP}/bye",),
    )
    yield srv
    srv.stop()


class NodeRp:
    """tests/node/oidc_rp.mjs as a child process speaking JSON lines."""

    def __init__(self, node: str) -> None:
        self.proc = subprocess.Popen(
            [node, str(ROOT / "tests" / "node" / "oidc_rp.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("openid-client RP exited: " + self.proc.stderr.read()[-2000:])
        out: dict[str, Any] = json.loads(line)
        assert "error" not in out, out
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _follow_to_rp(page: Any, rp: str, action: Any) -> str:
    """Run ``action`` (a navigation or a click) and return the RP URL the provider
    redirected the browser to."""
    action()
    page.wait_for_url(f"{rp}/**", timeout=20_000)
    return str(page.url)


def test_openid_client_full_flow_with_chromium_on_the_hosted_login_page(
    live: Server, node_bin: str, chromium_path: str, rp_url: str
) -> None:
    RP = rp_url
    sync_api = pytest.importorskip("playwright.sync_api")
    rp = NodeRp(node_bin)
    try:
        rp.send({
            "issuer": live.settings.issuer,
            "client_id": "node-rp",
            "redirect_uri": f"{RP}/cb",
            "post_logout_redirect_uri": f"{RP}/bye",
            "scope": "openid email profile offline_access",
        })
        start = rp.read()["authorization_url"]
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
            page = browser.new_context().new_page()
            page.goto(start)
            assert page.title() == "Sign in · Acme ID"
            page.get_by_label("Email address").fill("rp-user@example.com")
            page.get_by_label("Password").fill(PASSWORD)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("text=Allow access?")  # a third-party client: consent
            callback = _follow_to_rp(
                page, RP, lambda: page.get_by_role("button", name="Allow").click()
            )
            assert callback.startswith(f"{RP}/cb?")
            rp.send({"callback": callback})
            result = rp.read()
            claims = result["id_token_claims"]
            assert claims["iss"] == live.settings.issuer and claims["aud"] == "node-rp"
            assert claims["sid"] and claims["auth_time"]
            assert result["userinfo"]["email"] == "rp-user@example.com"
            assert result["refresh_rotated"] is True
            # RP-initiated logout with the id_token_hint: no confirmation, back to the RP.
            back = _follow_to_rp(page, RP, lambda: page.goto(result["end_session_url"]))
            assert back.startswith(f"{RP}/bye?")
            assert parse_qs(urlsplit(back).query)["state"] == [result["logout_state"]]
            # The SSO session is over: prompt=none now answers login_required.
            cookies = {c["name"]: c["value"] for c in page.context.cookies()}
            assert "jotkit_sso" not in cookies
            browser.close()
        sid = claims["sid"]
        session = live.run(live.service.store.sso.get_session(sid))
        assert session is not None and session.ended_at is not None
    finally:
        rp.close()


def test_hosted_pages_work_without_javascript_and_with_the_keyboard(
    live: Server, chromium_path: str, rp_url: str
) -> None:
    from oauth.sso_helpers import authz_params

    sync_api = pytest.importorskip("playwright.sync_api")
    live.add_user("nojs@example.com")
    params = authz_params("node-rp", redirect_uri=f"{rp_url}/cb", login_hint="nojs@example.com")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        page = browser.new_context(java_script_enabled=False).new_page()
        violations: list[str] = []
        page.on("console", lambda m: violations.append(m.text)
                if "Content Security Policy" in m.text else None)
        page.goto(f"{live.url}/oauth/authorize?{urlencode(params)}")
        # login_hint filled the email, so the password field has the focus: type and Enter
        assert page.get_by_label("Email address").input_value() == "nojs@example.com"
        page.keyboard.type(PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_selector("text=Allow access?")
        page.get_by_role("button", name="Allow").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(f"{rp_url}/cb?**", timeout=20_000)
        query = parse_qs(urlsplit(page.url).query)
        assert query["state"] == [params["state"]] and query["code"]
        browser.close()
    assert not violations, violations
