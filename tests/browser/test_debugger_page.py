"""The debugger page in a real Chromium: decoding, verification, audit, generate tab,
and parity of the in-page audit and WebCrypto verification with the Python core."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

import jotkit
from jotkit.audit import audit

# one worker runs all page tests under `pytest -n 2 --dist loadgroup`: one Chromium
pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

DATA = json.loads(
    (Path(__file__).resolve().parents[1] / "audit" / "tokens.json").read_text("utf-8")
)
NOW = DATA["now"]
SECRET = "k7Hq2-xW9vLm4pR8tY1uZ3aB6cD0eF5gJ2hN"
SEED = int(os.environ.get("JOTKIT_FUZZ_SEED", "20261123"))
JWS = re.compile(r"^[\w-]+\.[\w-]+\.[\w-]+$")


def _expect():
    # Playwright's expect polls without eval(), which the page's strict CSP forbids.
    from playwright.sync_api import expect

    return expect


def _python_verify(case: dict) -> bool:
    """What the Python core says about a (token, key material) pair."""
    tok, mat = case["token"], case["key"]
    try:
        alg = jotkit.decode_unverified(tok)[0].get("alg")
        key: jotkit.Key | jotkit.KeySet
        if mat["type"] == "secret":
            key = jotkit.Key.from_secret(mat["text"], alg)
        elif mat["type"] == "pem":
            key = jotkit.Key.from_pem(mat["text"], alg)
        elif mat["type"] == "jwk":
            key = jotkit.Key.from_jwk(mat["text"])
        else:
            key = jotkit.KeySet.from_jwks(mat["text"])
        jotkit.decode_complete(tok, key, algorithms=[alg], require=(), now=NOW)
    except (jotkit.InvalidToken, jotkit.InvalidKey, ValueError):
        return False
    return True


def test_audit_parity_with_python(page):
    """The page's audit gives the same findings (code, severity, detail) as jotkit.audit."""
    cases = DATA["audit"]
    page.request_log.watch(*(c["token"] for c in cases))
    got = page.evaluate(
        """async ({tokens, now}) => {
             const out = [];
             for (const t of tokens) {
               const fs = await window.jotkitDebugger.audit(t, {now});
               out.push(fs.map((f) => [f.code, f.severity, f.code === "malformed" ? "" : f.detail]));
             }
             return out;
           }""",
        {"tokens": [c["token"] for c in cases], "now": NOW},
    )
    for case, page_findings in zip(cases, got, strict=True):
        py = [
            [f.code, f.severity, "" if f.code == "malformed" else f.detail]
            for f in audit(case["token"], now=NOW)
        ]
        assert page_findings == py, case["name"]
        assert sorted(f[0] for f in page_findings) == case["expected"], case["name"]


def test_verify_parity_with_python(page):
    """WebCrypto verification agrees with the Python core for every alg family and key form."""
    cases = DATA["verify"]
    page.request_log.watch(*(c["token"] for c in cases), SECRET)
    got = page.evaluate(
        """async (cases) => {
             const out = [];
             for (const c of cases) out.push(await window.jotkitDebugger.verify(c.token, c.key));
             return out;
           }""",
        cases,
    )
    families = set()
    for case, res in zip(cases, got, strict=True):
        py = _python_verify(case)
        assert py == case["valid"], case["name"]
        assert res["valid"] == py, (case["name"], res)
        if py:
            families.add(jotkit.decode_unverified(case["token"])[0]["alg"][:2])
    assert families >= {"HS", "RS", "PS", "ES", "Ed"}


def _fresh_hs_token(**claims) -> str:
    key = jotkit.Key.from_secret(SECRET, "HS256", kid="demo")
    return jotkit.encode({"sub": "alice", **claims}, key, expires_in="14m")


def test_paste_token_shows_parts_claims_and_audit(page):
    tok = _fresh_hs_token(password="hunter2", card="4111 1111 1111 1111")
    page.request_log.watch(tok, SECRET)
    page.fill("#token", tok)
    page.wait_for_selector("#findings li")
    header = json.loads(page.inner_text("#header"))
    payload = json.loads(page.inner_text("#payload"))
    assert header == {"alg": "HS256", "typ": "JWT", "kid": "demo"}
    assert payload["sub"] == "alice"
    assert page.inner_text("#signature") == tok.rsplit(".", 1)[1]
    # colour-coded: three coloured segments
    for cls, seg in zip(
        ("part-header", "part-payload", "part-signature"), tok.split("."), strict=True
    ):
        assert page.inner_text(f"#token-colored .{cls}") == seg
    assert page.inner_text("#unverified-badge") == "UNVERIFIED"
    # human times and a live countdown
    exp_row = page.inner_text("#claims tr[data-claim='exp']")
    assert "expires:" in exp_row
    assert "in 13 min" in exp_row or "in 14 min" in exp_row
    first = page.inner_text("#countdown")
    assert first.startswith("Expires in 1")
    _expect()(page.locator("#countdown")).not_to_have_text(first, timeout=5000)
    # audit findings match the Python audit
    codes = page.eval_on_selector_all("#findings li", "els => els.map(e => e.dataset.code)")
    assert codes == [f.code for f in audit(tok)]
    assert {"sensitive_password", "sensitive_card_number"} <= set(codes)
    assert "Why" not in page.inner_text("#findings")  # texts come from the rules file
    assert "anyone holding the token can read the password" in page.inner_text("#findings")


