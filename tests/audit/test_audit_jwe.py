"""Audit rules for encrypted tokens (JWE) and the JWE hint on sensitive data (RFC 7516, RFC 8725)."""

from __future__ import annotations

import json

import pytest
from _jwe_audit_cases import JWE_AUDIT_CASES

import jotkit
from jotkit.audit import audit, load_rules


@pytest.mark.parametrize(
    ("name", "token", "codes"), [(c["name"], c["token"], c["codes"]) for c in JWE_AUDIT_CASES]
)
def test_jwe_audit_findings(name: str, token: str, codes: list[str]):
    assert [f.code for f in audit(token)] == codes, name


def test_rsa1_5_is_flagged_high():
    (case,) = [c for c in JWE_AUDIT_CASES if c["name"] == "rsa1_5"]
    finding = next(f for f in audit(case["token"]) if f.code == "jwe_rsa1_5")
    assert finding.severity == "high" and "oracle" in finding.why


def test_pbes2_low_and_high_p2c_details():
    low = next(c for c in JWE_AUDIT_CASES if c["name"] == "pbes2 low p2c")
    high = next(c for c in JWE_AUDIT_CASES if c["name"] == "pbes2 high p2c")
    assert [f.detail for f in audit(low["token"]) if f.code == "jwe_p2c_low"] == ["p2c 500 < 1000"]
    assert [f.detail for f in audit(high["token"]) if f.code == "jwe_p2c_high"] == [
        "p2c 2000000 > 1000000"
    ]


def test_sensitive_data_in_a_plain_jwt_suggests_jwe():
    key = jotkit.Key.from_secret(b"k" * 32, "HS256")
    token = jotkit.encode({"ssn": "123-45-6789", "exp": 2_000_000_000}, key)
    finding = next(f for f in audit(token, now=1_800_000_000) if f.code == "sensitive_national_id")
    assert "JWE" in finding.fix and "encrypt_to" in finding.fix


def test_every_jwe_rule_has_texts_and_the_tables_match_the_core():
    rules = load_rules()
    for code in (
        "jwe_rsa1_5",
        "jwe_p2c_low",
        "jwe_p2c_high",
        "jwe_zip",
        "jwe_enc_unexpected",
        "jwe_payload_hidden",
    ):
        assert rules.texts[code]["why"] and rules.texts[code]["fix"]
    spec = rules.raw["jwe"]
    assert spec["key_management"] == list(jotkit.jwe_algorithms.KEY_MANAGEMENT_NAMES)
    assert spec["content_encryption"] == list(jotkit.jwe_algorithms.ENCRYPTION_NAMES)
    assert spec["pbes2_max_p2c"] == jotkit.jwe.MAX_P2C


def test_cases_file_is_json_ready():
    json.dumps(JWE_AUDIT_CASES)
