"""Secrets stay out of reprs and of the demo banner: a ``repr()`` that reaches a log, a
traceback or a debugger shows no private key, password hash or client secret."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import jotkit
from jotkit._b64 import b64encode
from jotkit.server import Settings
from jotkit.server.demo import DEMO_CLIENT_ID, demo_banner, with_demo_client
from jotkit.server.store.base import KeyRecord, UserRecord

PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi")


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_private_key_repr_shows_no_private_jwk_member(alg):
    key = jotkit.Key.generate(alg, kid="k1")
    jwk = key.to_jwk(private=True)
    text = repr(key)
    assert "private" in text
    for member in PRIVATE_MEMBERS:
        if member in jwk:
            assert jwk[member] not in text


def test_hmac_key_repr_shows_no_secret():
    secret = b"a-secret-of-at-least-32-bytes-for-HS256!"
    key = jotkit.Key.from_secret(secret, "HS256", kid="h1")
    text = repr(key)
    for form in (secret.decode(), b64encode(secret), secret.hex()):
        assert form not in text


def test_key_record_repr_hides_the_private_jwk():
    key = jotkit.Key.generate("ES256", kid="k1")
    jwk = key.to_jwk(private=True)
    record = KeyRecord("k1", "ES256", str(jwk), 1.0, 2.0)
    assert jwk["d"] not in repr(record)
    assert "k1" in repr(record)


def test_user_record_repr_hides_the_password_hash():
    hashed = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
    user = UserRecord("u1", "a@example.com", hashed, ("user",), False, 1.0)
    assert "argon2id" not in repr(user)
    assert "a@example.com" in repr(user)


def test_settings_repr_hides_client_secrets_and_url_passwords(tmp_path):
    settings = Settings(
        data_dir=tmp_path,
        issuer="https://auth.example.com",
        database_url="postgresql://jotkit:db-pass-123@db.internal/jotkit",
        redis_url="redis://:redis-pass-456@cache.internal:6379/0",
        introspection_clients=(("rs1", "client-secret-789"),),
    )
    text = repr(settings)
    for secret in ("db-pass-123", "redis-pass-456", "client-secret-789"):
        assert secret not in text
    assert "https://auth.example.com" in text  # the rest is still there for debugging


def test_demo_banner_shows_no_configured_client_secret(make_server):
    srv = make_server(demo=True)  # introspection client rs1:rs1-secret (the test harness)
    banner = srv.banner.getvalue()
    assert "rs1" in banner
    assert "rs1-secret" not in banner
    assert "demo password" in banner  # the README's tour needs the demo user's password


def test_demo_client_secret_goes_to_a_private_file_not_the_banner(tmp_path: Path):
    settings = with_demo_client(Settings(data_dir=tmp_path / "data", demo=True))
    ((client_id, secret),) = settings.introspection_clients
    path = tmp_path / "data" / "demo-client-secret"
    assert client_id == DEMO_CLIENT_ID
    assert path.read_text() == secret
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    banner = demo_banner(settings, "pw")
    assert secret not in banner
    assert str(path.resolve()) in banner  # says where to read it
    again = with_demo_client(Settings(data_dir=tmp_path / "data", demo=True))
    assert path.read_text() == again.introspection_clients[0][1] != secret  # fresh per start
