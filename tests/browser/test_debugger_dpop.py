"""The debugger page explains ``cnf`` and checks a DPoP proof against a token (RFC 9449), in
a real Chromium. The verdicts' parity with the Python core: tests/integrations/
test_debugger_dpop_js.py (the same module under Node's WebCrypto)."""

from __future__ import annotations

import pytest

import jotkit
from jotkit import dpop

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("browser")]

URL = "https://api.example.com/orders"


def _material() -> tuple[jotkit.Key, jotkit.Key, str]:
    issuer = jotkit.Key.generate("ES256", kid="as")
    holder = jotkit.Key.generate("ES256")
    token = jotkit.encode({"sub": "svc", "cnf": {"jkt": holder.thumbprint()}}, issuer,
                          expires_in="10m", headers={"typ": "at+jwt"})
    return issuer, holder, token


def test_page_checks_a_dpop_proof_against_the_token(page):
    _, holder, token = _material()
    proof = dpop.proof(holder, "GET", URL, token)
    page.request_log.watch(token, proof)
    page.fill("#token", token)
    page.wait_for_selector("#claims tr[data-claim='cnf']")
    assert "DPoP-bound token" in page.inner_text("#claims tr[data-claim='cnf']")
    page.fill("#dpop-proof", proof)
    page.wait_for_selector("#dpop-result[data-state='valid']")
    text = page.inner_text("#dpop-result")
    assert holder.thumbprint() in text and URL in text


def test_stolen_dpop_token_with_attackers_own_proof_is_flagged(page):
    _, _, token = _material()
    attacker = jotkit.Key.generate("ES256")
    proof = dpop.proof(attacker, "GET", URL, token)
    page.request_log.watch(token, proof)
    page.fill("#token", token)
    page.fill("#dpop-proof", proof)
    page.wait_for_selector("#dpop-result[data-state='invalid']")
    assert page.get_attribute("#dpop-result", "data-code") == "dpop_key_mismatch"
