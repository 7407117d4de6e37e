"""Regenerate tests/audit/tokens.json: the project's audit and verification test tokens.

Run: .venv/bin/python tests/audit/make_tokens.py

Every case lists the audit codes it must produce at the fixed time NOW (these are the
expectations, written by hand from the rules), and verification cases list the key
material (test keys only) and whether the signature must verify. Both the Python audit
(tests/audit) and the debugger page (tests/browser) run over this file.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import jotkit
from jotkit._b64 import b64encode

NOW = 1795420800  # 2026-11-23T08:00:00Z
OUT = Path(__file__).with_name("tokens.json")
STRONG = "k7Hq2-xW9vLm4pR8tY1uZ3aB6cD0eF5gJ2hN"  # test-only HMAC secret (36 bytes)


def _seg(obj: Any) -> str:
    return b64encode(json.dumps(obj, separators=(",", ":")).encode())


def _hs(header: dict[str, Any], payload: dict[str, Any], secret: bytes) -> str:
    h = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
    si = f"{_seg(header)}.{_seg(payload)}"
    sig = hmac.new(secret, si.encode(), h[header["alg"]]).digest()
    return f"{si}.{b64encode(sig)}"


def _raw(header: Any, payload: Any, key: jotkit.Key | None = None) -> str:
    si = f"{_seg(header)}.{_seg(payload)}"
    sig = key.sign(si.encode()) if key is not None else b""
    return f"{si}.{b64encode(sig)}"


def _good(**extra: Any) -> dict[str, Any]:
    return {"sub": "user-1", "iat": NOW - 60, "exp": NOW + 840, **extra}


def main() -> None:
    keys = {
        "HS256": jotkit.Key.from_secret(STRONG, "HS256", kid="hs"),
        "RS256": jotkit.Key.generate("RS256", kid="rs"),
        "PS384": jotkit.Key.generate("PS384", kid="ps"),
        "ES256": jotkit.Key.generate("ES256", kid="es256"),
        "ES384": jotkit.Key.generate("ES384", kid="es384"),
        "ES512": jotkit.Key.generate("ES512", kid="es512"),
        "EdDSA": jotkit.Key.generate("EdDSA", kid="ed"),
    }
    audit_cases: list[dict[str, Any]] = []

    def case(name: str, token: str, expected: list[str]) -> None:
        audit_cases.append({"name": name, "token": token, "expected": sorted(expected)})

    for name, k in keys.items():
        tok = jotkit.encode(_good(), k, headers={"kid": k.kid}, now=NOW)
        case(f"good_{name}", tok, [])
    es = keys["ES256"]
    enc = lambda claims, **kw: jotkit.encode(claims, es, now=NOW, **kw)  # noqa: E731
    case("alg_none", jotkit.unsafe_encode_none(_good()), ["alg_none"])
    case("alg_none_mixed_case", _raw({"alg": "nOnE", "typ": "JWT"}, _good()), ["alg_none"])
    case("alg_unknown", _raw({"alg": "XS256", "typ": "JWT"}, _good()), ["alg_unexpected"])
    case("alg_missing", _raw({"typ": "JWT"}, _good()), ["alg_unexpected"])
    case("weak_secret", _hs({"alg": "HS256", "typ": "JWT"}, _good(), b"secret"), ["weak_secret"])
    case("empty_secret", _hs({"alg": "HS256", "typ": "JWT"}, _good(), b""), ["weak_secret"])
    case(
        "seed_secret",
        _hs({"alg": "HS512", "typ": "JWT"}, _good(), b"your-super-secret-key-min-256-bits"),
        ["weak_secret"],
    )
    case(
        "jwt_io_secret",
        _hs({"alg": "HS384", "typ": "JWT"}, _good(), b"your-384-bit-secret"),
        ["weak_secret"],
    )
    case("exp_missing", enc({"sub": "a", "iat": NOW}), ["exp_missing"])
    case("lifetime_24h", enc({"sub": "a"}, expires_in="24h"), ["lifetime_too_long"])
    case(
        "lifetime_no_iat",
        enc({"sub": "a", "exp": NOW + 7200}),
        ["lifetime_too_long"],
    )
    case("iat_future", enc({"sub": "a", "iat": NOW + 600, "exp": NOW + 900}), ["iat_in_future"])
    case(
        "nbf_after_exp",
        enc({"sub": "a", "iat": NOW, "nbf": NOW + 1000, "exp": NOW + 500}),
        ["nbf_after_exp"],
    )
    case("expired", enc({"sub": "a", "iat": NOW - 4 * 3600, "exp": NOW - 3 * 3600}), ["expired"])
    case("exp_string", enc({"sub": "a", "exp": "tomorrow"}), ["claim_type"])
    case("exp_bool", enc({"sub": "a", "exp": True}), ["claim_type"])
    case(
        "password_claim",
        enc(_good(password="hunter2", profile={"pwd": "x"})),
        ["sensitive_password", "sensitive_password"],
    )
    case("empty_password_ok", enc(_good(password="")), [])
    case("ssn_value", enc(_good(note="123-45-6789")), ["sensitive_national_id"])
    case("ssn_key", enc(_good(ssn=123456789)), ["sensitive_national_id"])
    case("card_spaces", enc(_good(memo="4111 1111 1111 1111")), ["sensitive_card_number"])
    case("card_int", enc(_good(ref=5555555555554444)), ["sensitive_card_number"])
    case("card_not_luhn", enc(_good(ref="4111111111111112")), [])
    case("long_int_ok", _raw({"alg": "ES256", "typ": "JWT"}, _good(n=int("9" * 4300)), es), [])
    case("card_nested", enc(_good(items=[{"x": "378282246310005"}])), ["sensitive_card_number"])
    pem = es.to_pem(private=True).decode()
    case("private_key_pem", enc(_good(blob=pem)), ["sensitive_private_key"])
    case("aws_key", enc(_good(cfg="AKIAIOSFODNN7EXAMPLE")), ["sensitive_api_key"])
    case(
        "github_token",
        enc(_good(t="ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8")),
        ["sensitive_api_key"],
    )
    case("api_key_name", enc(_good(api_key="abc")), ["sensitive_api_key"])
    case("jku", enc(_good(), headers={"jku": "https://evil.example/jwks"}), ["header_jku"])
    case("x5u", enc(_good(), headers={"x5u": "https://evil.example/cert"}), ["header_x5u"])
    case("jwk", enc(_good(), headers={"jwk": es.to_jwk()}), ["header_jwk"])
    case("x5c", enc(_good(), headers={"x5c": ["MIIB"]}), ["header_x5c"])
    case("kid_path", enc(_good(), headers={"kid": "../../../dev/null"}), ["kid_path"])
    case("kid_sql", enc(_good(), headers={"kid": "x' UNION SELECT 'k"}), ["kid_sql"])
    case("kid_both", enc(_good(), headers={"kid": "/etc/passwd';--"}), ["kid_path", "kid_sql"])
    case("kid_plain", enc(_good(), headers={"kid": "2026-11-key_1.a"}), [])
    # An RFC 7638 thumbprint is base64url: "--" or a word like "drop" inside one
    # cannot leave a SQL literal, so it is not a finding (this false positive once
    # failed the docs walkthrough on a random key).
    thumb = "sR93rKYi6sxBhjH1u9-If52KjwRXYW8IhuHGS95---M"
    case("kid_thumbprint_with_dashes", enc(_good(), headers={"kid": thumb}), [])
    case("kid_base64url_keyword", enc(_good(), headers={"kid": "drop-2026"}), [])
    case("kid_sql_comment", enc(_good(), headers={"kid": "7 --"}), ["kid_sql"])
    case("typ_missing", _raw({"alg": "ES256"}, _good(), es), ["typ_missing"])
    case("oversized", enc(_good(blob="z" * 9000)), ["token_oversized"])
    case(
        "kitchen_sink",
        _hs({"alg": "HS256", "jku": "http://x", "kid": "../k"}, {"password": "p"}, b"secret"),
        [
            "weak_secret",
            "header_jku",
            "kid_path",
            "sensitive_password",
            "exp_missing",
            "typ_missing",
        ],
    )
    for name, tok in [
        ("malformed_two_parts", "abc.def"),
        ("malformed_garbage", "not a token"),
        ("malformed_padding", _raw({"alg": "ES256", "typ": "JWT"}, _good(), es) + "=="),
        ("malformed_empty_payload", f"{_seg({'alg': 'HS256'})}..c2ln"),
        ("malformed_array_payload", f"{_seg({'alg': 'HS256'})}.{_seg([1, 2])}.c2ln"),
        (
            "malformed_duplicate_member",
            b64encode(b'{"alg":"HS256","alg":"none"}') + "." + _seg({"sub": "a"}) + ".c2ln",
        ),
        ("malformed_not_utf8", b64encode(b'{"alg":"\xff"}') + "." + _seg({"a": 1}) + ".c2ln"),
        ("malformed_nan", _seg({"alg": "HS256"}) + "." + b64encode(b'{"exp":NaN}') + ".c2ln"),
        (
            "malformed_huge_int",
            _seg({"alg": "HS256"}) + "." + b64encode(b'{"n":' + b"9" * 4301 + b"}") + ".c2ln",
        ),
        ("malformed_bad_tail_bits", _seg({"alg": "HS256"}) + "." + _seg({"a": 1}) + ".YR"),
    ]:
        case(name, tok, ["malformed"])
    case(
        "malformed_too_large",
        _seg({"alg": "HS256"}) + "." + b64encode(b"x" * 13000) + ".c2ln",
        ["malformed", "token_oversized"],
    )

    verify_cases: list[dict[str, Any]] = []
    for alg, k in keys.items():
        tok = jotkit.encode(_good(), k, headers={"kid": k.kid}, now=NOW)
        tampered = tok.split(".")
        tampered[1] = _seg(_good(admin=True))
        bad = ".".join(tampered)
        if k.is_symmetric:
            mats = [{"type": "secret", "text": STRONG}]
            wrong = [{"type": "secret", "text": STRONG + "x"}]
        else:
            pub = k.public()
            mats = [
                {"type": "pem", "text": pub.to_pem().decode()},
                {"type": "jwk", "text": json.dumps(pub.to_jwk())},
                {
                    "type": "jwks",
                    "text": json.dumps(jotkit.KeySet([pub, keys["ES384"].public()]).to_jwks())
                    if alg != "ES384"
                    else json.dumps(jotkit.KeySet([pub, es.public()]).to_jwks()),
                },
            ]
            other = keys["ES256"] if alg != "ES256" else keys["ES384"]
            wrong = [
                {"type": "jwk", "text": json.dumps(other.public().to_jwk())},
                {"type": "secret", "text": STRONG},
            ]
            if alg == "ES256":
                fresh = jotkit.Key.generate("ES256")
                wrong.append({"type": "pem", "text": fresh.public().to_pem().decode()})
                rsa_pem = keys["RS256"].public().to_pem().decode()
                wrong.append({"type": "pem", "text": rsa_pem})  # wrong key type for ES256
        for m in mats:
            verify_cases.append(
                {"name": f"{alg}_{m['type']}", "token": tok, "key": m, "valid": True}
            )
            verify_cases.append(
                {"name": f"{alg}_{m['type']}_tampered", "token": bad, "key": m, "valid": False}
            )
        for i, m in enumerate(wrong):
            verify_cases.append(
                {"name": f"{alg}_wrong_{i}_{m['type']}", "token": tok, "key": m, "valid": False}
            )
    verify_cases.append(
        {
            "name": "none_with_secret",
            "token": jotkit.unsafe_encode_none(_good()),
            "key": {"type": "secret", "text": STRONG},
            "valid": False,
        }
    )
    doc = {
        "source": "generated by tests/audit/make_tokens.py (test keys only, never use them)",
        "now": NOW,
        "audit": audit_cases,
        "verify": verify_cases,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    print(f"wrote {OUT}: {len(audit_cases)} audit cases, {len(verify_cases)} verify cases")


if __name__ == "__main__":
    main()
