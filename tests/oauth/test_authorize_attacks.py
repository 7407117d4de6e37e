"""The authorization endpoint and hosted pages over real HTTP, attack by attack (RFC 9700)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest

from jotkit.server import FrozenClock
from oauth.sso_helpers import add_client, authz_params, consent, hidden, login, query_of
from server.harness import START, Server, make_settings

ISS = "http://jotkit.test"
CB = "https://app.example/cb"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(make_settings(tmp_path_factory.mktemp("sso")), FrozenClock(START)).start()
    yield srv
    srv.stop()


@pytest.fixture
def ids(server: Server) -> tuple[str, str]:
    """A fresh user and third-party client for one test."""
    email = f"u{secrets.token_hex(4)}@example.com"
    server.add_user(email)
    client_id = "c" + secrets.token_hex(4)
    add_client(server, client_id)
    return email, client_id


def browser(server: Server) -> httpx.Client:
    return server.client(follow_redirects=False)


def sign_in(server: Server, b: httpx.Client, email: str, client_id: str,
            **extra: str) -> httpx.Response:
    page = b.get("/oauth/authorize", params=authz_params(client_id, **extra))
    assert page.status_code == 200 and "Sign in" in page.text
    return login(b, page, email)


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/cb/",  # trailing slash
        "https://APP.example/cb",  # case of the host
        "https://app.example/CB",  # case of the path
        "https://app.example/cb?next=x",  # extra query
        "https://evil@app.example/cb",  # userinfo
        "https://app.example.evil.test/cb",  # other host (suffix)
        "https://evil.test/cb",  # other host
        "http://app.example/cb",  # downgraded scheme
    ],
)
def test_redirect_uri_tricks_get_an_error_page_never_a_redirect(server, ids, uri):
    _email, client_id = ids
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=authz_params(client_id, redirect_uri=uri))
    assert r.status_code == 400
    assert "location" not in r.headers
    assert "not registered" in r.text


def test_unknown_client_gets_an_error_page(server):
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=authz_params("nobody"))
    assert r.status_code == 400 and "location" not in r.headers


def test_open_redirector_bad_request_with_unregistered_uri_is_not_redirected(server, ids):
    _email, client_id = ids
    params = authz_params(client_id, redirect_uri="https://evil.test/", scope="nope")
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=params)
    assert r.status_code == 400 and "location" not in r.headers


def test_mix_up_error_response_carries_iss_and_state(server, ids):
    _email, client_id = ids
    params = authz_params(client_id, scope="admin:everything")
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=params)
    assert r.status_code == 303
    assert r.headers["location"].startswith(CB + "?")
    q = query_of(r.headers["location"])
    assert q["error"] == "invalid_scope"
    assert q["iss"] == ISS and q["state"] == params["state"]


def test_mix_up_success_response_carries_iss(server, ids):
    email, client_id = ids
    add_client(server, client_id + "fp", first_party=True)
    with browser(server) as b:
        r = sign_in(server, b, email, client_id + "fp")
    assert r.status_code == 303
    q = query_of(r.headers["location"])
    assert q["iss"] == ISS and q["code"] and q["state"].startswith("st-")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": ""}, "invalid_request"),
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge": "short"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": "code id_token"}, "unsupported_response_type"),
        ({"prompt": "none login"}, "invalid_request"),
        ({"max_age": "-1"}, "invalid_request"),
        ({"resource": "https://api.example/#frag"}, "invalid_target"),
        ({"resource": "not-absolute"}, "invalid_target"),
        ({"request": "eyJ..."}, "request_not_supported"),
    ],
)
def test_pkce_downgrade_and_bad_parameters_are_redirected_errors(server, ids, change, error):
    _email, client_id = ids
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=authz_params(client_id, **change))
    assert r.status_code == 303, r.text
    q = query_of(r.headers["location"])
    assert q["error"] == error and q["iss"] == ISS


def test_repeated_parameter_is_refused(server, ids):
    _email, client_id = ids
    query = urlencode(authz_params(client_id)) + "&scope=openid"
    with browser(server) as b:
        r = b.get("/oauth/authorize?" + query)
    assert query_of(r.headers["location"])["error"] == "invalid_request"


def test_clickjacking_login_page_cannot_be_framed_and_runs_no_script(server, ids):
    _email, client_id = ids
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=authz_params(client_id))
    assert r.status_code == 200
    policy = r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
    assert "script-src" not in policy and "<script" not in r.text
    assert r.headers["x-frame-options"] == "DENY"
    assert "form-action 'self' https://app.example" in policy
    assert r.headers["cache-control"] == "no-store"
    assert '<html lang="en">' in r.text and '<label for="email">' in r.text


def test_prompt_none_without_session_answers_login_required(server, ids):
    _email, client_id = ids
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=authz_params(client_id, prompt="none"))
    q = query_of(r.headers["location"])
    assert q["error"] == "login_required" and q["iss"] == ISS


def test_login_csrf_form_without_the_browsers_binding_is_refused(server, ids):
    email, client_id = ids
    with browser(server) as attacker:
        page = attacker.get("/oauth/authorize", params=authz_params(client_id))
    # The victim's browser posts the attacker's form (token bound to the attacker's cookie).
    with browser(server) as victim:
        r = login(victim, page, email)
        assert r.status_code == 403 and "location" not in r.headers
        assert victim.cookies.get("jotkit_sso") is None
        forged = login(victim, page, email, csrf_token="A" * 22 + "." + "B" * 43)
        assert forged.status_code == 403


def test_wrong_password_rerenders_the_form_with_an_error_tied_to_the_fields(server, ids):
    email, client_id = ids
    with browser(server) as b:
        page = b.get("/oauth/authorize", params=authz_params(client_id))
        r = login(b, page, email, password="wrong password!!")
    assert r.status_code == 401
    assert 'role="alert" id="form-error"' in r.text
    assert 'aria-describedby="form-error"' in r.text
    assert f'value="{email}"' in r.text


def test_login_page_prefills_login_hint(server, ids):
    _email, client_id = ids
    with browser(server) as b:
        r = b.get("/oauth/authorize", params=authz_params(client_id, login_hint="x@y.example"))
    assert 'value="x@y.example"' in r.text


def test_consent_is_asked_remembered_and_forced_by_prompt_consent(server, ids):
    email, client_id = ids
    with browser(server) as b:
        page = sign_in(server, b, email, client_id)
        assert page.status_code == 200 and "Allow access?" in page.text
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        r = consent(b, page)
        assert r.status_code == 303 and "code" in query_of(r.headers["location"])
        again = b.get("/oauth/authorize", params=authz_params(client_id))
        assert again.status_code == 303 and "code" in query_of(again.headers["location"])
        forced = b.get("/oauth/authorize", params=authz_params(client_id, prompt="consent"))
        assert forced.status_code == 200 and "Allow access?" in forced.text
        more = b.get("/oauth/authorize", params=authz_params(client_id, scope="openid profile",
                                                                prompt="none"))
        assert query_of(more.headers["location"])["error"] == "consent_required"


def test_consent_denied_is_access_denied(server, ids):
    email, client_id = ids
    with browser(server) as b:
        page = sign_in(server, b, email, client_id)
        r = consent(b, page, decision="deny")
    q = query_of(r.headers["location"])
    assert q["error"] == "access_denied" and q["iss"] == ISS


def test_consent_csrf_form_of_another_session_is_refused(server, ids):
    email, client_id = ids
    other = f"o{secrets.token_hex(4)}@example.com"
    server.add_user(other)
    with browser(server) as attacker:
        attacker_page = sign_in(server, attacker, other, client_id)
    with browser(server) as victim:
        sign_in(server, victim, email, client_id)  # the victim has a session (consent pending)
        r = consent(victim, attacker_page)
        assert r.status_code == 403 and "location" not in r.headers
        assert server.run(server.service.store.sso.list_consents(
            server.run(server.service.store.users.get_by_email(email)).id)) == []


def test_second_client_signs_in_without_a_password(server, ids):
    email, client_id = ids
    add_client(server, client_id + "b", first_party=True)
    add_client(server, client_id + "a", first_party=True)
    with browser(server) as b:
        first = sign_in(server, b, email, client_id + "a")
        assert first.status_code == 303
        second = b.get("/oauth/authorize", params=authz_params(client_id + "b", prompt="none"))
    assert second.status_code == 303
    assert "code" in query_of(second.headers["location"])


def test_prompt_login_and_max_age_force_a_new_sign_in(server, ids):
    email, client_id = ids
    add_client(server, client_id + "fp", first_party=True)
    with browser(server) as b:
        assert sign_in(server, b, email, client_id + "fp").status_code == 303
        r = b.get("/oauth/authorize", params=authz_params(client_id + "fp", prompt="login"))
        assert r.status_code == 200 and "Sign in" in r.text
        server.clock.advance(120)
        r = b.get("/oauth/authorize", params=authz_params(client_id + "fp", max_age="60"))
        assert r.status_code == 200 and "Sign in" in r.text
        r = b.get("/oauth/authorize", params=authz_params(client_id + "fp", max_age="600"))
        assert r.status_code == 303
        r = b.get("/oauth/authorize",
                  params=authz_params(client_id + "fp", max_age="60", prompt="none"))
        assert query_of(r.headers["location"])["error"] == "login_required"


def test_login_is_throttled_like_auth_login(server, ids):
    email, client_id = ids
    limit = server.settings.login_pair_limit
    with browser(server) as b:
        page = b.get("/oauth/authorize", params=authz_params(client_id))
        statuses = [login(b, page, email, password=f"wrong-{i}-password").status_code
                    for i in range(limit + 1)]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit] == 429


def test_login_flood_sheds_the_hosted_login_form_with_the_login_page(server, ids):
    """A login shed while the argon2 pool is full answers the hosted form with the login page
    (503, Retry-After), not the API's JSON error, and the next try works."""
    email, client_id = ids
    pool = server.service.hash_pool
    with browser(server) as b:
        page = b.get("/oauth/authorize", params=authz_params(client_id))
        pool.in_flight += pool.capacity  # as if a flood held every worker and queue slot
        try:
            shed = login(b, page, email)
        finally:
            pool.in_flight -= pool.capacity
        assert shed.status_code == 503
        assert shed.headers["content-type"].startswith("text/html")
        assert shed.headers["retry-after"] == "1"
        assert "try again in a moment" in shed.text
        assert login(b, shed, email).status_code in (200, 303)  # consent page or redirect


