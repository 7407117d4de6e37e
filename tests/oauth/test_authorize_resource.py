"""RFC 8707 §2 at the authorization endpoint: a ``resource`` the client is not registered for
is ``invalid_target`` before the user is asked to sign in (it used to surface only at the code
exchange, after the code was spent), the same rule as the device and token endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from jotkit.server import FrozenClock
from jotkit.server.oauth.clients import new_client
from oauth.sso_helpers import authz_params, query_of
from server.harness import START, Server, make_settings

ISS = "http://jotkit.test"
API = "https://api.example/"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(make_settings(tmp_path_factory.mktemp("res")), FrozenClock(START)).start()
    yield srv
    srv.stop()


def test_resource_not_registered_for_the_client_is_invalid_target_before_sign_in(server):
    record, _ = new_client("rs", now=server.clock.now(), public=True, first_party=True,
                           redirect_uris=("https://app.example/cb",), resources=(API,))
    server.run(server.service.store.clients.create(record))
    with server.client(follow_redirects=False) as b:
        for resource in ("https://other.example/", "https://api.example"):  # exact match
            params = authz_params(record.client_id, resource=resource)
            r = b.get("/oauth/authorize", params=params)
            assert r.status_code == 303, r.text
            q = query_of(r.headers["location"])
            assert q["error"] == "invalid_target"
            assert q["iss"] == ISS and q["state"] == params["state"]
        ok = b.get("/oauth/authorize", params=authz_params(record.client_id, resource=API))
        assert ok.status_code == 200 and "Sign in" in ok.text
