"""JWE decryption in the debugger page through WebCrypto, in a real Chromium.

jotkit encrypts; the page must decrypt every pair WebCrypto can do, refuse the rest
with ``webcrypto_unsupported`` and a reason, and never send the token or key anywhere.
"""

from __future__ import annotations

import json

import pytest

import jotkit
from jotkit import jwe

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

PLAIN = '{"sub":"alice","card":"4111 1111 1111 1111"}'
SUPPORTED_ALGS = [
    ("RSA-OAEP", None),
    ("RSA-OAEP-256", None),
    ("A128KW", None),
    ("A256KW", None),
    ("ECDH-ES", "P-256"),
    ("ECDH-ES+A128KW", "P-384"),
    ("ECDH-ES+A256KW", "P-521"),
]
SUPPORTED_ENCS = ["A128GCM", "A256GCM", "A128CBC-HS256", "A256CBC-HS512"]


def _material(key: jotkit.Key) -> dict:
    return {"type": "jwk", "text": json.dumps(key.to_jwk(private=True))}


def _cases():
    out = []
    for alg, crv in SUPPORTED_ALGS:
        key = jotkit.Key.generate(alg, kid=f"{alg}-k", crv=crv)
        for enc in SUPPORTED_ENCS:
            recipient = key if key.is_symmetric else key.public()
            token = jwe.encrypt(PLAIN.encode(), recipient, enc=enc)
            out.append({"id": f"{alg}-{enc}", "token": token, "key": _material(key)})
    for enc in SUPPORTED_ENCS:
        size = {"A128GCM": 16, "A256GCM": 32, "A128CBC-HS256": 32, "A256CBC-HS512": 64}[enc]
        key = jotkit.Key.generate("dir", size=size * 8)
        out.append(
            {
                "id": f"dir-{enc}",
                "token": jwe.encrypt(PLAIN.encode(), key, enc=enc),
                "key": _material(key),
            }
        )
    return out


def test_page_decrypts_every_webcrypto_pair(page):
    cases = _cases()
    page.request_log.watch(*[c["token"] for c in cases])
    got = page.evaluate(
        """async (cases) => {
             const out = [];
             for (const c of cases) out.push(await window.jotkitDebugger.decryptJWE(c.token, c.key));
             return out;
           }""",
        cases,
    )
    for case, res in zip(cases, got, strict=True):
        assert res["ok"] is True, (case["id"], res)
        assert res["text"] == PLAIN, case["id"]
    assert len(cases) == 32
    assert page.request_log.leaks() == []


def test_page_says_what_webcrypto_cannot_do(page):
    rsa15 = jotkit.Key.generate("RSA1_5")
    kw192 = jotkit.Key.generate("A192KW")
    pbes2 = jotkit.Key.from_secret("pw", "PBES2-HS256+A128KW")
    x25519 = jotkit.Key.generate("ECDH-ES", crv="X25519")
    a256 = jotkit.Key.generate("A256KW")
    cases = [
        (jwe.encrypt(b"x", rsa15.public()), _material(rsa15), "PKCS1"),
        (jwe.encrypt(b"x", kw192), _material(kw192), "192-bit"),
        (jwe.encrypt(b"x", a256, enc="A192GCM"), _material(a256), "192-bit"),
        (jwe.encrypt(b"x", pbes2, headers={"p2c": 1000}), _material(pbes2), "PBES2"),
        (jwe.encrypt(b"x", a256, zip="DEF"), _material(a256), "zip"),
    ]
    got = page.evaluate(
        """async (cases) => {
             const out = [];
             for (const [t, k] of cases) out.push(await window.jotkitDebugger.decryptJWE(t, k));
             return out;
           }""",
        [[t, k] for t, k, _ in cases],
    )
    for (_, _, why), res in zip(cases, got, strict=True):
        assert res["ok"] is False and res["code"] == "webcrypto_unsupported", res
        assert "jotkit decrypt" in res["message"] and why in res["message"], res
    # X25519 is either supported by this Chromium or refused cleanly: never a wrong plaintext.
    res = page.evaluate(
        "async ([t, k]) => window.jotkitDebugger.decryptJWE(t, k)",
        [jwe.encrypt(b"x25519", x25519.public()), _material(x25519)],
    )
    assert res.get("text") == "x25519" or res["ok"] is False


def test_wrong_key_and_tampering_fail_cleanly(page):
    key = jotkit.Key.generate("ECDH-ES+A256KW")
    other = jotkit.Key.generate("ECDH-ES+A256KW")
    token = jwe.encrypt(PLAIN.encode(), key.public())
    parts = token.split(".")
    parts[3] = ("B" if parts[3][0] == "A" else "A") + parts[3][1:]
    got = page.evaluate(
        """async ([t, bad, k, o]) => [
             await window.jotkitDebugger.decryptJWE(t, o),
             await window.jotkitDebugger.decryptJWE(bad, k),
           ]""",
        [token, ".".join(parts), _material(key), _material(other)],
    )
    assert [r["code"] for r in got] == ["decryption_failed", "decryption_failed"]


def test_pasting_a_jwe_and_its_key_decrypts_in_the_page(page):
    expect = __import__("playwright.sync_api", fromlist=["expect"]).expect
    key = jotkit.Key.generate("RSA-OAEP-256", kid="r1")
    token = jwe.encrypt(PLAIN.encode(), key.public(), enc="A256GCM")
    page.request_log.watch(token)
    page.fill("#token", token)
    expect(page.locator("#jwe-note")).to_be_visible()
    expect(page.locator("#jwe-note")).to_contain_text("cannot do RSA1_5")
    expect(page.locator("#header")).to_contain_text("RSA-OAEP-256")
    expect(page.locator("#payload")).to_contain_text("encrypted JWE")
    expect(page.locator("#findings li[data-code='jwe_payload_hidden']")).to_have_count(1)
    page.select_option("#key-type", "jwk")
    page.fill("#key", json.dumps(key.to_jwk(private=True)))
    expect(page.locator("#verify-result")).to_have_attribute("data-state", "valid")
    expect(page.locator("#verify-result")).to_contain_text("Decrypted")
    expect(page.locator("#payload")).to_contain_text("4111 1111 1111 1111")
    expect(page.locator("#unverified-badge")).to_have_text("DECRYPTED")
    assert page.request_log.leaks() == []
