"""Bad input over real HTTP on SQLite and PostgreSQL (+ Redis): NUL characters, non-ASCII
credentials and CSRF values get a 4xx JSON error before anything reaches the store."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from jotkit.server import FrozenClock
from server.harness import START, Server, bearer, login, make_settings

pytestmark = pytest.mark.xdist_group("backend-http")


@pytest.fixture(params=["sqlite", "postgres", "postgres+redis"])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    overrides: dict[str, object] = {}
    if request.param != "sqlite":
        overrides["database_url"] = request.getfixturevalue("pg_db")
    if request.param == "postgres+redis":
        overrides["redis_url"] = request.getfixturevalue("redis_url")
        overrides["redis_prefix"] = request.getfixturevalue("redis_prefix")
    srv = Server(make_settings(tmp_path / "data", **overrides), FrozenClock(START)).start()
    srv.add_user("alice@example.com")
    try:
        yield srv
    finally:
        srv.stop()


def _is_clean_4xx(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = response.json()
    assert body["error"] and body["error_description"]


@pytest.mark.parametrize(
    "body",
    [
        {"email": "alice\x00@example.com", "password": "x"},
        {"email": "\x00", "password": "x"},
        {"email": "alice@example.com", "password": "pass\x00word"},
        {"email": "al\x00ice@example.com\x00", "password": "\x00"},
    ],
)
def test_nul_in_login_json_strings_is_4xx(live, body):
    with live.client() as c:
        _is_clean_4xx(c.post("/auth/login", json=body))


def test_nul_in_refresh_token_and_session_id_is_4xx(live):
    with live.client() as c:
        tokens = login(c, "alice@example.com")
        _is_clean_4xx(c.post("/auth/refresh", json={"refresh_token": "a" * 42 + "\x00"}))
        for path in ("/auth/sessions/%00", "/auth/sessions/abc%00def", "/auth/sessions/%C3%A9"):
            _is_clean_4xx(c.delete(path, headers=bearer(tokens["access_token"])))
        for form in ({"token": "abc\x00"}, {"token": "x", "token_type_hint": "\x00"}):
            _is_clean_4xx(c.post("/oauth/introspect", data=form, auth=("rs1", "rs1-secret")))
        r = c.post("/oauth/revoke", data={"token": "abc\x00"}, auth=("rs1", "rs1-secret"))
        assert r.status_code in (200, 400), r.text  # RFC 7009 §2.2: invalid tokens get 200


@pytest.mark.parametrize(
    "raw",
    [
        "rs1:rs1-sécret".encode(),  # UTF-8 inside the base64
        "rs1:rs1-sécret".encode("latin-1"),  # not UTF-8 inside the base64
    ],
)
def test_non_ascii_basic_credentials_on_introspect_are_401(live, raw):
    with live.client() as c:
        for value in (base64.b64encode(raw), b"c\xe9cret", "rs1:é".encode()):
            r = c.post("/oauth/introspect", data={"token": "x"},
                       headers={"Authorization": b"Basic " + value})
            assert r.status_code == 401, (value, r.status_code, r.text[:200])
            assert r.json()["error"] == "invalid_client"
