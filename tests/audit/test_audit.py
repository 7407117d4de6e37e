"""Tests of jotkit.audit: the rules file, each rule, ordering and robustness."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jotkit
from jotkit._b64 import b64encode
from jotkit.audit import SEVERITIES, Finding, audit, load_rules, luhn_ok, rules_text

DATA = json.loads(Path(__file__).with_name("tokens.json").read_text("utf-8"))
NOW = DATA["now"]
RULES = json.loads(rules_text())
STRONG = "k7Hq2-xW9vLm4pR8tY1uZ3aB6cD0eF5gJ2hN"


def _seg(obj: object) -> str:
    return b64encode(json.dumps(obj).encode())


@pytest.mark.parametrize("case", DATA["audit"], ids=[c["name"] for c in DATA["audit"]])
def test_audit_cases(case):
    findings = audit(case["token"], now=NOW)
    assert sorted(f.code for f in findings) == case["expected"]


def test_findings_sorted_by_severity_then_code():
    kitchen = next(c for c in DATA["audit"] if c["name"] == "kitchen_sink")
    findings = audit(kitchen["token"], now=NOW)
    keys = [(SEVERITIES.index(f.severity), f.code, f.detail) for f in findings]
    assert keys == sorted(keys)
    assert findings[0].severity == "critical"
    # stable: same input, same output
    assert audit(kitchen["token"], now=NOW) == findings


def test_finding_fields_come_from_rules():
    kitchen = next(c for c in DATA["audit"] if c["name"] == "kitchen_sink")
    by_code = {r["code"]: r for r in RULES["rules"]}
    for f in audit(kitchen["token"], now=NOW):
        rule = by_code[f.code]
        assert (f.severity, f.title, f.why, f.fix) == (
            rule["severity"],
            rule["title"],
            rule["why"],
            rule["fix"],
        )
        assert f.to_dict()["code"] == f.code
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.code = "x"  # type: ignore[misc]


def test_weak_secret_names_the_secret():
    tok = next(c for c in DATA["audit"] if c["name"] == "weak_secret")["token"]
    (f,) = audit(tok, now=NOW)
    assert f.code == "weak_secret"
    assert f.severity == "critical"
    assert '"secret"' in f.detail
    tok = next(c for c in DATA["audit"] if c["name"] == "empty_secret")["token"]
    assert "empty secret" in audit(tok, now=NOW)[0].detail


def test_strong_secret_is_not_reported_weak():
    tok = next(c for c in DATA["audit"] if c["name"] == "good_HS256")["token"]
    assert audit(tok, now=NOW) == []


def test_every_rule_is_well_formed():
    codes = [r["code"] for r in RULES["rules"]]
    assert len(codes) == len(set(codes))
    for r in RULES["rules"]:
        assert r["severity"] in SEVERITIES
        assert r["title"]
        assert r["fix"]
        why = r["why"]
        assert why.endswith(".")
        # exactly one sentence
        assert re.search(r"[.!?]\s+[A-Z]", why) is None, why
    pattern_codes = {p["code"] for p in RULES["patterns"]["sensitive_keys"]}
    pattern_codes |= {p["code"] for p in RULES["patterns"]["sensitive_values"]}
    assert pattern_codes <= set(codes)
    for case in DATA["audit"]:
        assert set(case["expected"]) <= set(codes)


def test_regex_flags_are_portable():
    def walk(obj):
        if isinstance(obj, dict):
            if "pattern" in obj:
                yield obj
            for v in obj.values():
                yield from walk(v)
        elif isinstance(obj, list):
            for v in obj:
                yield from walk(v)

    specs = list(walk(RULES["patterns"]))
    assert len(specs) >= 10
    for spec in specs:
        assert set(spec.get("flags", "")) <= {"i"}
        # constructs that differ between Python re and JS RegExp are not allowed
        for bad in ("(?P", "(?i", "\\Z", "\\A", "(?#", "\\s", "[[:"):
            assert bad not in spec["pattern"], (bad, spec["pattern"])


def test_common_secret_list():
    secrets = RULES["common_secrets"]
    assert len(secrets) >= 300
    assert len(secrets) == len(set(secrets))
    for s in (
        "",
        "secret",
        "your-256-bit-secret",
        "changeme",
        "your-super-secret-key-min-256-bits",
    ):
        assert s in secrets
    assert load_rules().secrets[0] == b""


def test_expected_algorithms_narrow_the_accepted_set():
    tok = next(c for c in DATA["audit"] if c["name"] == "good_RS256")["token"]
    assert audit(tok, now=NOW, expected_algorithms=["RS256"]) == []
    (f,) = audit(tok, now=NOW, expected_algorithms=["ES256"])
    assert f.code == "alg_unexpected"
    assert "RS256" in f.detail


def test_time_details_and_datetime_now():
    from datetime import UTC, datetime

    tok = next(c for c in DATA["audit"] if c["name"] == "expired")["token"]
    (f,) = audit(tok, now=datetime.fromtimestamp(NOW, tz=UTC))
    assert f.detail == "expired 3 h 0 min ago"
    with pytest.raises(ValueError, match="aware"):
        audit(tok, now=datetime(2026, 1, 1))


def test_sensitive_data_detail_names_the_claim_not_the_value():
    tok = next(c for c in DATA["audit"] if c["name"] == "password_claim")["token"]
    details = [f.detail for f in audit(tok, now=NOW)]
    assert details == ["claim /password", "claim /profile/pwd"]
    assert not any("hunter2" in d for d in details)


# ---- with a key or secret ----


def _cases(alg):
    return next(c for c in DATA["verify"] if c["name"] == f"{alg}_jwk")


def test_audit_with_correct_key_has_no_signature_finding():
    case = _cases("ES256")
    key = jotkit.Key.from_jwk(case["key"]["text"])
    assert audit(case["token"], key=key, now=NOW) == []
    ks = jotkit.KeySet([key])
    assert audit(case["token"], key=ks, now=NOW) == []


def test_audit_with_wrong_key_reports_signature_invalid():
    case = _cases("ES256")
    other = jotkit.Key.generate("ES256").public()
    (f,) = audit(case["token"], key=other, now=NOW)
    assert f.code == "signature_invalid"
    assert "bad_signature" in f.detail
    rsa = jotkit.Key.generate("RS256")
    (f,) = audit(case["token"], key=rsa, now=NOW)
    assert f.code == "signature_invalid"
    assert "key_mismatch" in f.detail
    (f,) = audit(case["token"], key=jotkit.KeySet([rsa.with_kid("zz")]), now=NOW)
    assert "key_not_found" in f.detail


def test_audit_with_secret():
    tok = next(c for c in DATA["audit"] if c["name"] == "good_HS256")["token"]
    assert audit(tok, secret=STRONG, now=NOW) == []
    codes = [f.code for f in audit(tok, secret=b"wrong" * 10, now=NOW)]
    assert codes == ["signature_invalid"]
    # a short secret that verifies: weak by length even when not in the list
    short = b"Zq8#kL2!pR"
    header, payload = {"alg": "HS256", "typ": "JWT"}, {"sub": "a", "iat": NOW, "exp": NOW + 60}
    si = f"{_seg(header)}.{_seg(payload)}"
    tok2 = si + "." + b64encode(hmac.new(short, si.encode(), hashlib.sha256).digest())
    (f,) = audit(tok2, secret=short, now=NOW)
    assert f.code == "short_secret"
    assert f.detail == "10 bytes, HS256 needs at least 32"
    es = _cases("ES256")["token"]
    assert [f.code for f in audit(es, secret=STRONG, now=NOW)] == ["signature_invalid"]


# ---- properties ----


@given(st.text(max_size=300))
@settings(max_examples=150, deadline=None)
def test_audit_never_raises_on_text(text):
    findings = audit(text, now=NOW)
    assert all(isinstance(f, Finding) for f in findings)
    if text.strip().count(".") != 2:
        assert [f.code for f in findings if f.code == "malformed"] == ["malformed"]


@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=30),
            lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
            max_leaves=8,
        ),
        max_size=6,
    )
)
@settings(max_examples=100, deadline=None)
def test_audit_never_raises_on_any_payload(payload):
    tok = jotkit.unsafe_encode_none(payload)
    codes = [f.code for f in audit(tok, now=NOW)]
    assert "alg_none" in codes
    assert "malformed" not in codes


@given(st.lists(st.integers(0, 9), min_size=12, max_size=18))
def test_luhn_check_digit(digits):
    body = "".join(map(str, digits))
    for check in range(10):
        ok = luhn_ok(body + str(check))
        # exactly one check digit makes a number Luhn-valid
        assert ok == (check == _luhn_digit(body))


def _luhn_digit(body: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return (10 - total % 10) % 10


def test_luhn_known_numbers():
    assert luhn_ok("4111111111111111")
    assert luhn_ok("378282246310005")
    assert not luhn_ok("4111111111111112")


def test_docs_list_every_rule():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "tools.md").read_text("utf-8")
    for r in RULES["rules"]:
        assert f"| `{r['code']}` | {r['severity']} |" in docs, r["code"]


def test_docs_python_example_runs(capsys):
    docs = (Path(__file__).resolve().parents[2] / "docs" / "tools.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", docs, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "docs/tools.md", "exec"), {"__name__": "__docs__"})
    assert "sensitive_password" in capsys.readouterr().out


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [10**320, -(10**320), 10**4000], ids=["e320", "-e320", "e4000"])
def test_audit_reports_huge_integer_numericdate_instead_of_overflow_error(claim, value):
    """A 310+ digit exp/nbf/iat does not fit a float: it is a claim_type finding (the page's
    JSON.parse makes it Infinity, "a non-finite number"), not an OverflowError."""
    key = jotkit.Key.from_secret(STRONG, "HS256")
    claims = {"sub": "alice", "exp": NOW + 600, claim: value}
    tok = jotkit.encode(claims, key, headers={"typ": "at+jwt"}, iat=False)
    findings = audit(tok, now=NOW, key=key)
    details = {f.detail for f in findings if f.code == "claim_type"}
    assert details == {f"{claim} is a non-finite number"}
    assert "signature_invalid" not in {f.code for f in findings}  # the signature is good


@settings(max_examples=300, deadline=None)
@given(kid=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))
def test_kid_sql_false_positive_on_a_base64url_thumbprint_kid_is_prevented(kid):
    # A base64url kid (every RFC 7638 thumbprint) has no quote, space or comment
    # opener, so it cannot leave a SQL literal: "--" or "drop" inside one is no finding.
    # A random thumbprint with "---" once made the docs walkthrough fail as HIGH.
    tok = _seg({"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + _seg({"sub": "u"}) + ".AA"
    assert "kid_sql" not in {f.code for f in audit(tok, now=NOW)}
