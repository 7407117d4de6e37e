"""Cross-language interop with the npm packages `jose` and `jsonwebtoken`.

jotkit verifies tokens signed by both Node libraries for every algorithm they
support, and both Node libraries verify jotkit tokens through a JWKS URL.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

import jotkit

from .conftest import AUDIENCE, ISSUER, JWKSServer

pytestmark = pytest.mark.node

NODE_DIR = Path(__file__).resolve().parents[1] / "node"

# jotkit name -> (algorithm passed to decode, signed by jsonwebtoken too?)
NODE_ALGS: dict[str, tuple[str, bool]] = {
    **{f"HS{n}": (f"HS{n}", True) for n in (256, 384, 512)},
    **{f"RS{n}": (f"RS{n}", True) for n in (256, 384, 512)},
    **{f"PS{n}": (f"PS{n}", True) for n in (256, 384, 512)},
    **{f"ES{n}": (f"ES{n}", True) for n in (256, 384, 512)},
    "ES256K": ("ES256K", False),
    "EdDSA": ("EdDSA", False),  # Ed25519
    "Ed448": ("EdDSA", False),
}


def run_node(node: str, script: str, payload: dict[str, Any]) -> dict[str, Any]:
    proc = subprocess.run(
        [node, str(NODE_DIR / script)],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=NODE_DIR,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


@pytest.fixture(scope="session")
def node_signed(node: str) -> dict[str, dict[str, Any]]:
    now = int(time.time())
    claims = {
        "sub": "node-user",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "scope": "orders:read",
        "n": 1.5,
        "unicode": "h\u00e9llo \u2603",
    }
    out = run_node(node, "sign.mjs", {"algs": list(NODE_ALGS), "claims": claims, "typ": "at+jwt"})
    return {r["alg"]: {**r, "claims": claims} for r in out["results"]}


def _verify(token: str, jwk: dict[str, Any], alg: str) -> dict[str, Any]:
    key = jotkit.Key.from_jwk(jwk)
    assert key.alg == alg
    return jotkit.decode(
        token, key, algorithms=[alg], issuer=ISSUER, audience=AUDIENCE, typ="at+jwt"
    )


@pytest.mark.parametrize("name", list(NODE_ALGS))
def test_jotkit_verifies_jose_tokens(node_signed, name: str):
    case = node_signed[name]
    alg, _ = NODE_ALGS[name]
    assert not case["errors"].get("jose"), case["errors"]
    claims = _verify(case["tokens"]["jose"], case["jwk"], alg)
    assert claims == case["claims"]


@pytest.mark.parametrize("name", [n for n, (_, jwt_too) in NODE_ALGS.items() if jwt_too])
def test_jotkit_verifies_jsonwebtoken_tokens(node_signed, name: str):
    case = node_signed[name]
    alg, _ = NODE_ALGS[name]
    assert not case["errors"].get("jsonwebtoken"), case["errors"]
    claims = _verify(case["tokens"]["jsonwebtoken"], case["jwk"], alg)
    assert claims == case["claims"]


@pytest.mark.parametrize("name", list(NODE_ALGS))
def test_jotkit_rejects_tampered_node_tokens(node_signed, name: str):
    case = node_signed[name]
    alg, _ = NODE_ALGS[name]
    header, _, sig = case["tokens"]["jose"].split(".")
    forged_claims = dict(case["claims"], sub="admin")
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged_claims).encode()).rstrip(b"=")
    with pytest.raises(jotkit.InvalidSignature):
        _verify(f"{header}.{forged_payload.decode()}.{sig}", case["jwk"], alg)
    # a key that is not the signer's (bound to another algorithm) is refused too
    other = jotkit.Key.from_jwk(node_signed["RS256" if name != "RS256" else "RS384"]["jwk"])
    with pytest.raises(jotkit.InvalidToken):
        jotkit.decode(
            case["tokens"]["jose"],
            other.with_kid(case["jwk"]["kid"]),
            algorithms=[alg, other.alg],
            audience=AUDIENCE,
        )


JOTKIT_SIGN_ALGS = ["RS256", "RS384", "PS256", "PS512", "ES256", "ES384", "ES512", "EdDSA"]


def test_node_verifies_jotkit_tokens_through_jwks(node: str, jwks_server: JWKSServer):
    keys = [jotkit.Key.generate(alg, kid=f"py-{alg}") for alg in JOTKIT_SIGN_ALGS]
    jwks_server.publish(*keys)
    tokens = [
        jotkit.encode(
            {"scope": "orders:read"},
            k,
            expires_in="5m",
            issuer=ISSUER,
            audience=AUDIENCE,
            subject=f"sub-{k.alg}",
            headers={"typ": "at+jwt"},
        )
        for k in keys
    ]
    bad = [
        # expired
        jotkit.encode(
            {},
            keys[0],
            expires_in=60,
            issuer=ISSUER,
            audience=AUDIENCE,
            headers={"typ": "at+jwt"},
            now=time.time() - 3600,
        ),
        # wrong audience
        jotkit.encode(
            {},
            keys[4],
            expires_in=60,
            issuer=ISSUER,
            audience="someone-else",
            headers={"typ": "at+jwt"},
        ),
        # signed by a key that is not published
        jotkit.encode(
            {},
            jotkit.Key.generate("ES256", kid="py-ES256"),
            expires_in=60,
            issuer=ISSUER,
            audience=AUDIENCE,
            headers={"typ": "at+jwt"},
        ),
    ]
    out = run_node(
        node,
        "verify_jwks.mjs",
        {
            "jwks_url": jwks_server.url,
            "tokens": tokens + bad,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithms": sorted({k.alg for k in keys}),
            "typ": "at+jwt",
        },
    )
    results = out["results"]
    for key, result in zip(keys, results[: len(keys)], strict=True):
        assert result["jose"]["ok"], (key.alg, result["jose"])
        assert result["jose"]["payload"]["sub"] == f"sub-{key.alg}"
        assert result["jose"]["header"]["kid"] == key.kid
        if key.alg == "EdDSA":
            assert not result["jsonwebtoken"]["ok"]  # jsonwebtoken has no EdDSA
        else:
            assert result["jsonwebtoken"]["ok"], (key.alg, result["jsonwebtoken"])
            assert result["jsonwebtoken"]["payload"]["sub"] == f"sub-{key.alg}"
    for result in results[len(keys) :]:
        assert not result["jose"]["ok"]
        assert not result["jsonwebtoken"]["ok"]
    expired, wrong_aud, wrong_key = results[len(keys) :]
    assert expired["jose"]["error"] == "ERR_JWT_EXPIRED"
    assert wrong_aud["jose"]["error"] == "ERR_JWT_CLAIM_VALIDATION_FAILED"
    assert wrong_key["jose"]["error"] == "ERR_JWS_SIGNATURE_VERIFICATION_FAILED"
