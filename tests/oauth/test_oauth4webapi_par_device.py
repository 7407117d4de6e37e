"""panva's oauth4webapi (Node) as a real client of PAR (RFC 9126) and the device grant
(RFC 8628) against a running jotkit (tests/node/par_device.mjs). The browser step (sign in,
allow) is done by httpx posting the hosted forms, as a browser without JavaScript does."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jotkit.server.clock import SystemClock
from jotkit.server.oauth.clients import DEVICE_CODE_GRANT, new_client
from oauth.par_device_helpers import approve
from oauth.sso_helpers import consent, login
from server.harness import Server, make_settings
from server.live import free_port

ROOT = Path(__file__).resolve().parents[2]
EMAIL = "o4w@example.com"
REDIRECT = "http://127.0.0.1:9/cb"  # never followed: the test reads the Location


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    settings = make_settings(tmp_path_factory.mktemp("o4w"), issuer=f"http://127.0.0.1:{port}",
                             device_code_interval=1.0)
    srv = Server(settings, SystemClock(), port=port).start()  # type: ignore[arg-type]
    srv.add_user(EMAIL)
    yield srv
    srv.stop()


class Node:
    """tests/node/par_device.mjs as a child process speaking JSON lines."""

    def __init__(self, node: str, first: dict[str, Any]) -> None:
        self.proc = subprocess.Popen(
            [node, str(ROOT / "tests" / "node" / "par_device.mjs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.send(first)

    def send(self, obj: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError("oauth4webapi exited: " + self.proc.stderr.read()[-2000:])
        out: dict[str, Any] = json.loads(line)
        assert "error" not in out, out
        return out

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def test_oauth4webapi_code_flow_through_a_pushed_request(live: Server, node_bin: str):
    record, secret = new_client("o4w web", now=live.clock.now(), redirect_uris=(REDIRECT,),
                                require_par=True)
    live.run(live.service.store.clients.create(record))
    node = Node(node_bin, {
        "flow": "par", "issuer": live.settings.issuer, "client_id": record.client_id,
        "client_secret": secret, "redirect_uri": REDIRECT, "scope": "openid email",
    })
    try:
        pushed = node.read()
        assert pushed["request_uri"].startswith("urn:ietf:params:oauth:request_uri:")
        assert pushed["expires_in"] == 60
        with live.client(follow_redirects=False) as b:
            page = b.get(pushed["authorization_url"])
            assert page.status_code == 200 and "Sign in" in page.text
            shown = login(b, page, EMAIL)
            assert "Allow access?" in shown.text
            done = consent(b, shown)
        assert done.status_code == 303 and done.headers["location"].startswith(REDIRECT)
        node.send({"callback": done.headers["location"]})
        result = node.read()
        claims = result["id_token_claims"]
        assert claims["iss"] == live.settings.issuer and claims["aud"] == record.client_id
        assert result["scope"] == "openid email"
    finally:
        node.close()


def test_oauth4webapi_device_flow(live: Server, node_bin: str):
    record, _ = new_client("o4w cli", now=live.clock.now(), public=True,
                           grant_types=(DEVICE_CODE_GRANT, "refresh_token"))
    live.run(live.service.store.clients.create(record))
    node = Node(node_bin, {"flow": "device", "issuer": live.settings.issuer,
                           "client_id": record.client_id,
                           "scope": "openid email offline_access"})
    try:
        device = node.read()
        assert device["verification_uri"] == f"{live.settings.issuer}/oauth/device"
        assert device["interval"] == 1
        with live.client(follow_redirects=False) as b:
            done = approve(b, device["user_code"], EMAIL)
        assert "Device connected" in done.text
        result = node.read()
        assert result["id_token_claims"]["aud"] == record.client_id
        assert result["scope"] == "openid email offline_access"
        assert result["has_refresh_token"] is True
    finally:
        node.close()


@pytest.fixture(scope="module")
def live_dpop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A running jotkit that requires DPoP nonces (RFC 9449 §8)."""
    port = free_port()
    settings = make_settings(tmp_path_factory.mktemp("o4w-dpop"),
                             issuer=f"http://127.0.0.1:{port}", dpop_require_nonce=True)
    srv = Server(settings, SystemClock(), port=port).start()  # type: ignore[arg-type]
    srv.add_user(EMAIL)
    yield srv
    srv.stop()


