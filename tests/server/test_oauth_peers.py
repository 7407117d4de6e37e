"""Real OAuth clients against a running ``jotkit serve`` process: Authlib's Python client
(client_credentials, the code exchange with PKCE, refresh, private_key_jwt) and panva's
oauth4webapi (npm), which validates every access token as RFC 9068 (``validateJwtAccessToken``)
and the ID token with its default checks. Clients are registered with ``jotkit clients add
--json``; codes come from :func:`jotkit.server.oauth.codes.issue_code` on the same database
(the authorization endpoint has its own browser tests)."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

import jotkit
from jotkit.server.clock import SystemClock
from jotkit.server.oauth.codes import AuthorizationRequest, issue_code, pkce_s256

from .harness import PASSWORD
from .live import jotkit_serve

pytestmark = pytest.mark.xdist_group("oauth-peers")

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
REDIRECT = "https://app.example/callback"


@dataclass
class Serve:
    url: str
    env: dict[str, str]
    data_dir: Path

    def cli(self, *args: str, stdin: str | None = None) -> str:
        exe = Path(sys.executable).with_name("jotkit")
        proc = subprocess.run([str(exe), *args], env=self.env, input=stdin, text=True,
                              capture_output=True, timeout=120, check=False)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def client(self, *args: str) -> dict[str, Any]:
        out: dict[str, Any] = json.loads(self.cli("clients", "add", *args, "--json"))
        return out

    def code(self, client_id: str, scope: tuple[str, ...], nonce: str | None,
             resource: tuple[str, ...] = ()) -> tuple[str, str]:
        from jotkit.server.store.sql import SqlStore

        verifier = secrets.token_urlsafe(48)

        async def make() -> str:
            store = SqlStore(f"sqlite+aiosqlite:///{self.data_dir / 'jotkit.db'}")
            try:
                user = await store.users.get_by_email("alice@example.com")
                assert user is not None
                service = SimpleNamespace(clock=SystemClock(), store=store)
                return await issue_code(service, AuthorizationRequest(  # type: ignore[arg-type]
                    client_id=client_id, user_id=user.id, redirect_uri=REDIRECT,
                    code_challenge=pkce_s256(verifier), scope=scope, nonce=nonce,
                    auth_time=time.time() - 1, sid="sso-" + secrets.token_urlsafe(8),
                    resource=resource,
                ))
            finally:
                await store.close()

        return asyncio.run(make()), verifier


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    data = tmp_path_factory.mktemp("serve")
    with jotkit_serve(data, KEYRING_SYNC_INTERVAL="0.5") as (url, env):
        srv = Serve(url, env, data)
        srv.cli("users", "add", "alice@example.com", stdin=PASSWORD + "\n")
        yield srv


# -- Authlib ------------------------------------------------------------------------------
def test_authlib_client_credentials(serve: Serve):
    from authlib.integrations.httpx_client import OAuth2Client

    reg = serve.client("reports", "--grant", "client_credentials", "--scope", "reports:read")
    with OAuth2Client(reg["client_id"], reg["client_secret"], scope="reports:read") as client:
        token = client.fetch_token(serve.url + "/oauth/token", grant_type="client_credentials")
        assert token["token_type"] == "Bearer" and token["scope"] == "reports:read"
        claims = jotkit.decode_unverified(token["access_token"])[1]
        assert claims["sub"] == claims["client_id"] == reg["client_id"]


def test_authlib_code_exchange_with_pkce_and_refresh(serve: Serve):
    from authlib.integrations.httpx_client import OAuth2Client

    reg = serve.client("web", "--redirect-uri", REDIRECT, "--auth-method", "client_secret_post")
    code, verifier = serve.code(reg["client_id"], ("openid", "email", "offline_access"), "n1")
    with OAuth2Client(reg["client_id"], reg["client_secret"], redirect_uri=REDIRECT,
                      token_endpoint_auth_method="client_secret_post") as client:
        token = client.fetch_token(serve.url + "/oauth/token", grant_type="authorization_code",
                                   code=code, code_verifier=verifier)
        assert {"access_token", "id_token", "refresh_token"} <= set(token)
        info = client.get(serve.url + "/oauth/userinfo").json()  # Authlib sends the bearer
        assert info["email"] == "alice@example.com"
        new = client.refresh_token(serve.url + "/oauth/token",
                                   refresh_token=token["refresh_token"])
        assert new["refresh_token"] != token["refresh_token"]


def test_authlib_private_key_jwt(serve: Serve, tmp_path: Path):
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT

    key = jotkit.Key.generate("RS256").with_thumbprint_kid()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.public().to_jwk()]}))
    reg = serve.client("signer", "--grant", "client_credentials", "--scope", "a",
                       "--auth-method", "private_key_jwt", "--jwks", str(jwks))
    assert "client_secret" not in reg
    url = serve.url + "/oauth/token"
    with OAuth2Client(reg["client_id"], key.to_pem(private=True),
                      token_endpoint_auth_method=PrivateKeyJWT(url)) as client:
        client.register_client_auth_method(PrivateKeyJWT(url))
        token = client.fetch_token(url, grant_type="client_credentials")
        assert token["scope"] == "a"


# -- oauth4webapi (npm) -------------------------------------------------------------------
def test_oauth4webapi_validates_access_tokens_as_rfc9068(serve: Serve, node_bin: str):
    svc = serve.client("svc", "--grant", "client_credentials", "--scope", "reports:read")
    web = serve.client("web", "--redirect-uri", REDIRECT)
    code, verifier = serve.code(web["client_id"], ("openid", "email", "offline_access"), "n-1")
    payload = {
        "issuer": serve.url, "audience": "jotkit", "resource_url": "https://api.example/",
        "service": {"client_id": svc["client_id"], "client_secret": svc["client_secret"],
                    "scope": "reports:read"},
        "web": {"client_id": web["client_id"], "client_secret": web["client_secret"],
                "code": code, "code_verifier": verifier, "redirect_uri": REDIRECT,
                "nonce": "n-1"},
    }
    proc = subprocess.run([node_bin, str(NODE_DIR / "oauth.mjs")], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=120, cwd=NODE_DIR, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["client_credentials"]["client_id"] == svc["client_id"]
    assert out["client_credentials"]["sub"] == svc["client_id"]
    assert out["code"]["client_id"] == web["client_id"] and out["code"]["scope"]
    assert out["refresh"]["sid"] == out["code"]["sid"] and out["rotated"] is True
    assert out["id_token_claims"]["nonce"] == "n-1"
    assert out["id_token_claims"]["sub"] == out["code"]["sub"]
    assert out["wrong_audience"] != "accepted"


# -- token exchange (RFC 8693) ------------------------------------------------------------
_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
_ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def _exchange_setup(serve: Serve) -> tuple[dict[str, Any], str]:
    """A service client for https://a.example that may exchange for https://b.example, and
    a user's token for https://a.example from the code flow of a web app."""
    svc = serve.client("svc-a", "--audience", "https://a.example", "--grant", _EXCHANGE,
                       "--exchange-audience", "https://b.example", "--exchange-scope",
                       "orders:read")
    web = serve.client("web", "--redirect-uri", REDIRECT, "--resource", "https://a.example")
    code, verifier = serve.code(web["client_id"], ("openid", "orders:read", "orders:write"),
                                None, resource=("https://a.example",))
    r = httpx.post(serve.url + "/oauth/token", auth=(web["client_id"], web["client_secret"]),
                   data={"grant_type": "authorization_code", "code": code,
                         "redirect_uri": REDIRECT, "code_verifier": verifier})
    assert r.status_code == 200, r.text
    return svc, str(r.json()["access_token"])