def test_consents_are_listed_and_revoked_by_the_user(server, ids):
    email, client_id = ids
    with browser(server) as b:
        page = sign_in(server, b, email, client_id)
        consent(b, page)
    with server.client() as api:
        token = api.post("/auth/login", json={"email": email,
                                              "password": "correct horse battery staple"})
        headers = {"Authorization": "Bearer " + token.json()["access_token"]}
        listed = api.get("/oauth/consents", headers=headers).json()
        assert [c["client_id"] for c in listed] == [client_id]
        assert listed[0]["scopes"] == ["email", "openid"]
        assert api.delete(f"/oauth/consents/{client_id}", headers=headers).status_code == 200
        assert api.get("/oauth/consents", headers=headers).json() == []
        assert api.delete(f"/oauth/consents/{client_id}", headers=headers).status_code == 404


def test_pages_are_branded(server, ids):
    _email, client_id = ids
    with browser(server) as b:
        page = b.get("/oauth/authorize", params=authz_params(client_id))
        css = b.get("/oauth/pages/brand.css")
    assert "jotkit" in page.text and f"App {client_id}" in page.text
    assert css.text.strip() == ":root{--brand:#3557d4}"
    assert hidden(page.text, "authorization_request")


def test_cors_only_for_public_clients_origins_and_never_on_pages(server, ids):
    _email, client_id = ids  # a public client with redirect URI https://app.example/cb
    preflight = {"Access-Control-Request-Method": "POST"}
    with server.client() as c:
        ok = c.options("/oauth/token", headers={"Origin": "https://app.example", **preflight})
        assert ok.status_code == 204
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        assert "access-control-allow-credentials" not in ok.headers
        evil = c.options("/oauth/token", headers={"Origin": "https://evil.test", **preflight})
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
        jwks = c.get("/.well-known/jwks.json", headers={"Origin": "https://evil.test"})
        assert jwks.headers["access-control-allow-origin"] == "*"
        page = c.get("/oauth/authorize", params=authz_params(client_id),
                     headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in page.headers
        login = c.options("/auth/login", headers={"Origin": "https://app.example", **preflight})
        assert "access-control-allow-origin" not in login.headers


def test_prompt_login_as_the_same_user_keeps_the_sso_session_and_moves_auth_time(server, ids):
    email, client_id = ids
    add_client(server, client_id + "fp", first_party=True)
    with browser(server) as b:
        sign_in(server, b, email, client_id + "fp")
        cookie = b.cookies["jotkit_sso"]
        server.clock.advance(30)
        page = b.get("/oauth/authorize", params=authz_params(client_id + "fp", prompt="login"))
        r = login(b, page, email)
        assert r.status_code == 303 and "code" in query_of(r.headers["location"])
        assert b.cookies["jotkit_sso"] == cookie
    from jotkit.server.oauth.sso import session_token_hash

    session = server.run(server.service.store.sso.find_session(session_token_hash(cookie)))
    assert session.ended_at is None and session.auth_time == server.clock.now()


@pytest.mark.parametrize("path", ["/oauth/authorize", "/oauth/authorize/login",
                                  "/oauth/authorize/consent", "/oauth/device",
                                  "/oauth/device/login", "/oauth/device/confirm",
                                  "/oauth/logout"])
def test_hosted_form_smuggling_a_file_upload_is_a_400_never_a_500(server, ids, path):
    """Every hosted page reads its form through one reader (``pages.form_fields``), which
    admits no file: a multipart upload is a 400, never a 500 or a crash."""
    _email, client_id = ids
    fields = {**authz_params(client_id), "csrf_token": "x"}
    with browser(server) as b:
        r = b.post(path, data=fields, files={"upload": ("a.txt", b"\x00" * 64, "text/plain")})
    assert r.status_code == 400, r.text


@pytest.mark.parametrize("first_party", [False, True])
def test_oauth_client_token_cannot_drive_the_users_account_api(server, first_party):
    """A token an OAuth client got (aud = JOTKIT_AUDIENCE, scope openid) is not the user's
    first-party session: it must not read /auth/me or /auth/sessions (IPs, user agents),
    revoke another client's consent, or log the user out everywhere (RFC 6749 §3.3)."""
    from oauth.sso_helpers import pkce

    email = f"u{secrets.token_hex(4)}@example.com"
    server.add_user(email)
    client_id, other = "c" + secrets.token_hex(4), "c" + secrets.token_hex(4)
    add_client(server, client_id, first_party=first_party)
    add_client(server, other)
    with browser(server) as b:
        consent(b, sign_in(server, b, email, other))  # a consent the attacker would revoke
        p = pkce()
        page = b.get("/oauth/authorize", params=authz_params(
            client_id, scope="openid", code_challenge=p.challenge))
        if "Sign in" in page.text:
            page = login(b, page, email)
        if page.status_code == 200:
            page = consent(b, page)
        code = query_of(page.headers["location"])["code"]
        tokens = b.post("/oauth/token", data={
            "grant_type": "authorization_code", "code": code, "client_id": client_id,
            "redirect_uri": CB, "code_verifier": p.verifier})
        assert tokens.status_code == 200, tokens.text
    stolen = {"Authorization": "Bearer " + tokens.json()["access_token"]}
    with server.client() as api:
        user = api.post("/auth/login", json={"email": email,
                                             "password": "correct horse battery staple"})
        mine = {"Authorization": "Bearer " + user.json()["access_token"]}
        for method, path in [("GET", "/auth/me"), ("GET", "/auth/sessions"),
                             ("GET", "/oauth/consents"), ("DELETE", f"/oauth/consents/{other}"),
                             ("POST", "/auth/logout-all"), ("POST", "/auth/logout")]:
            r = api.request(method, path, headers=stolen)
            assert r.status_code == 401, (path, r.status_code, r.text)
            assert r.json()["reason"] == "wrong_client"
            assert 'error="invalid_token"' in r.headers["www-authenticate"]
        # nothing happened: the consent is still there and the user's own token still works
        listed = {c["client_id"] for c in api.get("/oauth/consents", headers=mine).json()}
        assert other in listed
        assert api.get("/auth/me", headers=mine).status_code == 200
        # the client's token is still good where it belongs
        assert api.get("/oauth/userinfo", headers=stolen).status_code == 200
