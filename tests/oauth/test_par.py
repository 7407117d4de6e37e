"""Pushed authorization requests (RFC 9126) over real HTTP, attack by attack."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jotkit.server import FrozenClock
from oauth.par_device_helpers import CB, add_confidential
from oauth.sso_helpers import add_client, consent, hidden, login, pkce, query_of
from server.harness import START, Server, make_settings

PREFIX = "urn:ietf:params:oauth:request_uri:"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(make_settings(tmp_path_factory.mktemp("par")), FrozenClock(START)).start()
    yield srv
    srv.stop()


@pytest.fixture
def email(server: Server) -> str:
    address = f"u{secrets.token_hex(4)}@example.com"
    server.add_user(address)
    return address


def request_params(client_id: str, challenge: str, **extra: str) -> dict[str, str]:
    params = {
        "response_type": "code", "client_id": client_id, "redirect_uri": CB,
        "scope": "openid email", "state": "pushed-state", "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return params


def push(server: Server, client_id: str, secret: str, params: dict[str, str]) -> httpx.Response:
    with server.client() as c:
        return c.post("/oauth/par", data=params, auth=(client_id, secret))


def browser(server: Server) -> httpx.Client:
    return server.client(follow_redirects=False)


def test_discovery_advertises_par(server):
    with server.client() as c:
        meta = c.get("/.well-known/openid-configuration").json()
    assert meta["pushed_authorization_request_endpoint"] == "http://jotkit.test/oauth/par"
    assert meta["require_pushed_authorization_requests"] is False


def test_pushed_request_runs_the_code_flow_and_ignores_query_parameters(server, email):
    client, secret = add_confidential(server)
    verifier = pkce()
    r = push(server, client.client_id, secret, request_params(client.client_id,
                                                                verifier.challenge))
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["request_uri"].startswith(PREFIX) and body["expires_in"] == 60
    with browser(server) as b:
        page = b.get("/oauth/authorize", params={
            "client_id": client.client_id, "request_uri": body["request_uri"],
            "state": "query-state", "scope": "openid profile",  # ignored (RFC 9126 §4)
        })
        assert page.status_code == 200 and "Sign in" in page.text
        assert hidden(page.text, "pushed")
        shown = login(b, page, email)
        assert "Allow access?" in shown.text and "profile" not in shown.text
        done = consent(b, shown)
    assert done.status_code == 303, done.text
    q = query_of(done.headers["location"])
    assert q["state"] == "pushed-state"
    with server.client() as c:
        tokens = c.post("/oauth/token", auth=(client.client_id, secret), data={
            "grant_type": "authorization_code", "code": q["code"], "redirect_uri": CB,
            "code_verifier": verifier.verifier,
        })
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid email"


def test_par_request_uri_replay_is_refused(server, email):
    client, secret = add_confidential(server)
    uri = push(server, client.client_id, secret,
               request_params(client.client_id, pkce().challenge)).json()["request_uri"]
    query = {"client_id": client.client_id, "request_uri": uri}
    with browser(server) as b:
        assert b.get("/oauth/authorize", params=query).status_code == 200
        again = b.get("/oauth/authorize", params=query)
    assert again.status_code == 400 and "location" not in again.headers
    assert "request_uri" in again.text


def test_par_request_uri_of_another_client_is_refused(server):
    owner, secret = add_confidential(server)
    thief, _ = add_confidential(server)
    uri = push(server, owner.client_id, secret,
               request_params(owner.client_id, pkce().challenge)).json()["request_uri"]
    with browser(server) as b:
        stolen = b.get("/oauth/authorize",
                       params={"client_id": thief.client_id, "request_uri": uri})
        assert stolen.status_code == 400 and "location" not in stolen.headers
        # the refusal did not spend it: the owner still can
        mine = b.get("/oauth/authorize", params={"client_id": owner.client_id,
                                                  "request_uri": uri})
    assert mine.status_code == 200 and "Sign in" in mine.text


def test_par_expired_request_uri_is_refused(server):
    client, secret = add_confidential(server)
    uri = push(server, client.client_id, secret,
               request_params(client.client_id, pkce().challenge)).json()["request_uri"]
    server.clock.advance(61)
    with browser(server) as b:
        r = b.get("/oauth/authorize", params={"client_id": client.client_id,
                                               "request_uri": uri})
    assert r.status_code == 400 and "location" not in r.headers


def test_client_requiring_par_cannot_skip_it(server, email):
    client, secret = add_confidential(server, require_par=True)
    params = request_params(client.client_id, pkce().challenge)
    with browser(server) as b:
        direct = b.get("/oauth/authorize", params=params)
        assert direct.status_code == 303
        q = query_of(direct.headers["location"])
        assert q["error"] == "invalid_request" and "RFC 9126" in q["error_description"]
        # A login form carrying a request that was never pushed, with or without a made-up
        # ``pushed`` MAC, is refused the same way.
        uri = push(server, client.client_id, secret, params).json()["request_uri"]
        page = b.get("/oauth/authorize", params={"client_id": client.client_id,
                                                  "request_uri": uri})
        widened = hidden(page.text, "authorization_request").replace(
            "openid+email", "openid+email+profile")
        for mac in ("", hidden(page.text, "pushed")):
            forged = login(b, page, email, authorization_request=widened, pushed=mac)
            assert forged.status_code == 303
            assert query_of(forged.headers["location"])["error"] == "invalid_request"
        # the genuine pushed request goes through
        ok = login(b, page, email)
        assert "Allow access?" in ok.text


def test_pushed_form_replayed_after_its_lifetime_is_refused(server, email):
    client, secret = add_confidential(server, require_par=True)
    uri = push(server, client.client_id, secret,
               request_params(client.client_id, pkce().challenge)).json()["request_uri"]
    with browser(server) as b:
        page = b.get("/oauth/authorize", params={"client_id": client.client_id,
                                                  "request_uri": uri})
        assert hidden(page.text, "pushed")
        server.clock.advance(601)  # the forms carry a pushed request for 10 minutes only
        late = login(b, page, email)
    assert late.status_code == 303
    assert query_of(late.headers["location"])["error"] == "invalid_request"


def test_par_answers_cors_for_public_clients_origins_only(server):
    add_client(server, "spa-" + secrets.token_hex(4))  # public, https://app.example/cb
    preflight = {"Access-Control-Request-Method": "POST"}
    with server.client() as c:
        ok = c.options("/oauth/par", headers={"Origin": "https://app.example", **preflight})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        evil = c.options("/oauth/par", headers={"Origin": "https://evil.test", **preflight})
        assert "access-control-allow-origin" not in evil.headers


def test_par_authenticates_the_client_like_the_token_endpoint(server):
    client, _secret = add_confidential(server)
    r = push(server, client.client_id, "wrong-secret",
             request_params(client.client_id, pkce().challenge))
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(("change", "error"), [
    ({"redirect_uri": "https://evil.test/cb"}, "invalid_request"),
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"scope": "admin"}, "invalid_scope"),
    ({"request_uri": PREFIX + "x"}, "invalid_request"),
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"client_id": "someone-else"}, "invalid_client"),
])
def test_par_validates_like_the_authorization_endpoint(server, change, error):
    client, secret = add_confidential(server)
    params = request_params(client.client_id, pkce().challenge)
    params.update(change)
    r = push(server, client.client_id, secret, params)
    assert r.status_code in (400, 401), r.text
    assert r.json()["error"] == error


_NAMES = st.sampled_from([
    "response_type", "redirect_uri", "scope", "state", "code_challenge",
    "code_challenge_method", "prompt", "max_age", "resource", "request_uri", "nonce", "x",
])
_VALUES = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@given(pairs=st.lists(st.tuples(_NAMES, _VALUES), max_size=8))
@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_malformed_pushed_requests_always_get_a_4xx(server, pairs):
    client, secret = _par_client(server)
    with server.client() as c:
        r = c.post("/oauth/par", content=urlencode([("client_id", client), *pairs]),
                   auth=(client, secret), headers=_FORM)
    assert 400 <= r.status_code < 500 or r.status_code == 201, r.text
    if r.status_code != 201:
        assert r.json()["error"]


_FORM = {"Content-Type": "application/x-www-form-urlencoded"}
_CLIENTS: dict[int, tuple[str, str]] = {}


def _par_client(server: Server) -> tuple[str, str]:
    if id(server) not in _CLIENTS:
        record, secret = add_confidential(server)
        _CLIENTS[id(server)] = (record.client_id, secret)
    return _CLIENTS[id(server)]
