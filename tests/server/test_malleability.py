"""ECDSA malleability (r, n - s) against the service's revocation (docs/security.md).

The service signs ES256 access tokens. A holder can turn one into a second valid spelling by
replacing s with n - s; jotkit accepts it (RFC 7518 §3.4 has no low-s rule). Revocation is
keyed by the signed jti and checked on every request, cache hit or not, so the twin is refused
as soon as the original is.
"""

from __future__ import annotations

import base64

from .harness import bearer, login

P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def _malleate(token: str) -> str:
    head, payload, sig_b64 = token.split(".")
    sig = base64.urlsafe_b64decode(sig_b64 + "=" * (-len(sig_b64) % 4))
    s = int.from_bytes(sig[32:], "big")
    twin = sig[:32] + (P256_ORDER - s).to_bytes(32, "big")
    return f"{head}.{payload}.{base64.urlsafe_b64encode(twin).rstrip(b'=').decode()}"


def test_malleated_access_token_is_refused_once_the_original_is_revoked(server):
    with server.client() as c:
        access = login(c, "alice@example.com")["access_token"]
        twin = _malleate(access)
        assert twin != access
        # Both spellings work, and both now sit in the verified-token cache (keyed by text).
        for token in (access, twin):
            r = c.get("/auth/me", headers=bearer(token))
            assert r.status_code == 200, r.text
        basic = ("rs1", "rs1-secret")
        assert c.post("/oauth/introspect", data={"token": twin}, auth=basic).json()["active"]
        # Revoke the original spelling (RFC 7009): the jti goes on the deny-list.
        assert c.post("/oauth/revoke", data={"token": access}, auth=basic).status_code == 200
        for token in (twin, access):
            r = c.get("/auth/me", headers=bearer(token))
            assert r.status_code == 401, r.text
            assert r.json()["reason"] == "revoked"
            body = c.post("/oauth/introspect", data={"token": token}, auth=basic).json()
            assert body == {"active": False}