def test_authlib_token_exchange(serve: Serve):
    from authlib.integrations.httpx_client import OAuth2Client

    svc, subject = _exchange_setup(serve)
    with OAuth2Client(svc["client_id"], svc["client_secret"]) as client:
        token = client.fetch_token(serve.url + "/oauth/token", grant_type=_EXCHANGE,
                                   subject_token=subject, subject_token_type=_ACCESS,
                                   audience="https://b.example")
    assert token["issued_token_type"] == _ACCESS and token["scope"] == "orders:read"
    keys = jotkit.KeySet.from_jwks(httpx.get(serve.url + "/.well-known/jwks.json").json())
    claims = jotkit.Verifier(keys, algorithms=["ES256"], issuer=serve.url,
                             audience="https://b.example", typ="at+jwt").decode(
        token["access_token"])
    assert claims["act"] == {"sub": svc["client_id"]} and claims["client_id"] == svc["client_id"]


def test_oauth4webapi_token_exchange_generic_grant(serve: Serve, node_bin: str):
    svc, subject = _exchange_setup(serve)
    payload = {"issuer": serve.url, "client_id": svc["client_id"],
               "client_secret": svc["client_secret"], "subject_token": subject,
               "audience": "https://b.example", "scope": "orders:read"}
    proc = subprocess.run([node_bin, str(NODE_DIR / "exchange.mjs")], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=120, cwd=NODE_DIR, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["grant_supported"] is True and out["issued_token_type"] == _ACCESS
    assert out["scope"] == "orders:read"
    assert out["claims"]["act"] == {"sub": svc["client_id"]}
    assert out["claims"]["aud"] == "https://b.example"
