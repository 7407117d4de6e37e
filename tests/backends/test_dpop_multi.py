"""DPoP across two real ``jotkit serve`` processes on PostgreSQL + Redis (RFC 9449): a proof
used on instance A is refused on B (the replay cache is Redis), and a nonce made by A is
accepted by B (stateless nonces under the shared CSRF secret)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

import jotkit
from jotkit import dpop

from .util import (
    ServiceProcess,
    jotkit_bin,
    two_instances,
)

pytestmark = [
    pytest.mark.xdist_group("backend-processes"),
    pytest.mark.slow,
    pytest.mark.postgres,
    pytest.mark.redis,
]

TOKEN_URL = "http://jotkit.cluster/oauth/token"


@pytest.fixture(scope="module")
def pair(
    postgres_url: str, redis_url: str, pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServiceProcess, ServiceProcess, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("dpop-pair")
    with two_instances(postgres_url, redis_url, pg_template, tmp, "d",
                       JOTKIT_DPOP_REQUIRE_NONCE="1",
                       JOTKIT_CSRF_SECRET=secrets.token_urlsafe(32)) as pair:
        yield pair.a, pair.b, pair.env


def test_dpop_proof_replay_across_two_instances_on_postgres_and_redis_is_refused(pair):
    a, b, env = pair
    added = subprocess.run(
        [jotkit_bin(), "clients", "add", "svc", "--grant", "client_credentials", "--scope", "x",
         "--dpop-bound", "--json"], env=env, capture_output=True, text=True, timeout=60,
        check=True)
    reg = json.loads(added.stdout)
    auth = (reg["client_id"], reg["client_secret"])
    key = jotkit.Key.generate("ES256")

    def token(base: str, proof: str) -> httpx.Response:
        return httpx.post(base + "/oauth/token", data={"grant_type": "client_credentials"},
                          auth=auth, headers={"DPoP": proof}, timeout=10)

    r = token(a.url, dpop.proof(key, "POST", TOKEN_URL))
    assert r.status_code == 400 and r.json()["error"] == "use_dpop_nonce"
    nonce = r.headers["DPoP-Nonce"]
    deadline = time.monotonic() + 10  # the client registration reaches B's client cache
    proof = dpop.proof(key, "POST", TOKEN_URL, nonce=nonce)
    r = token(b.url, proof)  # A's nonce on B
    while r.status_code == 401 and time.monotonic() < deadline:
        proof = dpop.proof(key, "POST", TOKEN_URL, nonce=nonce)
        r = token(b.url, proof)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "DPoP"
    replay = token(a.url, proof)  # the same proof on A
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_dpop_proof"
    assert "already used" in replay.json()["error_description"]
