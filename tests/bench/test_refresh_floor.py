"""The refresh floor of benchmarks/_refresh_floor.py does the work it claims (issue 10 §1):
it spends a token once, stores the successor, records the access jti and signs an ES256 JWT
that verifies. Correctness only; nothing here is timed."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

import httpx

import jotkit

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_refresh  # noqa: E402
from _refresh_floor import sqlite_app  # noqa: E402


def test_floor_rotation_spends_once_and_records_the_access_token(tmp_path: Path) -> None:
    (token,) = bench_refresh._prepare(str(tmp_path), None, 1)
    db = next(tmp_path.glob("*.db"))
    app = sqlite_app(str(db))

    async def run() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            first = await client.post("/auth/refresh", json={"refresh_token": token})
            again = await client.post("/auth/refresh", json={"refresh_token": token})
            successor = first.json()["refresh_token"]
            chained = await client.post("/auth/refresh", json={"refresh_token": successor})
            return first, again, chained

    first, again, chained = asyncio.run(run())
    assert first.status_code == 200 and chained.status_code == 200
    assert again.status_code == 400  # a spent token does not rotate twice
    header, claims = jotkit.decode_unverified(first.json()["access_token"])
    assert header["alg"] == "ES256" and header["typ"] == "at+jwt"
    with sqlite3.connect(db) as conn:
        jtis = {r[0] for r in conn.execute("SELECT jti FROM access_tokens")}
        unspent = conn.execute("SELECT count(*) FROM refresh_tokens WHERE spent_at IS NULL")
        assert claims["jti"] in jtis and len(jtis) == 2
        assert unspent.fetchone()[0] == 1  # only the last successor is live
