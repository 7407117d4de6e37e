"""Regression tests of the red-team review of DPoP, PAR, the device grant, token exchange and
the fast token / introspection paths, over real HTTP. Each is named after the attack (or the
hostile input) it prevents."""

from __future__ import annotations

import httpx
import pytest

import jotkit
from jotkit import dpop
from jotkit.server.oauth.clients import TOKEN_EXCHANGE
from jotkit.server.oauth.exchange import ACCESS_TOKEN_TYPE

from .oauth_util import REDIRECT, exchange, make_code, register

TOKEN_URL = "http://jotkit.test/oauth/token"

_FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize("body", [
    b"token=%ff", b"token=a%00b", b"%", b"a=+%\xc3;\xc3", b"token=x&token=y", b"\xff\xfe=\x00",
])
def test_garbage_introspection_form_of_a_registered_client_is_never_a_500(server, body):
    """A registered confidential client may introspect (RFC 7662 §2.1, client authentication
    as at the token endpoint): its form, however malformed, gets a 4xx, never a 500."""
    rs = register(server, "api", grant_types=("client_credentials",), scopes=("x",))
    with server.client() as c:
        r = c.post("/oauth/introspect", content=body, headers=_FORM, auth=rs.basic)
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_request"


def test_introspection_by_a_registered_confidential_client_answers(server):
    """The fast introspection path must still read the form after client authentication
    (which parses it first for ``client_secret_post``): active for a live token, inactive for
    garbage, for Basic and for form credentials alike."""
    rs = register(server, "api", grant_types=("client_credentials",), scopes=("x",))
    web = register(server, "web")
    with server.client() as c:
        code, verifier = make_code(server, web)
        token = exchange(c, web, code, verifier).json()["access_token"]
        r = c.post("/oauth/introspect", data={"token": token}, auth=rs.basic)
        assert r.status_code == 200, r.text
        assert r.json()["active"] is True and r.json()["client_id"] == web.id
        post = register(server, "api-post", grant_types=("client_credentials",),
                        scopes=("x",), auth_method="client_secret_post")
        r = c.post("/oauth/introspect", data={"token": token, "client_id": post.id,
                                              "client_secret": str(post.secret)})
        assert r.status_code == 200 and r.json()["active"] is True, r.text
        r = c.post("/oauth/introspect", data={"token": "not-a-token"}, auth=rs.basic)
        assert r.status_code == 200 and r.json() == {"active": False}
        wrong = httpx.BasicAuth(rs.id, "wrong")
        r = c.post("/oauth/introspect", data={"token": token}, auth=wrong)
        assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_dpop_bound_subject_token_is_exchanged_only_by_the_service_it_is_meant_for(server):
    """Token exchange of a DPoP-bound user token (docs/oauth.md, the decision): the service
    that received it (its ``aud``) exchanges it without the user's key, and gets a token bound
    to its own proof; another confidential client holding the stolen token, with a policy for
    the same target, gets nothing."""
    svc_a, svc_b = "https://a.example", "https://b.example"
    policy = {"grant_types": (TOKEN_EXCHANGE,), "exchange_audiences": (svc_b,)}
    a = register(server, "svc-a", default_audience=svc_a, **policy)
    thief = register(server, "thief", default_audience="https://t.example", **policy)
    web = register(server, "web", resources=(svc_a,))
    user_key, a_key = jotkit.Key.generate("ES256"), jotkit.Key.generate("ES256")
    with server.client() as c:
        code, verifier = make_code(server, web, scope=("openid",), resource=(svc_a,))
        proof = dpop.proof(user_key, "POST", TOKEN_URL, now=server.clock.now())
        r = c.post("/oauth/token", auth=web.basic, headers={"DPoP": proof}, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier})
        subject = r.json()["access_token"]
        assert jotkit.decode_unverified(subject)[1]["cnf"] == {"jkt": user_key.thumbprint()}
        form = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject,
                "subject_token_type": ACCESS_TOKEN_TYPE, "audience": svc_b}
        r = c.post("/oauth/token", data=form, auth=thief.basic)
        assert r.status_code == 400 and r.json()["error"] == "invalid_request", r.text
        assert "not issued for this client" in r.json()["error_description"]
        proof = dpop.proof(a_key, "POST", TOKEN_URL, now=server.clock.now())
        r = c.post("/oauth/token", data=form, auth=a.basic, headers={"DPoP": proof})
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "DPoP"
        claims = jotkit.decode_unverified(r.json()["access_token"])[1]
        assert claims["cnf"] == {"jkt": a_key.thumbprint()} and claims["aud"] == svc_b
