"""JWE interop with jwcrypto and joserfc, both directions, for every alg/enc pair each supports.

For each pair: the peer decrypts a jotkit token, and jotkit decrypts a peer token,
with the same key (exported by jotkit as a JWK). Both peers support all 198
combinations (17 key-management algorithms, ECDH-ES on five curves, 6 encs),
RSA1_5 included once named; compact and JSON serializations are both exercised.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import pytest

import jotkit
from jotkit import jwe
from jotkit.jwe_algorithms import CONTENT_ENCRYPTION, ENCRYPTION_NAMES, KEY_MANAGEMENT_NAMES

jwcrypto_jwe = pytest.importorskip("jwcrypto.jwe", reason="dev extra: jwcrypto")
joserfc_jwe = pytest.importorskip("joserfc.jwe", reason="dev extra: joserfc")
from joserfc.jwk import import_key as joserfc_import  # noqa: E402
from jwcrypto import jwk as jwcrypto_jwk  # noqa: E402

# joserfc warns that RSA1_5 is deprecated (so does jotkit: it needs naming in algorithms).
pytestmark = pytest.mark.filterwarnings("ignore:JWE algorithm .RSA1_5. is deprecated")

CURVES = {"ECDH-ES": ["P-256", "P-384", "P-521", "X25519", "X448"]}
PLAINTEXT = b'{"sub":"interop","n":"\xc3\xa9"}'


def _cases() -> list[Any]:
    out = []
    for alg in KEY_MANAGEMENT_NAMES:
        curves = CURVES["ECDH-ES"] if alg.startswith("ECDH-ES") else [None]
        for crv in curves:
            for enc in ENCRYPTION_NAMES:
                label = f"{alg}-{crv}-{enc}" if crv else f"{alg}-{enc}"
                out.append(pytest.param(alg, crv, enc, id=label))
    return out


@cache
def _key(alg: str, crv: str | None, enc: str) -> jotkit.Key:
    size = CONTENT_ENCRYPTION[enc].key_size * 8 if alg == "dir" else None
    return jotkit.Key.generate(alg, kid=f"{alg}-{crv}", crv=crv, size=size)


def _headers(alg: str) -> dict[str, Any] | None:
    return {"p2c": 1000} if alg.startswith("PBES2") else None


def _peer_jwk(key: jotkit.Key, private: bool) -> dict[str, Any]:
    jwk = key.to_jwk(private=private or key.is_symmetric)
    jwk.pop("use", None)
    return jwk


def _decrypt(token: str, key: jotkit.Key, alg: str, enc: str) -> bytes:
    return jwe.decrypt(token, key, algorithms=[alg], encryptions=[enc])


# --------------------------------------------------------------------------- jwcrypto

JWCRYPTO_ALGS = [*KEY_MANAGEMENT_NAMES, *ENCRYPTION_NAMES]  # RSA1_5 is off by default: name it


@pytest.mark.parametrize(("alg", "crv", "enc"), _cases())
def test_jwcrypto_decrypts_jotkit_and_jotkit_decrypts_jwcrypto(alg: str, crv: str | None, enc: str):
    key = _key(alg, crv, enc)
    recipient = key if key.is_symmetric else key.public()
    token = jwe.encrypt(PLAINTEXT, recipient, enc=enc, headers=_headers(alg))
    peer_private = jwcrypto_jwk.JWK(**_peer_jwk(key, True))
    theirs = jwcrypto_jwe.JWE()
    theirs.allowed_algs = JWCRYPTO_ALGS
    theirs.deserialize(token, key=peer_private)
    assert theirs.payload == PLAINTEXT
    out = jwcrypto_jwe.JWE(
        PLAINTEXT,
        protected=json.dumps({"alg": alg, "enc": enc, **(_headers(alg) or {})}),
    )
    out.allowed_algs = JWCRYPTO_ALGS
    out.add_recipient(jwcrypto_jwk.JWK(**_peer_jwk(key, False)))
    assert _decrypt(out.serialize(compact=True), key, alg, enc) == PLAINTEXT
    # And the general JSON serialization, both ways.
    general = json.loads(out.serialize())
    assert _decrypt(json.dumps(general), key, alg, enc) == PLAINTEXT
    doc = jwe.encrypt_json(
        PLAINTEXT, recipient, enc=enc, recipient_headers=[_headers(alg)], flattened=False
    )
    theirs = jwcrypto_jwe.JWE()
    theirs.allowed_algs = JWCRYPTO_ALGS
    theirs.deserialize(json.dumps(doc), key=peer_private)
    assert theirs.payload == PLAINTEXT


# --------------------------------------------------------------------------- joserfc


@pytest.mark.parametrize(("alg", "crv", "enc"), _cases())
def test_joserfc_decrypts_jotkit_and_jotkit_decrypts_joserfc(alg: str, crv: str | None, enc: str):
    key = _key(alg, crv, enc)
    recipient = key if key.is_symmetric else key.public()
    token = jwe.encrypt(PLAINTEXT, recipient, enc=enc, headers=_headers(alg))
    private = joserfc_import(_peer_jwk(key, True))
    result = joserfc_jwe.decrypt_compact(token, private, algorithms=[alg, enc])
    assert result.plaintext == PLAINTEXT
    header = {"alg": alg, "enc": enc, **(_headers(alg) or {})}
    public = joserfc_import(_peer_jwk(key, False))
    theirs = joserfc_jwe.encrypt_compact(header, PLAINTEXT, public, algorithms=[alg, enc])
    assert _decrypt(theirs, key, alg, enc) == PLAINTEXT
    doc = jwe.encrypt_json(PLAINTEXT, recipient, enc=enc, recipient_headers=[_headers(alg)])
    flat = joserfc_jwe.decrypt_json(doc, private, algorithms=[alg, enc])
    assert flat.plaintext == PLAINTEXT