def _par_dpop_flow(live: Server, node_bin: str, name: str, **api: Any) -> tuple[dict[str, Any],
                                                                            str]:
    """oauth4webapi's PAR + DPoP code flow for a new ``--dpop-bound`` client, then its DPoP
    call of an API protected by ``jotkit.integrations`` (``protected_api(**api)``); the
    result and the client id."""
    from server.live import protected_api

    record, secret = new_client(name, now=live.clock.now(), redirect_uris=(REDIRECT,),
                                require_par=True, dpop_bound=True)
    live.run(live.service.store.clients.create(record))
    with protected_api(live.settings.issuer, live.settings.audience, **api) as api_url:
        node = Node(node_bin, {
            "flow": "par", "issuer": live.settings.issuer, "client_id": record.client_id,
            "client_secret": secret, "redirect_uri": REDIRECT, "scope": "openid email",
            "api_url": api_url,
        })
        try:
            pushed = node.read()
            with live.client(follow_redirects=False) as b:
                done = consent(b, login(b, b.get(pushed["authorization_url"]), EMAIL))
            assert done.status_code == 303, done.text
            node.send({"callback": done.headers["location"]})
            return node.read(), record.client_id
        finally:
            node.close()


def test_oauth4webapi_par_code_flow_with_dpop_calls_a_protected_api(
    live_dpop: Server, node_bin: str
):
    """Issue 12's whole chain with a real client: a pushed request (PAR), the code flow with
    PKCE, DPoP on the token request through the nonce dance, then a DPoP call of an API
    protected by ``jotkit.integrations`` with the bound token."""
    import jotkit

    result, _ = _par_dpop_flow(live_dpop, node_bin, "o4w dpop web")
    assert result["token_type"].lower() == "dpop"
    assert result["nonce_retries"] >= 1  # the server asked for a nonce; the client complied
    jkt = jotkit.decode_unverified(result["access_token"])[1]["cnf"]["jkt"]
    assert result["api"] == {"status": 200, "body": {"sub": result["id_token_claims"]["sub"],
                                                     "jkt": jkt}, "nonce_retries": 0}


def test_oauth4webapi_does_the_resource_server_nonce_dance(live_dpop: Server, node_bin: str):
    """RFC 9449 §9 with a real client: the API protected by ``jotkit.integrations`` requires
    its own nonce; oauth4webapi gets 401 ``use_dpop_nonce`` + ``DPoP-Nonce``, retries with
    it and is served. The code was bound to the key of the PAR request's DPoP proof (§10.1),
    so the token request succeeded only because the same key signed it."""
    import secrets

    import jotkit
    from jotkit.dpop import HmacNonces

    result, client_id = _par_dpop_flow(live_dpop, node_bin, "o4w rs nonce",
                                       dpop_nonce=HmacNonces(secrets.token_bytes(32)))
    jkt = jotkit.decode_unverified(result["access_token"])[1]["cnf"]["jkt"]
    assert result["api"] == {"status": 200, "body": {"sub": result["id_token_claims"]["sub"],
                                                     "jkt": jkt}, "nonce_retries": 1}
    assert live_dpop.run(_code_bindings(live_dpop, client_id)) == [jkt]


async def _code_bindings(live: Server, client_id: str) -> list[str | None]:
    """The ``dpop_jkt`` of the client's authorization codes, read from the database."""
    import sqlalchemy as sa

    from jotkit.server.store.tables import oauth_codes

    engine = live.service.store.codes._engine
    async with engine.connect() as conn:
        rows = await conn.execute(sa.select(oauth_codes.c.dpop_jkt)
                                  .where(oauth_codes.c.client_id == client_id))
        return [row.dpop_jkt for row in rows]
