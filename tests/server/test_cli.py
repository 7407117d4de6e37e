"""The server's Typer commands, on a Typer app built here (as the top-level CLI does)."""

from __future__ import annotations

from .harness import START, Server, login, make_settings


def test_users_add_list_disable(cli, tmp_path):
    r = cli("users", "add", "Zed@Example.com", "--role", "admin", input="s3cret-pass\n")
    assert r.exit_code == 0, r.output
    assert "created user zed@example.com" in r.output
    r = cli("users", "add", "zed@example.com", input="other-password\n")
    assert r.exit_code == 1
    assert "already exists" in r.output
    r = cli("users", "add", "not-an-email", input="pw\n")
    assert r.exit_code == 2
    r = cli("users", "list")
    assert "zed@example.com" in r.output and "admin" in r.output and "active" in r.output

    from jotkit.server import FrozenClock

    srv = Server(make_settings(tmp_path / "data"), FrozenClock(START)).start()
    try:
        with srv.client() as c:
            t = login(c, "zed@example.com", "s3cret-pass")
            me = c.get("/auth/me", headers={"Authorization": "Bearer " + t["access_token"]})
            assert me.json()["roles"] == ["admin"]
            # Disabled from another process while the server runs.
            r = cli("users", "disable", "zed@example.com")
            assert r.exit_code == 0, r.output
            srv.sync()  # what the background task does every revocation_sync_interval
            me = c.get("/auth/me", headers={"Authorization": "Bearer " + t["access_token"]})
            assert me.status_code == 401
            assert me.json()["reason"] == "revoked"
            r = c.post("/auth/login", json={"email": "zed@example.com", "password": "s3cret-pass"})
            assert r.status_code == 401
    finally:
        srv.stop()
    assert "disabled" in cli("users", "list").output
    assert cli("users", "disable", "nobody@example.com").exit_code == 1


def test_keys_rotate_and_list(cli):
    assert cli("db", "upgrade").exit_code == 0
    r = cli("keys", "list")
    assert r.exit_code == 0 and r.output.strip() == ""  # no key before first start
    r = cli("keys", "rotate", "--delay", "0")
    assert r.exit_code == 0, r.output
    r = cli("keys", "rotate", "--alg", "EdDSA")
    assert r.exit_code == 0, r.output
    lines = cli("keys", "list").output.strip().splitlines()
    assert len(lines) == 2
    assert "active" in lines[0] and "ES256" in lines[0]
    assert "pending" in lines[1] and "EdDSA" in lines[1]
    r = cli("keys", "rotate", "--alg", "HS256")
    assert r.exit_code != 0


def test_bad_settings_are_reported(cli, monkeypatch):
    monkeypatch.setenv("JOTKIT_ACCESS_TTL", "soon")
    r = cli("users", "list")
    assert r.exit_code == 2
    assert "JOTKIT_ACCESS_TTL" in r.output


def test_demo_mode_banner(make_server):
    srv = make_server(demo=True)
    text = srv.banner.getvalue()
    assert "demo@example.com" in text
    assert "/docs" in text and "/.well-known/jwks.json" in text and "curl" in text
    password = text.split("demo password  : ")[1].split()[0]
    with srv.client() as c:
        assert login(c, "demo@example.com", password)["access_token"]
        assert c.get("/docs").status_code == 200
