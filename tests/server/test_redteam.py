"""Regression tests of the red-team review of DPoP, PAR, the device grant, token exchange and
the fast token / introspection paths, over real HTTP. Each is named after the attack (or the
hostile input) it prevents."""

from __future__ import annotations

import httpx
import pytest

from .oauth_util import exchange, make_code, register

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
