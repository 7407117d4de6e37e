"""JWE audit cases shared by tests/audit (Python) and tests/browser (the page must agree).

Tokens are built from fixed headers; only the protected header is audited, so the
other segments are fixed filler of the right shape.
"""

from __future__ import annotations

import base64
import json
from typing import Any


def _jwe(header: dict[str, Any], ek: str = "AAAA") -> str:
    h = base64.urlsafe_b64encode(json.dumps(header).encode()).rstrip(b"=").decode()
    return f"{h}.{ek}.AAAAAAAAAAAAAAAA.AAAA.AAAAAAAAAAAAAAAAAAAAAA"


JWE_AUDIT_CASES: list[dict[str, Any]] = [
    {
        "name": "clean ECDH-ES",
        "token": _jwe({"alg": "ECDH-ES+A256KW", "enc": "A256GCM", "kid": "k1"}),
        "codes": ["jwe_payload_hidden"],
    },
    {
        "name": "rsa1_5",
        "token": _jwe({"alg": "RSA1_5", "enc": "A128CBC-HS256"}),
        "codes": ["jwe_rsa1_5", "jwe_payload_hidden"],
    },
    {
        "name": "pbes2 low p2c",
        "token": _jwe(
            {"alg": "PBES2-HS256+A128KW", "enc": "A128GCM", "p2s": "AAAAAAAAAAA", "p2c": 500}
        ),
        "codes": ["jwe_p2c_low", "jwe_payload_hidden"],
    },
    {
        "name": "pbes2 high p2c",
        "token": _jwe({"alg": "PBES2-HS512+A256KW", "enc": "A256GCM", "p2c": 2000000}),
        "codes": ["jwe_p2c_high", "jwe_payload_hidden"],
    },
    {
        "name": "zip on a nested JWT",
        "token": _jwe({"alg": "A256KW", "enc": "A256GCM", "zip": "DEF", "cty": "JWT"}),
        "codes": ["jwe_zip", "jwe_payload_hidden"],
    },
    {
        "name": "unknown alg and enc, jku",
        "token": _jwe({"alg": "RSA-OAEP-384", "enc": "A512GCM", "jku": "https://x"}),
        "codes": ["alg_unexpected", "header_jku", "jwe_enc_unexpected", "jwe_payload_hidden"],
    },
    {
        "name": "missing enc, kid with path",
        "token": _jwe({"alg": "dir", "kid": "../../etc/passwd"}),
        "codes": ["jwe_enc_unexpected", "kid_path", "jwe_payload_hidden"],
    },
    {
        "name": "header not JSON",
        "token": "bm90LWpzb24.AAAA.AAAA.AAAA.AAAA",
        "codes": ["malformed"],
    },
]
