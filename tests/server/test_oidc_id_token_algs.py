"""ID token algorithms (OpenID Connect Core §3.1.3.7, Discovery 1.0 §3): RS256 by default,
the access-token algorithm when a client registered it, and discovery listing exactly what a
client can register. Also RFC 8414 §2: the ``*_auth_signing_alg_values_supported`` members
that must accompany ``private_key_jwt``."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx

import jotkit
from jotkit.server.oauth.clients import ASSERTION_ALGS

from .oauth_util import exchange, make_code, register


def _jwks(c: httpx.Client) -> jotkit.KeySet:
    return jotkit.KeySet.from_jwks(c.get("/.well-known/jwks.json").json())


def _half_hash(token: str, hash_name: str) -> str:
    digest = hashlib.new(hash_name, token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[: len(digest) // 2]).rstrip(b"=").decode()


def test_client_registered_for_es256_gets_es256_id_tokens_on_code_and_refresh(server):
    app = register(server, "es256 rp", id_token_signed_response_alg="ES256")
    code, verifier = make_code(server, app)
    with server.client() as c:
        r = exchange(c, app, code, verifier)
        assert r.status_code == 200, r.text
        body = r.json()
        keys, now = _jwks(c), server.clock.now()
        header, _ = jotkit.decode_unverified(body["id_token"])
        assert header["alg"] == "ES256"
        idt = jotkit.Verifier(keys, algorithms=["ES256"], issuer="http://jotkit.test",
                              audience=app.id).decode(body["id_token"], now=now)
        assert idt["at_hash"] == _half_hash(body["access_token"], "sha256")
        again = c.post("/oauth/token", auth=app.basic, data={
            "grant_type": "refresh_token", "refresh_token": body["refresh_token"]})
        assert again.status_code == 200, again.text
        refreshed = again.json()
        assert jotkit.decode_unverified(refreshed["id_token"])[0]["alg"] == "ES256"
        idt2 = jotkit.Verifier(keys, algorithms=["ES256"], issuer="http://jotkit.test",
                               audience=app.id).decode(refreshed["id_token"], now=now)
        assert idt2["sub"] == idt["sub"] and idt2["sid"] == idt["sid"]
        assert idt2["at_hash"] == _half_hash(refreshed["access_token"], "sha256")


def test_eddsa_server_signs_eddsa_id_tokens_with_a_sha512_at_hash(make_server, tmp_path):
    srv = make_server(data_dir=tmp_path / "eddsa", signing_alg="EdDSA")
    srv.add_user("alice@example.com")
    app = register(srv, "eddsa rp", id_token_signed_response_alg="EdDSA")
    code, verifier = make_code(srv, app)
    with srv.client() as c:
        meta = c.get("/.well-known/openid-configuration").json()
        assert meta["id_token_signing_alg_values_supported"] == ["EdDSA", "RS256"]
        r = exchange(c, app, code, verifier)
        assert r.status_code == 200, r.text
        body = r.json()
        idt = jotkit.Verifier(_jwks(c), algorithms=["EdDSA"], issuer="http://jotkit.test",
                              audience=app.id).decode(body["id_token"], now=srv.clock.now())
        assert idt["at_hash"] == _half_hash(body["access_token"], "sha512")  # Ed25519


def test_discovery_lists_only_id_token_algorithms_a_client_can_register(make_server, tmp_path):
    default = make_server(data_dir=tmp_path / "es256")
    es384 = make_server(data_dir=tmp_path / "es384", signing_alg="ES384")
    for srv, expected in ((default, ["ES256", "RS256"]), (es384, ["RS256"])):
        with srv.client() as c:
            for path in ("/.well-known/openid-configuration",
                         "/.well-known/oauth-authorization-server"):
                meta = c.get(path).json()
                assert meta["id_token_signing_alg_values_supported"] == expected
                assert meta["access_token_signing_alg_values_supported"] == [
                    srv.settings.signing_alg]


def test_discovery_names_assertion_algorithms_wherever_private_key_jwt_is_listed(server):
    with server.client() as c:
        meta = c.get("/.well-known/oauth-authorization-server").json()
    for endpoint in ("token_endpoint", "revocation_endpoint", "introspection_endpoint"):
        assert "private_key_jwt" in meta[f"{endpoint}_auth_methods_supported"]
        algs = meta[f"{endpoint}_auth_signing_alg_values_supported"]
        assert algs == list(ASSERTION_ALGS) and "none" not in algs  # RFC 8414 §2
        assert not any(a.startswith("HS") for a in algs)


def test_clients_add_refuses_an_id_token_alg_the_server_cannot_sign(cli):
    refused = cli("clients", "add", "rp", "--redirect-uri", "https://app.example/cb",
                  "--id-token-alg", "EdDSA")  # the server's access-token algorithm is ES256
    assert refused.exit_code == 2
    assert "ES256 or RS256" in refused.output
    for alg in ("RS256", "ES256"):
        ok = cli("clients", "add", "rp", "--redirect-uri", "https://app.example/cb",
                 "--id-token-alg", alg, "--json")
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout)["id_token_signed_response_alg"] == alg


_UNSUPPORTED_METADATA = (  # features jotkit does not implement: never advertised
    "registration_endpoint", "check_session_iframe", "frontchannel_logout_session_supported",
    "request_object_signing_alg_values_supported", "id_token_encryption_alg_values_supported",
    "userinfo_signing_alg_values_supported", "userinfo_encryption_alg_values_supported",
    "tls_client_certificate_bound_access_tokens", "mtls_endpoint_aliases",
    "backchannel_authentication_endpoint", "authorization_details_types_supported",
    "acr_values_supported", "ui_locales_supported", "display_values_supported",
    "claims_locales_supported", "authorization_signing_alg_values_supported",
)


def test_discovery_advertises_nothing_unsupported_and_every_endpoint_answers(server):
    from jotkit.server.oauth.grants import GRANTS

    with server.client(follow_redirects=False) as c:
        meta = c.get("/.well-known/openid-configuration").json()
        assert meta == c.get("/.well-known/oauth-authorization-server").json()
        assert not set(_UNSUPPORTED_METADATA) & set(meta)
        for flag in ("claims_parameter_supported", "request_parameter_supported",
                     "request_uri_parameter_supported", "frontchannel_logout_supported"):
            assert meta[flag] is False
        assert meta["response_modes_supported"] == ["query"]
        assert meta["subject_types_supported"] == ["public"]
        assert set(meta["grant_types_supported"]) == set(GRANTS)
        # every advertised endpoint is served (an error for an empty request, never a 404/405)
        for name, method in (("authorization_endpoint", "GET"), ("token_endpoint", "POST"),
                             ("userinfo_endpoint", "GET"), ("userinfo_endpoint", "POST"),
                             ("end_session_endpoint", "GET"), ("jwks_uri", "GET"),
                             ("revocation_endpoint", "POST"),
                             ("introspection_endpoint", "POST"),
                             ("pushed_authorization_request_endpoint", "POST"),
                             ("device_authorization_endpoint", "POST")):
            path = meta[name].removeprefix("http://jotkit.test")
            r = c.request(method, path)
            assert r.status_code in (200, 400, 401, 415), (name, method, r.status_code)
