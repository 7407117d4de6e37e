"""The debugger page's audit of encrypted tokens (JWE) agrees with jotkit.audit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from jotkit.audit import audit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "audit"))
from _jwe_audit_cases import JWE_AUDIT_CASES

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]
NOW = 1795420800


def test_jwe_audit_parity_with_python(page):
    tokens = [c["token"] for c in JWE_AUDIT_CASES]
    page.request_log.watch(*tokens)
    got = page.evaluate(
        """async ({tokens, now}) => {
             const out = [];
             for (const t of tokens) {
               const fs = await window.jotkitDebugger.audit(t, {now});
               out.push(fs.map((f) => [f.code, f.severity, f.code === "malformed" ? "" : f.detail]));
             }
             return out;
           }""",
        {"tokens": tokens, "now": NOW},
    )
    for case, page_findings in zip(JWE_AUDIT_CASES, got, strict=True):
        py = [
            [f.code, f.severity, "" if f.code == "malformed" else f.detail]
            for f in audit(case["token"], now=NOW)
        ]
        assert page_findings == py, case["name"]
        assert [f[0] for f in page_findings] == case["codes"], case["name"]
    assert page.request_log.leaks() == []
