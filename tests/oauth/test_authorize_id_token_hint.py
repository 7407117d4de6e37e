"""``id_token_hint`` at the authorization endpoint (OpenID Connect Core §3.1.2.1): the client
names the user it expects. The browser's SSO session of *another* user is never used
silently for it (the client would get a code, and an ID token, for someone else: session
confusion); ``prompt=none`` then answers ``login_required``. A hint this server did not issue
to this client is ``invalid_request``."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

import jotkit
from jotkit.server import FrozenClock
from jotkit.server.oauth.tokens import sign_id_token
from oauth.sso_helpers import add_client, authz_params, login, query_of
from server.harness import START, Server, make_settings

ISS = "http://jotkit.test"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(make_settings(tmp_path_factory.mktemp("hint")), FrozenClock(START)).start()
    yield srv
    srv.stop()


def _user(server: Server) -> tuple[str, str]:
    email = f"u{secrets.token_hex(4)}@example.com"
    record = server.add_user(email)
    return email, str(record.id)


def _hint(server: Server, user_id: str, client_id: str) -> str:
    svc = server.service
    now = svc.clock.now()
    return sign_id_token(svc, alg="RS256", sub=user_id, client_id=client_id, now=now,
                         auth_time=now, sid=None, nonce=None, access_token=None)


@contextmanager
def _signed_in(server: Server, email: str, client_id: str) -> Iterator[httpx.Client]:
    with server.client(follow_redirects=False) as b:
        page = b.get("/oauth/authorize", params=authz_params(client_id))
        assert page.status_code == 200
        assert login(b, page, email).status_code == 303
        yield b


@pytest.fixture
def client_id(server: Server) -> str:
    cid = "h" + secrets.token_hex(4)
    add_client(server, cid, first_party=True)
    return cid


def test_session_confusion_prompt_none_with_hint_of_another_user_is_login_required(
    server, client_id
):
    alice, _ = _user(server)
    _bob, bob_id = _user(server)
    with _signed_in(server, alice, client_id) as b:
        hint = _hint(server, bob_id, client_id)
        r = b.get("/oauth/authorize",
                  params=authz_params(client_id, prompt="none", id_token_hint=hint))
        assert r.status_code == 303
        q = query_of(r.headers["location"])
        assert q["error"] == "login_required" and q["iss"] == ISS and "code" not in q
        # without prompt=none the user is asked to sign in, not handed alice's session
        page = b.get("/oauth/authorize", params=authz_params(client_id, id_token_hint=hint))
        assert page.status_code == 200 and "Sign in" in page.text
        # signing in as alice again does not satisfy a hint naming bob
        r = login(b, page, alice)
        assert query_of(r.headers["location"])["error"] == "login_required"


def test_prompt_none_with_hint_of_the_signed_in_user_issues_a_code(server, client_id):
    alice, alice_id = _user(server)
    with _signed_in(server, alice, client_id) as b:
        r = b.get("/oauth/authorize", params=authz_params(
            client_id, prompt="none", id_token_hint=_hint(server, alice_id, client_id)))
        assert r.status_code == 303
        q = query_of(r.headers["location"])
        assert q["code"] and q["iss"] == ISS


def test_hint_signed_by_another_key_or_issued_to_another_client_is_invalid_request(
    server, client_id
):
    alice, alice_id = _user(server)
    other = "o" + secrets.token_hex(4)
    add_client(server, other, first_party=True)
    forged = jotkit.encode({"iss": ISS, "sub": alice_id, "aud": client_id},
                           jotkit.Key.generate("RS256"), expires_in=300,
                           now=server.clock.now())
    with _signed_in(server, alice, client_id) as b:
        for hint in (forged, _hint(server, alice_id, other), "not-a-jwt"):
            r = b.get("/oauth/authorize", params=authz_params(
                client_id, prompt="none", id_token_hint=hint))
            assert r.status_code == 303
            q = query_of(r.headers["location"])
            assert q["error"] == "invalid_request" and q["iss"] == ISS and "code" not in q
