"""The refresh **floor** services of issue 10 §1: what ``POST /auth/refresh`` costs with
nothing but FastAPI, uvicorn, the database driver and one ES256 signature.

Both floors run the same five statements in one transaction against a database that jotkit's
own migrations created (so the schema and indexes are jotkit's):

1. spend the old token if its family is live (conditional ``UPDATE`` with the live-family
   subquery, as in ``SqlSessionStore.rotate_refresh``);
2. read the token's family and user (one join);
3. insert the successor token;
4. bump the family's idle expiry;
5. record the access token's ``jti``.

Then an ES256 JWT is signed with ``cryptography`` directly (prebuilt header segment) and a
JSON body like jotkit's is returned. No reuse detection or grace window: a token that does not
spend is a plain 400. Run by ``bench_refresh.py`` as ``--serve floor-sqlite`` / ``floor-pg``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

IDLE_TTL = 14 * 86400.0
ACCESS_TTL = 900
ISSUER = "http://127.0.0.1"
AUDIENCE = "jotkit"

# The statements, in the portable form; the PostgreSQL floor swaps ``?`` for ``$n``.
SPEND = (
    "UPDATE refresh_tokens SET spent_at = ?, spent_by = ? "
    "WHERE token_hash = ? AND spent_at IS NULL AND family_id IN ("
    "SELECT id FROM refresh_families WHERE revoked_at IS NULL "
    "AND idle_expires_at > ? AND absolute_expires_at > ?)"
)
READ = (
    "SELECT f.id, f.created_at, f.absolute_expires_at, u.id, u.email, u.roles, u.disabled "
    "FROM refresh_tokens t JOIN refresh_families f ON t.family_id = f.id "
    "JOIN users u ON f.user_id = u.id WHERE t.token_hash = ?"
)
INSERT = (
    "INSERT INTO refresh_tokens (token_hash, family_id, created_at, spent_at, spent_by) "
    "VALUES (?, ?, ?, NULL, NULL)"
)
BUMP = "UPDATE refresh_families SET last_used_at = ?, idle_expires_at = ? WHERE id = ?"
RECORD = "INSERT INTO access_tokens (jti, family_id, user_id, exp) VALUES (?, ?, ?, ?)"


def _pg(sql: str) -> str:
    parts = sql.split("?")
    return "".join(p + (f"${i + 1}" if i < len(parts) - 1 else "") for i, p in enumerate(parts))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class _Signer:
    """ES256 with a prebuilt header segment (RFC 7515 §3.1, RFC 7518 §3.4)."""

    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        header = {"alg": "ES256", "typ": "at+jwt", "kid": "floor"}
        self._head = _b64(json.dumps(header, separators=(",", ":")).encode()) + "."
        self._alg = ec.ECDSA(hashes.SHA256())

    def sign(self, claims: dict[str, Any]) -> str:
        signing_input = self._head + _b64(json.dumps(claims, separators=(",", ":")).encode())
        r, s = decode_dss_signature(self._key.sign(signing_input.encode("ascii"), self._alg))
        return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class RefreshIn(BaseModel):
    """The request body (as jotkit's ``RefreshRequest``)."""

    refresh_token: str


def _fingerprint(request: Request) -> str:
    ip = request.client.host if request.client else ""
    raw = f"{ip}|{request.headers.get('user-agent', '')}".encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def _claims(row: Any, now: float, jti: str) -> dict[str, Any]:
    family_id, created, _abs, user_id, email, roles, _disabled = row
    return {
        "iss": ISSUER, "sub": user_id, "aud": AUDIENCE, "iat": int(now),
        "exp": int(now) + ACCESS_TTL, "jti": jti, "client_id": "jotkit",
        "roles": json.loads(roles), "email": email, "sid": family_id,
        "auth_time": int(created),
    }


def _answer(access: str, refresh: str) -> JSONResponse:
    return JSONResponse(
        {"access_token": access, "token_type": "Bearer", "expires_in": ACCESS_TTL,
         "refresh_token": refresh},
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


_REFUSED = {"error": "invalid_grant", "error_description": "Unknown refresh token."}


def sqlite_app(path: str) -> FastAPI:
    """The stdlib-``sqlite3`` floor: one connection on one dedicated thread."""
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floor-sqlite")
    holder: dict[str, sqlite3.Connection] = {}
    signer = _Signer()

    def connect() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        holder["c"] = conn

    executor.submit(connect).result()

    def rotate(old: str, new: str, now: float, client: str, jti: str) -> Any:
        c = holder["c"]
        c.execute("BEGIN IMMEDIATE")
        try:
            if c.execute(SPEND, (now, client, old, now, now)).rowcount != 1:
                c.execute("ROLLBACK")
                return None
            row = c.execute(READ, (old,)).fetchone()
            family_id, _created, absolute, user_id = row[0], row[1], row[2], row[3]
            c.execute(INSERT, (new, family_id, now))
            c.execute(BUMP, (now, min(now + IDLE_TTL, absolute), family_id))
            c.execute(RECORD, (jti, family_id, user_id, float(int(now) + ACCESS_TTL)))
            c.execute("COMMIT")
            return row
        except BaseException:
            c.execute("ROLLBACK")
            raise

    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/auth/refresh")
    async def refresh(body: RefreshIn, request: Request) -> JSONResponse:
        now = time.time()
        new = secrets.token_urlsafe(32)
        jti = secrets.token_urlsafe(16)
        old_hash = hashlib.sha256(body.refresh_token.encode("ascii", "replace")).hexdigest()
        new_hash = hashlib.sha256(new.encode()).hexdigest()
        row = await asyncio.get_running_loop().run_in_executor(
            executor, rotate, old_hash, new_hash, now, _fingerprint(request), jti
        )
        if row is None:
            return JSONResponse(_REFUSED, status_code=400)
        return _answer(signer.sign(_claims(row, now, jti)), new)

    return app


def pg_app(dsn: str, pool_size: int = 10) -> FastAPI:
    """The asyncpg floor: a connection pool, the same statements (prepared and cached by
    asyncpg), ``READ COMMITTED``; the spend locks the token row, the bump the family row."""
    from contextlib import asynccontextmanager

    import asyncpg

    signer = _Signer()
    spend, read, insert, bump, record = (_pg(s) for s in (SPEND, READ, INSERT, BUMP, RECORD))
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(_app: FastAPI):  # type: ignore[no-untyped-def]
        state["pool"] = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=pool_size)
        yield
        await state["pool"].close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/auth/refresh")
    async def refresh(body: RefreshIn, request: Request) -> JSONResponse:
        now = time.time()
        new = secrets.token_urlsafe(32)
        jti = secrets.token_urlsafe(16)
        old_hash = hashlib.sha256(body.refresh_token.encode("ascii", "replace")).hexdigest()
        new_hash = hashlib.sha256(new.encode()).hexdigest()
        async with state["pool"].acquire() as conn, conn.transaction():
            status = await conn.execute(spend, now, _fingerprint(request), old_hash, now, now)
            if status != "UPDATE 1":
                return JSONResponse(_REFUSED, status_code=400)
            row = await conn.fetchrow(read, old_hash)
            family_id, absolute, user_id = row[0], row[2], row[3]
            await conn.execute(insert, new_hash, family_id, now)
            await conn.execute(bump, now, min(now + IDLE_TTL, absolute), family_id)
            await conn.execute(record, jti, family_id, user_id, float(int(now) + ACCESS_TTL))
        return _answer(signer.sign(_claims(tuple(row), now, jti)), new)

    return app
