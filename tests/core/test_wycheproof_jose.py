"""Wycheproof JOSE vectors (C2SP/wycheproof testvectors_v1): JWE, JWK sets and JWS/JWE "crypto".

Files: ``json_web_encryption_test.json``, ``json_web_key_test.json`` and
``json_web_crypto_test.json``; every case of every group runs (test id
``<file>-tc<id>-<result>``). Rules, as for the JWS file in ``test_wycheproof.py``:

* ``valid`` must decrypt (or verify) to the expected plaintext, ``invalid`` must be rejected;
* a rejection is an :class:`jotkit.InvalidToken`, or an :class:`jotkit.InvalidKey` /
  :class:`jotkit.JWKSError` when the group's key material is refused at import;
  never any other exception;
* the allow-lists are the algorithms the group's keys are bound to (jotkit has no
  defaults), and every content encryption.

Where jotkit disagrees with a label on purpose, the case is in :data:`DEVIATIONS`
with the reason; the test then checks that jotkit does what the table says.
"""

from __future__ import annotations

from typing import Any

import pytest
from _vectors import load

import jotkit
from jotkit import jwe
from jotkit.jwe_algorithms import ENCRYPTION_NAMES, KEY_MANAGEMENT

FILES = {
    "jwe": "wycheproof/json_web_encryption_test.json",
    "jwk": "wycheproof/json_web_key_test.json",
    "crypto": "wycheproof/json_web_crypto_test.json",
}

_JSON_OK = (
    "jotkit.jwe.decrypt accepts the JWE JSON serialization by design (RFC 7516 §7.2, required by"
    " the API); the vector decrypts with the group key, so jotkit accepts it"
)
_MIXED = (
    "a private key set may mix an HMAC secret and EC keys: each key is bound to its own alg"
    " and chosen by kid + alg (RFC 8725 §3.1), so no key is used for another algorithm"
)
_ROCA = (
    "jotkit does not fingerprint ROCA (CVE-2017-15361) moduli; detection is a property of key"
    " generation, not of JOSE, and cryptography has no test for it"
)
#: (file, tcId) -> (what jotkit does instead of the label, why)
DEVIATIONS: dict[tuple[str, int], tuple[str, str]] = {
    ("jwe", 22): ("accept", _JSON_OK),
    ("crypto", 66): ("accept", _JSON_OK),
    ("jwk", 1): ("accept", _MIXED),
    ("crypto", 47): ("accept", _MIXED),
    ("jwk", 7): ("accept", _ROCA),
    ("crypto", 46): ("accept", _ROCA),
}


def _cases() -> list[Any]:
    params = []
    for short, path in FILES.items():
        for gi, group in enumerate(load(path)["testGroups"]):
            for tc in group["tests"]:
                tc_id = int(tc["tcId"])
                params.append(pytest.param(short, gi, tc, id=f"{short}-tc{tc_id}-{tc['result']}"))
    return params


def _keys(material: dict[str, Any]) -> jotkit.Key | jotkit.KeySet:
    if "keys" in material:
        keys = jotkit.KeySet.from_jwks(material, allow_symmetric=True)
        if keys.skipped:
            raise jotkit.InvalidKey("; ".join(keys.skipped))
        return keys
    return jotkit.Key.from_jwk(material)


def _run(short: str, group: dict[str, Any], tc: dict[str, Any]) -> bytes:
    """Decrypt or verify one case; return the plaintext/payload or raise a jotkit error."""
    if "jwe" in tc:
        keys = _keys(group["private"])
        members = [keys] if isinstance(keys, jotkit.Key) else list(keys)
        algs = sorted({k.alg for k in members if k.alg in KEY_MANAGEMENT})
        if not algs:
            raise jotkit.InvalidKey("no key of the group is bound to a JWE algorithm")
        return jwe.decrypt(tc["jwe"], keys, algorithms=algs, encryptions=list(ENCRYPTION_NAMES))
    keys = _keys(group.get("public") or group["private"])
    members = [keys] if isinstance(keys, jotkit.Key) else list(keys)
    algs = sorted({k.alg for k in members if k.alg in jotkit.ALGORITHM_NAMES})
    if not algs:
        raise jotkit.InvalidKey("no key of the group is bound to a JWS algorithm")
    if isinstance(keys, jotkit.Key) and not keys.is_symmetric:
        keys = keys.public()
    _header, payload = jotkit.jws_verify(tc["jws"], keys, algorithms=algs)
    return payload


@pytest.mark.parametrize(("short", "group_index", "tc"), _cases())
def test_wycheproof_jose(short: str, group_index: int, tc: dict[str, Any]) -> None:
    group = load(FILES[short])["testGroups"][group_index]
    expected = tc["result"]
    deviation = DEVIATIONS.get((short, int(tc["tcId"])))
    if deviation is not None:
        expected = "valid" if deviation[0] == "accept" else "invalid"
    rejection: Exception | None = None
    try:
        out = _run(short, group, tc)
    except (jotkit.InvalidToken, jotkit.InvalidKey, jotkit.JWKSError) as exc:
        rejection = exc  # anything else propagates and fails the test
    if rejection is not None:
        assert expected != "valid", f"{tc['comment']}: rejected with {rejection!r}"
        return
    assert expected != "invalid", f"{tc['comment']}: accepted"
    if "pt" in tc:
        assert out == bytes.fromhex(tc["pt"])


def test_wycheproof_jose_files_are_complete() -> None:
    for path in FILES.values():
        data = load(path)
        assert sum(len(g["tests"]) for g in data["testGroups"]) == data["numberOfTests"], path
    assert len(_cases()) == 139 + 26 + 83


def test_every_deviation_names_a_real_case_with_a_reason() -> None:
    ids = {
        (short, int(tc["tcId"]))
        for short, path in FILES.items()
        for g in load(path)["testGroups"]
        for tc in g["tests"]
    }
    for case, (outcome, reason) in DEVIATIONS.items():
        assert case in ids
        assert outcome in ("accept", "reject") and len(reason) > 40
