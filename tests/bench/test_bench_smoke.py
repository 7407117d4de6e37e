"""Smoke test of the core benchmark harness (benchmarks/bench_core.py).

It checks the harness is CORRECT, never how fast anything is: every library's verify
returns the shared token's claims and rejects the bad tokens, every signer's token
verifies with jotkit, and a quick timed run renders a table and a JSON file.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

import jotkit

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_core.py"
PEER_MODULES = {
    "PyJWT": "jwt",
    "joserfc": "joserfc",
    "jwcrypto": "jwcrypto",
    "authlib": "authlib",
    "python-jose": "jose",
}


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    missing = [dist for dist, mod in PEER_MODULES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        pytest.skip(
            f"benchmark peers not installed ({', '.join(missing)}): pip install -e '.[bench]'"
        )
    spec = importlib.util.spec_from_file_location("jotkit_bench_core", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def material(bench: ModuleType):
    return bench.make_material("ES256")


def test_every_verifier_returns_the_claims_and_rejects_bad_tokens(bench, material) -> None:
    cells = bench.build_cells("verify", material)
    assert [c.impl for c in cells] == list(bench.VERIFY_IMPLS)
    for cell in cells:
        assert cell.na is None, f"{cell.impl}: {cell.na}"
        assert cell.skipped_checks == (), f"{cell.impl} skipped {cell.skipped_checks}"
        claims = cell.call()  # the exact callable that gets timed
        assert claims["sub"] == bench.SUBJECT, cell.impl
        assert claims["iss"] == bench.ISSUER, cell.impl
        assert claims["aud"] == bench.AUDIENCE, cell.impl


def test_every_signer_makes_a_token_jotkit_accepts(bench, material) -> None:
    cells = bench.build_cells("sign", material)
    assert [c.impl for c in cells] == list(bench.SIGN_IMPLS)
    for cell in cells:
        assert cell.na is None, f"{cell.impl}: {cell.na}"
        token = cell.call()
        if isinstance(token, bytes):
            token = token.decode("ascii")
        claims = jotkit.decode(
            token,
            material.jot_public,
            algorithms=["ES256"],
            issuer=bench.ISSUER,
            audience=bench.AUDIENCE,
        )
        assert claims["sub"] == bench.SUBJECT, cell.impl
        assert claims["exp"] - claims["iat"] == bench.LIFETIME, cell.impl


def test_a_verifier_that_skips_checks_is_flagged(bench, material) -> None:
    def lax(token: str):  # signature and aud only
        jotkit.jws_verify(token, material.jot_public, algorithms=["ES256"])
        _, claims = jotkit.decode_unverified(token)
        if claims.get("aud") != bench.AUDIENCE:
            raise ValueError("aud")
        return claims

    skipped = bench.check_verify(lax, material)
    assert set(skipped) == {"expired", "wrong iss", "no exp"}


def test_unavailable_algorithm_is_na_with_reason(bench) -> None:
    cells = bench.build_cells("verify", bench.make_material("EdDSA"), impls=["python-jose"])
    assert cells[0].call is None
    assert cells[0].na.startswith("cannot prepare a key for EdDSA")


def test_quick_run_renders_table_and_json(bench, tmp_path: Path) -> None:
    out_json = tmp_path / "out.json"
    out_md = tmp_path / "results.md"
    args = bench.parse_args(
        ["--quick", "--only", "HS256", "--samples", "1", "--sample-time", "0.002",
         "--json", str(out_json), "--output", str(out_md)]
    )  # fmt: skip
    assert bench.main(
        ["--quick", "--only", "HS256", "--samples", "1", "--sample-time", "0.002",
         "--json", str(out_json), "--output", str(out_md)]
    ) == 0  # fmt: skip
    assert args.algs == ["HS256"]
    text = out_md.read_text()
    assert "| verify HS256 |" in text
    assert "| sign HS256 |" in text
    assert "verify HS256: jotkit Verifier ≤ 1.1× floor" in text
    assert "| loose floor µs |" in text or "loose floor µs" in text
    data = json.loads(out_json.read_text())
    measured = {(c["op"], c["impl"]) for c in data["cells"] if "median_us" in c}
    assert measured == {("verify", i) for i in bench.VERIFY_IMPLS} | {
        ("sign", i) for i in bench.SIGN_IMPLS
    }
    assert all(c["median_us"] > 0 for c in data["cells"] if "median_us" in c)


def test_time_budget_plan_cuts_samples_then_sample_time(bench) -> None:
    plan = bench.plan
    assert plan(float("inf"), 10, 8, 0.1, 21, 0.05) == (21, 0.05)
    assert plan(100.0, 10, 8, None, 21, 0.05) == (21, 0.05)  # nothing measured yet
    assert plan(100.0, 10, 8, 0.05, 21, 0.05) == (21, 0.05)  # fits: 25 samples
    assert plan(100.0, 10, 8, 0.1, 21, 0.05) == (12, 0.05)  # fewer samples
    samples, sample_time = plan(10.0, 10, 8, 0.1, 21, 0.05)  # 1 fits: shorter samples
    assert samples == bench.MIN_SAMPLES
    assert 0.01 <= sample_time < 0.05
    assert plan(1.0, 10, 8, 0.1, 3, 0.01)[0] == 3  # never more than asked