def test_verify_secret_success_and_failure(page):
    tok = _fresh_hs_token()
    page.request_log.watch(tok, SECRET)
    page.fill("#token", tok)
    page.select_option("#key-type", "secret")
    page.fill("#key", SECRET)
    page.wait_for_selector("#verify-result[data-state='valid']")
    assert page.inner_text("#unverified-badge") == "SIGNATURE VERIFIED"
    page.fill("#key", SECRET + "-wrong")
    page.wait_for_selector("#verify-result[data-state='invalid']")
    assert "Invalid" in page.inner_text("#verify-result")
    assert page.inner_text("#unverified-badge") == "UNVERIFIED"


def test_verify_public_keys_and_jwks(page):
    key = jotkit.Key.generate("ES384", kid="e1")
    tok = jotkit.encode({"sub": "bob"}, key, expires_in="5m")
    pem = key.public().to_pem().decode()
    jwks = json.dumps(jotkit.KeySet([key.public()]).to_jwks())
    page.request_log.watch(tok)
    page.fill("#token", tok)
    page.select_option("#key-type", "pem")
    page.fill("#key", pem)
    page.wait_for_selector("#verify-result[data-state='valid']")
    page.select_option("#key-type", "jwks")
    page.fill("#key", jwks)
    page.wait_for_selector("#verify-result[data-state='valid']")
    other = json.dumps(jotkit.KeySet([jotkit.Key.generate("ES384", kid="zz").public()]).to_jwks())
    page.fill("#key", other)
    page.wait_for_selector("#verify-result[data-code='key_not_found']")


def test_malformed_token_is_reported(page):
    page.fill("#token", "definitely.not.a-token")
    page.wait_for_selector("#findings li[data-code='malformed']")
    assert page.is_visible("#decode-error")
    assert "Cannot decode" in page.inner_text("#decode-error")


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
def test_generate_tab_signs_verifiable_tokens(page, alg):
    page.click("#tab-generate")
    page.select_option("#gen-alg", alg)
    page.fill("#gen-payload", json.dumps({"sub": "gen-user", "role": "tester"}))
    page.click("#gen-key")
    _expect()(page.locator("#gen-public")).not_to_have_value("", timeout=20000)
    page.click("#gen-sign")
    _expect()(page.locator("#gen-token")).to_have_value(JWS, timeout=20000)
    tok = page.input_value("#gen-token")
    page.request_log.watch(tok)
    public_jwk = page.input_value("#gen-public").split("\n\n", 1)[0]
    key = jotkit.Key.from_jwk(public_jwk)
    claims = jotkit.decode(tok, key, algorithms=[alg])
    assert claims["sub"] == "gen-user"
    # the page names generated keys by their RFC 7638 thumbprint, like the CLI
    assert key.kid == key.thumbprint()
    assert jotkit.decode_unverified(tok)[0]["kid"] == key.kid
    assert claims["exp"] - claims["iat"] == 900
    # and the decoder tab agrees
    page.click("#gen-open")
    page.wait_for_selector("#verify-result[data-state='valid']")
    assert page.is_visible("#panel-decode")


def test_generate_with_pasted_secret(page):
    page.click("#tab-generate")
    page.select_option("#gen-alg", "HS512")
    page.select_option("#gen-keytype", "secret")
    secret = SECRET * 2
    page.request_log.watch(secret)
    page.fill("#gen-key-input", secret)
    page.click("#gen-sign")
    _expect()(page.locator("#gen-token")).to_have_value(JWS)
    tok = page.input_value("#gen-token")
    page.request_log.watch(tok)
    key = jotkit.Key.from_secret(secret, "HS512")
    assert jotkit.decode(tok, key, algorithms=["HS512"])["sub"] == "user-123"
    page.click("#gen-open")
    page.wait_for_selector("#verify-result[data-state='valid']")


def test_page_requests_only_its_own_static_files(page, debugger_url):
    tok = _fresh_hs_token()
    page.request_log.watch(tok)
    page.fill("#token", tok)
    page.fill("#key", SECRET)
    page.wait_for_selector("#verify-result[data-state='valid']")
    paths = sorted(
        {
            r["url"][len(debugger_url) - 1 :]
            for r in page.request_log.requests
            if r["url"].startswith(debugger_url)
        }
    )
    assert paths == ["/", "/app.js", "/audit.js", "/audit_rules.json", "/jose.js", "/style.css"]
    assert all(r["method"] == "GET" for r in page.request_log.requests)


