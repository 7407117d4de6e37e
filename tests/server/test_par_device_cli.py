"""``jotkit clients add --require-par`` and ``--grant …device_code``; the server-wide
``JOTKIT_REQUIRE_PAR``."""

from __future__ import annotations

import json
from pathlib import Path

from jotkit.server import FrozenClock
from oauth.sso_helpers import add_client, authz_params, query_of
from server.harness import START, Server, make_settings

DEVICE = "urn:ietf:params:oauth:grant-type:device_code"


def test_clients_add_require_par_and_device_grant(cli):
    r = cli("clients", "add", "Web", "--redirect-uri", "https://app.example/cb",
            "--require-par", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["require_pushed_authorization_requests"] is True
    r = cli("clients", "add", "CLI", "--public", "--grant", DEVICE, "--grant", "refresh_token",
            "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["grant_types"] == [DEVICE, "refresh_token"]
    assert out["token_endpoint_auth_method"] == "none" and out["redirect_uris"] == []
    shown = json.loads(cli("clients", "show", out["client_id"], "--json").stdout)
    assert shown["require_pushed_authorization_requests"] is False
    bad = cli("clients", "add", "x", "--grant", DEVICE, "--require-par")
    assert bad.exit_code == 2 and "--require-par" in bad.output
    bad = cli("clients", "add", "x", "--grant", "refresh_token")
    assert bad.exit_code == 2 and "refresh_token" in bad.output


def test_server_wide_require_par_refuses_query_requests(tmp_path: Path):
    srv = Server(make_settings(tmp_path, require_par=True), FrozenClock(START)).start()
    try:
        add_client(srv, "spa")
        with srv.client(follow_redirects=False) as c:
            meta = c.get("/.well-known/openid-configuration").json()
            assert meta["require_pushed_authorization_requests"] is True
            r = c.get("/oauth/authorize", params=authz_params("spa"))
        assert r.status_code == 303
        assert query_of(r.headers["location"])["error"] == "invalid_request"
    finally:
        srv.stop()
