"""panva's oauth4webapi (npm) as a real DPoP client (RFC 9449) of a running ``jotkit serve``
that requires DPoP nonces, with a client registered by ``jotkit clients add --dpop-bound``:
client_credentials with a DPoP handle (the nonce dance: ``use_dpop_nonce``, then a retry with
the ``DPoP-Nonce`` value), then a FastAPI API protected by ``jotkit.integrations`` called with
``protectedResourceRequest`` and the handle. The same token as a plain bearer is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import jotkit

from .live import jotkit_serve, protected_api

pytestmark = pytest.mark.xdist_group("oauth-peers")

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """``jotkit serve`` (a real process) requiring DPoP nonces: ``(url, env)``."""
    with jotkit_serve(tmp_path_factory.mktemp("serve-dpop"), DPOP_REQUIRE_NONCE="1") as live:
        yield live


@pytest.fixture(scope="module")
def api(serve: tuple[str, dict[str, str]]) -> Iterator[str]:
    """``GET /orders`` (scope ``orders:read``) protected by ``jotkit.integrations``."""
    with protected_api(serve[0], "jotkit", scopes=("orders:read",)) as url:
        yield url


def test_oauth4webapi_dpop_client_credentials_with_nonce_then_protected_api(
    serve: tuple[str, dict[str, str]], api: str, node_bin: str
):
    url, env = serve
    jotkit_cli = str(Path(sys.executable).with_name("jotkit"))
    added = subprocess.run(
        [jotkit_cli, "clients", "add", "orders-svc", "--grant", "client_credentials",
         "--scope", "orders:read", "--dpop-bound", "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    reg = json.loads(added.stdout)
    assert reg["dpop_bound_access_tokens"] is True
    # the registration is enforced: a token request without a proof is refused
    r = httpx.post(url + "/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(reg["client_id"], reg["client_secret"]))
    assert r.status_code == 400 and r.json()["error"] == "invalid_dpop_proof"
    payload = {"issuer": url, "client_id": reg["client_id"],
               "client_secret": reg["client_secret"], "scope": "orders:read",
               "resource_url": api}
    proc = subprocess.run([node_bin, str(NODE_DIR / "dpop.mjs")], input=json.dumps(payload),
                          capture_output=True, text=True, timeout=120, cwd=NODE_DIR, check=False)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "ES256" in out["algs"]
    assert out["first_error"] == "use_dpop_nonce" and out["token_requests"] == 2
    assert out["token_type"].lower() == "dpop"
    jkt = jotkit.decode_unverified(out["access_token"])[1]["cnf"]["jkt"]
    assert out["api"] == {"status": 200, "body": {"sub": reg["client_id"], "jkt": jkt},
                          "challenge": None}
    assert out["api_again"]["status"] == 200
    assert out["as_bearer"]["status"] == 401
    assert out["as_bearer"]["challenge"].startswith('DPoP algs="')