def _random_tokens(n: int, seed: int) -> list[str]:
    """Deterministic pseudo-random tokens mixing every rule's triggers and near misses."""
    import hashlib
    import hmac
    import random

    from jotkit._b64 import b64encode

    rnd = random.Random(seed)
    names = [
        "sub",
        "password",
        "pwd",
        "ssn",
        "card",
        "note",
        "api_key",
        "exp",
        "iat",
        "nbf",
        "x",
        "Pass_Word",
        "tax_id",
        "data",
        "ünï",
        "private_key",
    ]
    values = [
        lambda: rnd.randint(-(2**60), 2**60),
        lambda: rnd.randint(NOW - 10**5, NOW + 10**5),
        lambda: rnd.random() * 1e10,
        lambda: "".join(rnd.choice("0123456789 -") for _ in range(rnd.randint(0, 22))),
        lambda: "".join(rnd.choice("aZ9-_/.'\";é€😀") for _ in range(rnd.randint(0, 12))),
        lambda: rnd.choice(
            [
                "4111111111111111",
                "123-45-6789",
                "AKIAIOSFODNN7EXAMPLE",
                "",
                None,
                True,
                [],
                {},
                "sk-" + "a" * 24,
                "-----BEGIN PRIVATE KEY-----",
            ]
        ),
        lambda: [rnd.randint(0, 9), {"password": "p"}],
    ]
    tokens = []
    for _ in range(n):
        header = {"alg": rnd.choice(["HS256", "HS384", "none", "ES256", "RS1", "NONE"])}
        for extra in ("typ", "kid", "jku", "x5c"):
            if rnd.random() < 0.3:
                header[extra] = rnd.choice(["JWT", "../a", "k'1", "a/b", "ok-kid", ["x"]])
        payload = {rnd.choice(names): rnd.choice(values)() for _ in range(rnd.randint(0, 6))}
        si = (
            b64encode(json.dumps(header, ensure_ascii=False).encode())
            + "."
            + b64encode(json.dumps(payload, ensure_ascii=False).encode())
        )
        secret = rnd.choice([b"secret", b"", b"changeme", SECRET.encode()])
        sig = hmac.new(secret, si.encode(), hashlib.sha256).digest()
        tokens.append(si + "." + b64encode(sig))
    return tokens


def test_audit_parity_on_random_tokens(page):
    tokens = _random_tokens(int(os.environ.get("JOTKIT_FUZZ_TOKENS", "150")), seed=SEED)
    page.request_log.watch(*tokens)
    got = page.evaluate(
        """async ({tokens, now}) => {
             const out = [];
             for (const t of tokens) {
               const fs = await window.jotkitDebugger.audit(t, {now});
               out.push(fs.map((f) => [f.code, f.code === "malformed" ? "" : f.detail]));
             }
             return out;
           }""",
        {"tokens": tokens, "now": NOW},
    )
    for tok, page_findings in zip(tokens, got, strict=True):
        py = [[f.code, "" if f.code == "malformed" else f.detail] for f in audit(tok, now=NOW)]
        assert page_findings == py, tok


