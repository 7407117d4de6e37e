"""The SSO session cookie's attributes (issue 11; RFC 6265bis §4.1.3.2, RFC 9700 §4.2.4):
HttpOnly and SameSite=Lax always; ``__Host-`` + Secure + Path=/ + no Domain behind an
https issuer. A cookie script can read, or one sent cross-site on sub-requests, would let
an attacker ride or steal the user's provider session (session theft / login CSRF)."""

from __future__ import annotations

from http.cookies import Morsel, SimpleCookie
from pathlib import Path

import httpx
import pytest

from jotkit.server import FrozenClock
from oauth.sso_helpers import add_client, authz_params, hidden, query_of
from server.harness import PASSWORD, START, Server, make_settings


def _set_cookies(response: httpx.Response) -> dict[str, Morsel[str]]:
    out: dict[str, Morsel[str]] = {}
    for raw in response.headers.get_list("set-cookie"):
        jar: SimpleCookie = SimpleCookie()
        jar.load(raw)
        out.update(jar)
    return out


def _cookie_header(morsels: dict[str, Morsel[str]]) -> str:
    # sent by hand: the test talks plain http to a server whose issuer may be https, and a
    # cookie jar would (rightly) not send Secure cookies over http
    return "; ".join(f"{m.key}={m.value}" for m in morsels.values())


@pytest.mark.parametrize(
    ("issuer", "session_name", "binding_name", "secure"),
    [
        ("https://jotkit.test", "__Host-jotkit_sso", "__Host-jotkit_sso_bind", True),
        ("http://jotkit.test", "jotkit_sso", "jotkit_sso_bind", False),
    ],
)
def test_session_theft_sso_cookie_is_httponly_lax_and_host_prefixed_behind_https(
    tmp_path: Path, issuer: str, session_name: str, binding_name: str, secure: bool
) -> None:
    srv = Server(make_settings(tmp_path / "data", issuer=issuer), FrozenClock(START)).start()
    try:
        srv.add_user("carol@example.com")
        add_client(srv, "first", first_party=True)
        add_client(srv, "second", first_party=True)
        with srv.client(follow_redirects=False) as b:
            page = b.get("/oauth/authorize", params=authz_params("first"))
            assert page.status_code == 200, page.text
            binding = _set_cookies(page)
            assert set(binding) == {binding_name}
            r = b.post(
                "/oauth/authorize/login",
                data={"csrf_token": hidden(page.text, "csrf_token"),
                      "authorization_request": hidden(page.text, "authorization_request"),
                      "email": "carol@example.com", "password": PASSWORD},
                headers={"Cookie": _cookie_header(binding)},
            )
            assert r.status_code == 303, r.text
            assert query_of(r.headers["location"])["code"]
            cookies = _set_cookies(r)
            session = cookies[session_name]
            for morsel in (session, binding[binding_name]):
                assert morsel["httponly"] is True
                assert morsel["samesite"].lower() == "lax"
                assert bool(morsel["secure"]) is secure
                assert morsel["path"] == "/" and not morsel["domain"]  # __Host- rules
            # the cookie is the whole SSO session: a second client signs in without a prompt
            again = b.get("/oauth/authorize", params=authz_params("second"),
                          headers={"Cookie": _cookie_header({**binding, **cookies})})
            assert again.status_code == 303, again.text
            assert query_of(again.headers["location"])["code"]
    finally:
        srv.stop()
