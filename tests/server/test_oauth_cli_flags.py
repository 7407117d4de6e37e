"""Every flag of ``jotkit clients add`` named by issue 11 reaches the registration, and the
inconsistent combinations are refused with exit status 2 (no half-registered client)."""

from __future__ import annotations

import json


def test_clients_add_flags_reach_the_registration(cli):
    r = cli("clients", "add", "Web", "--redirect-uri", "https://app.example/cb",
            "--redirect-uri", "https://app.example/cb2",
            "--post-logout-redirect-uri", "https://app.example/bye",
            "--backchannel-logout-uri", "https://app.example/bc", "--first-party",
            "--auth-method", "client_secret_post", "--scope", "openid", "--scope",
            "offline_access", "--scope", "orders:read", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["redirect_uris"] == ["https://app.example/cb", "https://app.example/cb2"]
    assert out["post_logout_redirect_uris"] == ["https://app.example/bye"]
    assert out["backchannel_logout_uri"] == "https://app.example/bc"
    assert out["first_party"] is True
    assert out["token_endpoint_auth_method"] == "client_secret_post"
    assert out["scope"] == "openid offline_access orders:read"
    assert len(out["client_secret"]) == 43
    r = cli("clients", "add", "rp", "--redirect-uri", "https://rp.example/cb", "--auth-method",
            "private_key_jwt", "--jwks-uri", "https://rp.example/jwks.json", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["jwks_uri"] == "https://rp.example/jwks.json" and "client_secret" not in out
    listed = json.loads(cli("clients", "list", "--json").stdout)
    assert {c["client_name"] for c in listed} == {"Web", "rp"}
    assert all("client_secret" not in c for c in listed)


def test_clients_add_refuses_inconsistent_registrations(cli, tmp_path):
    jwks = tmp_path / "jwks.json"
    jwks.write_text('{"keys": []}')
    cases = [
        (("--public", "--auth-method", "client_secret_basic", "--redirect-uri",
          "https://a.example/cb"), "--public means --auth-method none"),
        (("--grant", "authorization_code"), "needs at least one --redirect-uri"),
        (("--grant", "refresh_token", "--grant", "client_credentials"), "refresh_token"),
        (("--auth-method", "private_key_jwt", "--redirect-uri", "https://a.example/cb"),
         "exactly one of --jwks-uri or --jwks"),
        (("--auth-method", "private_key_jwt", "--redirect-uri", "https://a.example/cb",
          "--jwks-uri", "https://a.example/jwks", "--jwks", str(jwks)),
         "exactly one of --jwks-uri or --jwks"),
        (("--auth-method", "private_key_jwt", "--redirect-uri", "https://a.example/cb",
          "--jwks-uri", "http://a.example/jwks"), "must be https"),
        (("--redirect-uri", "https://a.example/cb", "--jwks-uri", "https://a.example/jwks"),
         "only go with --auth-method private_key_jwt"),
        (("--redirect-uri", "https://a.example/cb", "--backchannel-logout-uri", "/relative"),
         "--backchannel-logout-uri"),
        (("--redirect-uri", "https://a.example/cb", "--auth-method", "client_secret_jwt"),
         "unknown auth method"),
    ]
    for args, message in cases:
        r = cli("clients", "add", "x", *args)
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output, (args, r.output)
    assert json.loads(cli("clients", "list", "--json").stdout) == []