def _self_signed_cert_pem(key: jotkit.Key) -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    private = serialization.load_pem_private_key(key.to_pem(private=True), password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jotkit test")])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(12345)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365))
        .sign(private, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_verify_pkcs1_certificate_and_ed25519_forms(page):
    """Less common key forms: PKCS#1 RSA public PEM, X.509 certificate, the Ed25519 alg name."""
    from cryptography.hazmat.primitives import serialization

    rsa = jotkit.Key.generate("RS384")
    rsa_pub = serialization.load_pem_public_key(rsa.public().to_pem())
    pkcs1 = rsa_pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    ).decode()
    assert "BEGIN RSA PUBLIC KEY" in pkcs1
    es = jotkit.Key.generate("ES512")
    ed = jotkit.Key.generate("Ed25519")
    cases = [
        (jotkit.encode({"sub": "a"}, rsa, expires_in=60), {"type": "pem", "text": pkcs1}),
        (
            jotkit.encode({"sub": "b"}, es, expires_in=60),
            {"type": "pem", "text": _self_signed_cert_pem(es)},
        ),
        (
            jotkit.encode({"sub": "c"}, ed, expires_in=60),
            {"type": "jwk", "text": json.dumps(ed.public().to_jwk())},
        ),
        (
            jotkit.encode({"sub": "d"}, ed, expires_in=60),
            {"type": "pem", "text": ed.public().to_pem().decode()},
        ),
    ]
    page.request_log.watch(*(t for t, _ in cases))
    for tok, mat in cases:
        alg = jotkit.decode_unverified(tok)[0]["alg"]
        if mat["type"] == "pem":
            key = jotkit.Key.from_pem(mat["text"], alg)
        else:
            key = jotkit.Key.from_jwk(mat["text"])
        assert jotkit.decode(tok, key, algorithms=[alg])["sub"]
        res = page.evaluate("([t, m]) => window.jotkitDebugger.verify(t, m)", [tok, mat])
        assert res["valid"] is True, (alg, res)
        # a flipped signature byte fails in both
        head, _, sig = tok.rpartition(".")
        bad = head + "." + ("A" if sig[0] != "A" else "B") + sig[1:]
        res = page.evaluate("([t, m]) => window.jotkitDebugger.verify(t, m)", [bad, mat])
        assert res["valid"] is False
        with pytest.raises(jotkit.InvalidToken):
            jotkit.decode(bad, key, algorithms=[alg])


def test_hostile_claims_are_shown_as_text(page):
    """Markup in a token is displayed literally: no element, no script, no request."""
    evil = "<img src='http://evil.example/x.png' onerror='window.pwned=1'><script>window.pwned=2</script>"
    key = jotkit.Key.from_secret(SECRET, "HS256")
    tok = jotkit.encode({"sub": evil, evil: 1}, key, expires_in="5m", headers={"kid": evil})
    page.request_log.watch(tok)
    page.fill("#token", tok)
    page.wait_for_selector("#findings li")
    assert evil in page.inner_text("#claims")
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img, main script").count() == 0
    codes = page.eval_on_selector_all("#findings li", "els => els.map(e => e.dataset.code)")
    assert codes == [f.code for f in audit(tok)]
    assert "kid_path" in codes  # the "/" in the markup


def _python_audit_with_key(case: dict) -> list[str]:
    tok, mat = case["token"], case["key"]
    if mat["type"] == "secret":
        return [f.code for f in audit(tok, secret=mat["text"], now=NOW)]
    alg = jotkit.decode_unverified(tok)[0].get("alg")
    try:
        key: jotkit.Key | jotkit.KeySet
        if mat["type"] == "pem":
            key = jotkit.Key.from_pem(mat["text"], alg)
        elif mat["type"] == "jwk":
            key = jotkit.Key.from_jwk(mat["text"])
        else:
            key = jotkit.KeySet.from_jwks(mat["text"])
    except (jotkit.JotkitError, ValueError):
        # the key cannot even be loaded for this alg: the signature cannot verify
        from jotkit.audit import SEVERITIES, load_rules

        texts = load_rules().texts
        codes = [f.code for f in audit(tok, now=NOW)] + ["signature_invalid"]
        return sorted(codes, key=lambda c: (SEVERITIES.index(texts[c]["severity"]), c))
    return [f.code for f in audit(tok, key=key, now=NOW)]


def test_audit_with_key_parity_with_python(page):
    """Given a key or secret, both audits add the same signature findings."""
    cases = DATA["verify"]
    page.request_log.watch(*(c["token"] for c in cases), SECRET)
    got = page.evaluate(
        """async ({cases, now}) => {
             const out = [];
             for (const c of cases) {
               const fs = await window.jotkitDebugger.audit(c.token, {now, key: c.key});
               out.push(fs.map((f) => f.code));
             }
             return out;
           }""",
        {"cases": cases, "now": NOW},
    )
    for case, page_codes in zip(cases, got, strict=True):
        py = _python_audit_with_key(case)
        assert page_codes == py, case["name"]
        assert ("signature_invalid" in py) == (not case["valid"] and "none" not in case["name"])


def test_short_secret_finding_in_the_page(page):
    import hashlib
    import hmac

    from jotkit._b64 import b64encode

    short = "Zq8#kL2!pR"  # verifies, is not in the common list, but is far too short
    si = (
        b64encode(b'{"alg":"HS256","typ":"JWT"}')
        + "."
        + b64encode(json.dumps({"sub": "s", "exp": int(time.time()) + 300}).encode())
    )
    tok = si + "." + b64encode(hmac.new(short.encode(), si.encode(), hashlib.sha256).digest())
    page.request_log.watch(tok, short)
    page.fill("#token", tok)
    page.fill("#key", short)
    page.wait_for_selector("#verify-result[data-state='valid']")
    page.wait_for_selector("#findings li[data-code='short_secret']")
    codes = page.eval_on_selector_all("#findings li", "els => els.map(e => e.dataset.code)")
    assert codes == [f.code for f in audit(tok, secret=short)]
    page.fill("#key", short + "x")
    page.wait_for_selector("#findings li[data-code='signature_invalid']")
    page.fill("#key", "")
    page.wait_for_selector("#verify-result[data-state='idle']")
    assert page.locator("#findings li[data-code='signature_invalid']").count() == 0
