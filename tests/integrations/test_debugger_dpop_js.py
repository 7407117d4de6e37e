"""The debugger page's DPoP check (``checkDPoPProof`` in debugger/static/jose.js, WebCrypto)
run by Node, which has the same WebCrypto API as the browser: its verdict on each proof is
the Python core's code (``jotkit.dpop``). tests/browser/test_debugger_dpop.py drives the page
itself in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import jotkit
from jotkit import dpop
from jotkit._b64 import b64encode

JOSE = Path(jotkit.__file__).parent / "debugger" / "static" / "jose.js"
URL = "https://api.example.com/orders"


def _forge(key: jotkit.Key, header: dict, claims: dict) -> str:
    signing_input = f"{b64encode(json.dumps(header).encode())}.{b64encode(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64encode(key.sign(signing_input.encode()))}"


def test_page_dpop_verdicts_agree_with_the_python_core(node_bin: str, tmp_path: Path):
    issuer, holder = jotkit.Key.generate("ES256"), jotkit.Key.generate("ES256")
    token = jotkit.encode({"sub": "svc", "cnf": {"jkt": holder.thumbprint()}}, issuer,
                          expires_in="10m", headers={"typ": "at+jwt"})
    now = time.time()
    header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": holder.public().to_jwk()}
    claims = {"jti": "j", "htm": "GET", "htu": URL, "iat": int(now),
              "ath": dpop.access_token_hash(token)}
    cases = {
        "ok": dpop.proof(holder, "GET", URL, token),
        "dpop_key_mismatch": dpop.proof(jotkit.Key.generate("ES256"), "GET", URL, token),
        "dpop_ath_mismatch": dpop.proof(holder, "GET", URL, "another token"),
        "dpop_invalid_typ": _forge(holder, {**header, "typ": "JWT"}, claims),
        "dpop_invalid_jwk": _forge(holder, {**header, "jwk": holder.to_jwk(private=True)}, claims),
        "dpop_bad_signature": _forge(jotkit.Key.generate("ES256"), header, claims),
        "dpop_alg_not_allowed": _forge(jotkit.Key.from_secret(b"s" * 32, "HS256"),
                                       {**header, "alg": "HS256"}, claims),
        "dpop_invalid_claim": _forge(holder, header, {**claims, "iat": "now"}),
        "dpop_malformed": "not.a.proof",
    }
    shutil.copy(JOSE, tmp_path / "jose.mjs")
    (tmp_path / "run.mjs").write_text(
        "import { checkDPoPProof } from './jose.mjs'\n"
        "const input = JSON.parse(process.argv[2])\n"
        "const out = {}\n"
        "for (const [name, proof] of Object.entries(input.cases))\n"
        "  out[name] = await checkDPoPProof(proof, input.token)\n"
        "process.stdout.write(JSON.stringify(out))\n", encoding="utf-8")
    proc = subprocess.run([node_bin, str(tmp_path / "run.mjs"),
                           json.dumps({"cases": cases, "token": token})],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert {name: res["code"] for name, res in got.items()} == {name: name for name in cases}
    assert got["ok"]["valid"] is True and got["ok"]["jkt"] == holder.thumbprint()
    for name, proof in cases.items():
        if name == "ok":
            assert dpop.verify_proof(proof, method="GET", url=URL, now=now, access_token=token,
                                     jkt=holder.thumbprint()).jkt == got["ok"]["jkt"]
            continue
        with pytest.raises(jotkit.InvalidDPoPProof) as exc:
            dpop.verify_proof(proof, method="GET", url=URL, now=now, access_token=token,
                              jkt=holder.thumbprint())
        assert exc.value.code == name
