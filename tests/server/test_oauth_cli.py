"""``jotkit clients add|list|show|remove|rotate-secret`` (issue 11): the secret is shown once
(``--json``: ``client_secret``), stored only as a hash; public clients have none."""

from __future__ import annotations

import json


def test_clients_add_json_shows_the_secret_once_and_stores_a_hash(cli, tmp_path):
    r = cli("clients", "add", "Web app", "--redirect-uri", "https://app.example/cb", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["grant_types"] == ["authorization_code", "refresh_token"]
    assert out["token_endpoint_auth_method"] == "client_secret_basic"
    secret = out["client_secret"]
    assert len(secret) == 43  # 256 random bits, base64url
    shown = cli("clients", "show", out["client_id"], "--json")
    assert "client_secret" not in json.loads(shown.stdout)
    db = (tmp_path / "data" / "jotkit.db").read_bytes()
    assert secret.encode() not in db  # only its hash is stored
    rotated = json.loads(cli("clients", "rotate-secret", out["client_id"], "--json").stdout)
    assert rotated["client_secret"] != secret
    listed = cli("clients", "list").stdout
    assert out["client_id"] in listed and "Web app" in listed
    assert cli("clients", "remove", out["client_id"]).exit_code == 0
    assert cli("clients", "show", out["client_id"]).exit_code == 1
    assert cli("clients", "remove", out["client_id"]).exit_code == 1


def test_public_clients_have_no_secret_and_cannot_use_client_credentials(cli):
    r = cli("clients", "add", "SPA", "--public", "--redirect-uri", "http://127.0.0.1:5173/cb",
            "--json")
    out = json.loads(r.stdout)
    assert "client_secret" not in out and out["token_endpoint_auth_method"] == "none"
    # "--": a client_id may start with "-" (base64url)
    assert cli("clients", "rotate-secret", "--", out["client_id"]).exit_code == 1
    bad = cli("clients", "add", "x", "--public", "--grant", "client_credentials")
    assert bad.exit_code == 2 and "public client" in bad.output


def test_clients_add_refuses_unsafe_redirect_uris(cli):
    for uri in ("http://app.example/cb", "https://app.example/cb#frag", "/relative",
                "https://user@app.example/cb", "myapp:/cb"):
        r = cli("clients", "add", "x", "--redirect-uri", uri)
        assert r.exit_code == 2, (uri, r.output)
    ok = cli("clients", "add", "native", "--public", "--redirect-uri", "com.example.app:/cb")
    assert ok.exit_code == 0, ok.output


def test_clients_add_service_client_and_private_key_jwt(cli, tmp_path):
    import jotkit

    r = cli("clients", "add", "billing", "--grant", "client_credentials", "--scope",
            "invoices:read", "--resource", "https://api.example/", "--json")
    out = json.loads(r.stdout)
    assert out["grant_types"] == ["client_credentials"] and out["scope"] == "invoices:read"
    assert out["resources"] == ["https://api.example/"]
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jotkit.Key.generate("ES256").public().to_jwk()]}))
    r = cli("clients", "add", "signer", "--grant", "client_credentials", "--auth-method",
            "private_key_jwt", "--jwks", str(jwks), "--json")
    assert r.exit_code == 0, r.output
    assert "client_secret" not in json.loads(r.stdout)
    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [jotkit.Key.generate("ES256").to_jwk(private=True)]}))
    r = cli("clients", "add", "leaky", "--grant", "client_credentials", "--auth-method",
            "private_key_jwt", "--jwks", str(private))
    assert r.exit_code == 2 and "public keys only" in r.output


def test_keys_commands_manage_the_rs256_id_token_ring(cli):
    import re

    cli("clients", "list")  # creates the database; the rings are created at first start
    rotated = cli("keys", "rotate", "--alg", "RS256", "--delay", "0")
    assert rotated.exit_code == 0 and "(RS256)" in rotated.output, rotated.output
    kid = re.search(r"new key (\S+) \(RS256\)", rotated.output).group(1)
    listed = cli("keys", "list").output
    assert kid in listed and "RS256" in listed
    revoked = cli("keys", "revoke", "--", kid)
    assert revoked.exit_code == 0, revoked.output
    assert "new key" in revoked.output and "(RS256)" in revoked.output  # replacement signs


def test_clients_add_token_exchange_policy(cli):
    exchange = "urn:ietf:params:oauth:grant-type:token-exchange"
    r = cli("clients", "add", "orders-api", "--audience", "https://orders.example", "--grant",
            exchange, "--grant", "client_credentials", "--exchange-audience",
            "https://billing.example", "--exchange-scope", "invoices:read", "--exchange-actor",
            "gateway", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["grant_types"] == [exchange, "client_credentials"]
    assert out["exchange_audiences"] == ["https://billing.example"]
    assert out["exchange_scopes"] == ["invoices:read"] and out["exchange_actors"] == ["gateway"]
    shown = json.loads(cli("clients", "show", "--json", "--", out["client_id"]).stdout)
    assert shown["exchange_audiences"] == ["https://billing.example"]
    # the grant needs an audience; the options need the grant; public clients cannot exchange
    for args in (("--grant", exchange),
                 ("--grant", "client_credentials", "--exchange-audience", "https://b.example"),
                 ("--public", "--redirect-uri", "http://127.0.0.1:5173/cb", "--grant",
                  exchange, "--exchange-audience", "https://b.example"),
                 ("--grant", exchange, "--exchange-audience", "has space")):
        bad = cli("clients", "add", "x", *args)
        assert bad.exit_code == 2, (args, bad.output)


def test_client_ids_never_start_with_a_dash(monkeypatch):
    """A client_id such as ``-abc`` is read as an option by every command line (``jotkit
    clients show -abc`` failed about once in 64 registrations)."""
    import secrets

    from jotkit.server.oauth.clients import new_client

    draws = iter(["-starts-with-a-dash-x", "fine-id-from-the-2nd"])
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n=None: next(draws))
    record, _ = new_client("x", now=0.0, redirect_uris=("https://app.example/cb",))
    assert record.client_id == "fine-id-from-the-2nd"
