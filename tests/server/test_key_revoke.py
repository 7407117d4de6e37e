"""``jotkit keys revoke``: emergency withdrawal of a signing key (issue 9.7), on SQLite with
two instances sharing the database file (PostgreSQL + Redis: tests/backends)."""

from __future__ import annotations

import time

import typer
from typer.testing import CliRunner

import jotkit
from jotkit.server import FrozenClock
from jotkit.server.cli import register

from .harness import bearer, login


def _kid(token: str) -> str:
    return str(jotkit.decode_unverified(token)[0]["kid"])


def _jwks_kids(client) -> set[str]:
    return {k["kid"] for k in client.get("/.well-known/jwks.json").json()["keys"]}


def test_revoked_key_tokens_are_refused_at_once_by_every_instance(make_server, tmp_path,
                                                                 monkeypatch):
    """After ``keys rotate --delay 0`` the old key keeps verifying its fresh tokens for
    access_ttl + margin (about 16 minutes); ``keys revoke`` ends that at once: the key leaves
    every instance's JWKS, and its tokens, already cached as verified on both instances, are
    refused with reason ``revoked``, by /auth/me and by introspection."""
    data = tmp_path / "shared"
    clock = FrozenClock(time.time())  # the CLI runs on the wall clock
    a = make_server(clock=clock, data_dir=data)
    b = make_server(clock=clock, data_dir=data)
    a.add_user("alice@example.com")
    app = typer.Typer()
    register(app)
    monkeypatch.setenv("JOTKIT_DATA_DIR", str(data))
    monkeypatch.setenv("JOTKIT_ISSUER", "http://jotkit.test")

    def cli(*args: str):
        result = CliRunner().invoke(app, list(args), catch_exceptions=False)
        clock.set(max(clock.now(), time.time()) + 1)  # the servers' clock catches up
        return result

    with a.client() as ca, b.client() as cb:
        r = cli("keys", "rotate", "--delay", "0")
        assert r.exit_code == 0, r.output
        a.sync()
        b.sync()
        leaked = login(ca, "alice@example.com")  # freshly signed by the rotated-in key
        kid = _kid(leaked["access_token"])
        for c in (ca, cb):  # verified and cached on both instances
            assert c.get("/auth/me", headers=bearer(leaked["access_token"])).status_code == 200
        old_generation = login(ca, "alice@example.com")

        r = cli("keys", "revoke", "--", kid)
        assert r.exit_code == 0, r.output
        assert f"revoked key {kid}" in r.output and "new key" in r.output  # it was signing
        # B: what each instance's background task does every sync interval (the key ring is
        # reloaded, the verified-token cache cleared). A: only the ring is reloaded, so the
        # token is still in A's verified-token cache: a cache hit checks the key too.
        b.sync()
        a.run(a.service.keyring.load())
        for c in (ca, cb):
            assert kid not in _jwks_kids(c)
            r = c.get("/auth/me", headers=bearer(leaked["access_token"]))
            assert r.status_code == 401, r.text
            assert r.json()["reason"] == "revoked"
            r = c.post("/oauth/introspect", data={"token": old_generation["access_token"]},
                       auth=("rs1", "rs1-secret"))
            assert r.json() == {"active": False}
        # sessions survive (refresh tokens are opaque); new tokens come from the replacement
        r = cb.post("/auth/refresh", json={"refresh_token": leaked["refresh_token"]})
        assert r.status_code == 200, r.text
        fresh = r.json()["access_token"]
        assert _kid(fresh) != kid and _kid(fresh) in _jwks_kids(ca)
        assert ca.get("/auth/me", headers=bearer(fresh)).status_code == 200

        listed = cli("keys", "list").output
        assert f"{kid}  ES256  revoked" in listed
        r = cli("keys", "revoke", "--", kid)
        assert r.exit_code == 1 and "already revoked" in r.output
        r = cli("keys", "revoke", "no-such-kid")
        assert r.exit_code == 1 and "no key" in r.output
