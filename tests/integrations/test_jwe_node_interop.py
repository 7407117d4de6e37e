"""JWE interop with Node's `jose` (npm), both directions, for every alg/enc pair it supports.

jose decrypts a jotkit token and encrypts one for jotkit, with the key jotkit
exported as a JWK. The only pairs jose cannot do on this Node are listed in
``NODE_GAPS`` with the reason; every other pair must work both ways.
"""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import jotkit
from jotkit import jwe
from jotkit.jwe_algorithms import CONTENT_ENCRYPTION, ENCRYPTION_NAMES, KEY_MANAGEMENT_NAMES

pytestmark = pytest.mark.node

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
PLAINTEXT = '{"sub":"interop","n":"\u00e9"}'
CURVES = ["P-256", "P-384", "P-521", "X25519", "X448"]
#: Node >= 18.19/20.11 refuses RSA PKCS #1 v1.5 private decryption (CVE-2023-46809,
#: the Marvin attack); jose still encrypts RSA1_5, so only that direction is checked.
NODE_GAPS = {"RSA1_5": "decrypt"}


def _combinations() -> list[tuple[str, str | None, str]]:
    out = []
    for alg in KEY_MANAGEMENT_NAMES:
        for crv in CURVES if alg.startswith("ECDH-ES") else [None]:
            for enc in ENCRYPTION_NAMES:
                out.append((alg, crv, enc))
    return out


@cache
def _key(alg: str, crv: str | None, enc: str) -> jotkit.Key:
    size = CONTENT_ENCRYPTION[enc].key_size * 8 if alg == "dir" else None
    return jotkit.Key.generate(alg, kid=f"{alg}-{crv}", crv=crv, size=size)


def _id(alg: str, crv: str | None, enc: str) -> str:
    return f"{alg}-{crv}-{enc}" if crv else f"{alg}-{enc}"


@pytest.fixture(scope="module")
def node_results(node: str) -> dict[str, Any]:
    cases = []
    for alg, crv, enc in _combinations():
        key = _key(alg, crv, enc)
        recipient = key if key.is_symmetric else key.public()
        p2c = 1000 if alg.startswith("PBES2") else None
        cases.append(
            {
                "id": _id(alg, crv, enc),
                "alg": alg,
                "enc": enc,
                "private_jwk": key.to_jwk(private=True),
                "public_jwk": key.to_jwk(private=key.is_symmetric),
                "token": jwe.encrypt(
                    PLAINTEXT.encode(), recipient, enc=enc, headers={"p2c": p2c} if p2c else None
                ),
                "p2c": p2c,
            }
        )
    proc = subprocess.run(
        [node, str(NODE_DIR / "jwe.mjs")],
        input=json.dumps({"plaintext": PLAINTEXT, "cases": cases}),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=NODE_DIR,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    return {r["id"]: r for r in data["results"]}


@pytest.mark.parametrize(
    ("alg", "crv", "enc"), _combinations(), ids=[_id(*c) for c in _combinations()]
)
def test_node_jose_and_jotkit_decrypt_each_other(
    node_results: dict[str, Any], alg: str, crv: str | None, enc: str
):
    result = node_results[_id(alg, crv, enc)]
    gap = NODE_GAPS.get(alg)
    if gap == "decrypt":
        assert result["decrypted"] is None and "decrypt" in result["errors"]
    else:
        assert result["decrypted"] == PLAINTEXT, result["errors"]
    assert result["token"] is not None, result["errors"]
    key = _key(alg, crv, enc)
    got = jwe.decrypt(result["token"], key, algorithms=[alg], encryptions=[enc])
    assert got == PLAINTEXT.encode()
