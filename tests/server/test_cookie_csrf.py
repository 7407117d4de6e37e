"""Cookie mode: ``__Host-`` cookies and CSRF tokens bound to the session (OWASP signed
double-submit), over real HTTP. The cookie jar would not send Secure cookies over http, so
cookies are sent by hand."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest

from jotkit.server import Settings, SettingsError

from .harness import PASSWORD

A, R, C = "__Host-jotkit_access", "__Host-jotkit_refresh", "__Host-jotkit_csrf"


def _cookies(response) -> dict[str, str]:
    out = {}
    for raw in response.headers.get_list("set-cookie"):
        jar = SimpleCookie()
        jar.load(raw)
        out.update({name: morsel.value for name, morsel in jar.items()})
    return out


def _login(c, email: str) -> dict[str, str]:
    r = c.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return _cookies(r)


def _send(c, method: str, path: str, jar: dict[str, str], csrf_header: str | bytes | None):
    cookie = "; ".join(f"{k}={v}" for k, v in jar.items())
    headers: dict[str, str | bytes] = {"Cookie": cookie}
    if csrf_header is not None:
        headers["X-CSRF-Token"] = csrf_header
    return c.request(method, path, headers=headers)


@pytest.fixture
def cookie_server(make_server):
    srv = make_server(cookie_mode=True)
    srv.add_user("vic@example.com")
    srv.add_user("eve@example.com")
    return srv


def test_csrf_token_of_another_session_is_refused(cookie_server):
    with cookie_server.client() as c:
        victim = _login(c, "vic@example.com")
        attacker = _login(c, "eve@example.com")  # a real token, for the attacker's session
        forged = {A: victim[A], C: attacker[C]}  # e.g. planted through a sibling subdomain
        for path in ("/auth/logout", "/auth/logout-all"):
            r = _send(c, "POST", path, forged, attacker[C])
            assert r.status_code == 403, r.text
            assert r.json()["error"] == "csrf_failed"
        r = _send(c, "POST", "/auth/refresh", {R: victim[R], C: attacker[C]}, attacker[C])
        assert r.status_code == 403
        # The victim's session is untouched.
        assert _send(c, "GET", "/auth/me", {A: victim[A]}, None).status_code == 200


def test_forged_double_submit_pair_with_equal_arbitrary_values_is_refused(cookie_server):
    with cookie_server.client() as c:
        victim = _login(c, "vic@example.com")
        for value in ("x", "attacker-chosen-value", victim[C].split(".")[0] + "." + "A" * 43):
            r = _send(c, "POST", "/auth/logout", {A: victim[A], C: value}, value)
            assert r.status_code == 403, (value, r.text)
            r = _send(c, "POST", "/auth/refresh", {R: victim[R], C: value}, value)
            assert r.status_code == 403, (value, r.text)


def test_correct_session_bound_csrf_token_is_accepted(cookie_server):
    with cookie_server.client() as c:
        jar = _login(c, "vic@example.com")
        r = _send(c, "POST", "/auth/refresh", {R: jar[R], C: jar[C]}, jar[C])
        assert r.status_code == 200, r.text
        new = _cookies(r)
        assert new[C] != jar[C]  # a fresh token, for the same session
        r = _send(c, "POST", "/auth/logout", {A: new[A], C: new[C]}, new[C])
        assert r.status_code == 200, r.text


def test_csrf_token_survives_a_restart(make_server, tmp_path):
    first = make_server(cookie_mode=True, data_dir=tmp_path / "d")
    key_file = tmp_path / "d" / "csrf.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    first.add_user("vic@example.com")
    with first.client() as c:
        jar = _login(c, "vic@example.com")
    first.stop()
    second = make_server(cookie_mode=True, data_dir=tmp_path / "d")
    with second.client() as c:
        r = _send(c, "POST", "/auth/refresh", {R: jar[R], C: jar[C]}, jar[C])
        assert r.status_code == 200, r.text


@pytest.mark.parametrize("value", ["é", "tok\u00e9n", "\u00ff" * 40])
def test_non_ascii_csrf_header_or_cookie_is_403_not_500(cookie_server, value):
    with cookie_server.client() as c:
        jar = _login(c, "vic@example.com")
        raw = value.encode("latin-1")
        answers = [
            _send(c, "POST", "/auth/logout", {A: jar[A], C: jar[C]}, raw),
            _send(c, "POST", "/auth/refresh", {R: jar[R], C: jar[C]}, raw),
        ]
        cookie = f"{A}={jar[A]}; {C}={value}".encode("latin-1")
        answers.append(c.post("/auth/logout", headers={"Cookie": cookie,
                                                       "X-CSRF-Token": jar[C]}))
        answers.append(c.post("/auth/logout", headers={"Cookie": cookie, "X-CSRF-Token": raw}))
        for r in answers:
            assert r.status_code == 403, r.text
            assert r.json()["error"] == "csrf_failed"


def test_cookies_without_secure_have_no_host_prefix(make_server):
    srv = make_server(cookie_mode=True, cookie_secure=False)
    srv.add_user("vic@example.com")
    with srv.client() as c:
        r = c.post("/auth/login", json={"email": "vic@example.com", "password": PASSWORD})
        assert set(_cookies(r)) == {"jotkit_access", "jotkit_refresh", "jotkit_csrf"}


def test_cookie_mode_on_shared_database_needs_csrf_secret():
    with pytest.raises(SettingsError, match="JOTKIT_CSRF_SECRET"):
        Settings(cookie_mode=True, database_url="postgresql://db/jotkit")
    Settings(cookie_mode=True, database_url="postgresql://db/jotkit", csrf_secret="s" * 32)
    with pytest.raises(SettingsError, match="JOTKIT_CSRF_SECRET"):
        Settings(csrf_secret="short")
