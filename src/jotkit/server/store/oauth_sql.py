"""SQL stores of the OAuth provider: clients, authorization codes + grants, and the
``jti`` values of used client assertions. Dialect-neutral like :mod:`.sql`.

A code is spent by one conditional ``UPDATE ... WHERE redeemed_at IS NULL``: of concurrent
redemptions (in one process or on several instances sharing PostgreSQL) exactly one changes
the row, and it stores the grant's refresh family in the same transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .base import (
    AssertionStore,
    ClientRecord,
    ClientStore,
    CodeRecord,
    CodeStore,
    ConsumeResult,
    FamilyRecord,
    GrantRecord,
)
from .redemption import READ_CODE, REDEEM_IF_UNSPENT, lost, redeem, redeemed, sa_executor
from .rotation import numbered
from .tables import (
    oauth_assertions,
    oauth_clients,
    oauth_codes,
    oauth_grants,
    refresh_families,
)

__all__ = [
    "PgStatements",
    "SqlAssertionStore",
    "SqlClientStore",
    "SqlCodeStore",
    "SqliteWriter",
]

_T = TypeVar("_T")


def _tuple(text: str) -> tuple[str, ...]:
    return tuple(str(v) for v in json.loads(text))


def _client(row: Any) -> ClientRecord:
    return ClientRecord(
        client_id=row.client_id,
        name=row.name,
        secret_hash=row.secret_hash,
        auth_method=row.auth_method,
        redirect_uris=_tuple(row.redirect_uris),
        post_logout_redirect_uris=_tuple(row.post_logout_redirect_uris),
        grant_types=_tuple(row.grant_types),
        scopes=_tuple(row.scopes),
        first_party=bool(row.first_party),
        backchannel_logout_uri=row.backchannel_logout_uri,
        jwks_uri=row.jwks_uri,
        jwks=None if row.jwks is None else json.loads(row.jwks),
        id_token_signed_response_alg=row.id_token_signed_response_alg,
        default_audience=row.default_audience,
        created_at=row.created_at,
        resources=_tuple(row.resources),
        dpop_bound_access_tokens=bool(row.dpop_bound_access_tokens),
        require_par=bool(row.require_par),
        exchange_audiences=_tuple(row.exchange_audiences),
        exchange_scopes=_tuple(row.exchange_scopes),
        exchange_actors=_tuple(row.exchange_actors),
    )


def _code(row: Any) -> CodeRecord:
    return CodeRecord(
        code_hash=row.code_hash,
        client_id=row.client_id,
        user_id=row.user_id,
        redirect_uri=row.redirect_uri,
        code_challenge=row.code_challenge,
        scope=_tuple(row.scope),
        nonce=row.nonce,
        auth_time=row.auth_time,
        sid=row.sid,
        resource=_tuple(row.resource),
        created_at=row.created_at,
        expires_at=row.expires_at,
        redeemed_at=row.redeemed_at,
        family_id=row.family_id,
        dpop_jkt=row.dpop_jkt,
    )


class SqlClientStore(ClientStore):
    """Clients in ``oauth_clients``."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

    async def create(self, client: ClientRecord) -> None:
        """Insert a client; ``ValueError`` when the id exists."""
        values = {
            "client_id": client.client_id,
            "name": client.name,
            "secret_hash": client.secret_hash,
            "auth_method": client.auth_method,
            "redirect_uris": json.dumps(list(client.redirect_uris)),
            "post_logout_redirect_uris": json.dumps(list(client.post_logout_redirect_uris)),
            "grant_types": json.dumps(list(client.grant_types)),
            "scopes": json.dumps(list(client.scopes)),
            "first_party": client.first_party,
            "backchannel_logout_uri": client.backchannel_logout_uri,
            "jwks_uri": client.jwks_uri,
            "jwks": None if client.jwks is None else json.dumps(client.jwks),
            "id_token_signed_response_alg": client.id_token_signed_response_alg,
            "default_audience": client.default_audience,
            "created_at": client.created_at,
            "resources": json.dumps(list(client.resources)),
            "dpop_bound_access_tokens": client.dpop_bound_access_tokens,
            "require_par": client.require_par,
            "exchange_audiences": json.dumps(list(client.exchange_audiences)),
            "exchange_scopes": json.dumps(list(client.exchange_scopes)),
            "exchange_actors": json.dumps(list(client.exchange_actors)),
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.insert(oauth_clients).values(**values))
        except IntegrityError:
            raise ValueError(f"client {client.client_id!r} exists") from None

    async def get(self, client_id: str) -> ClientRecord | None:
        """A client by id."""
        async with self._read.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(oauth_clients).where(oauth_clients.c.client_id == client_id)
                )
            ).first()
        return None if row is None else _client(row)

    async def list(self) -> list[ClientRecord]:
        """All clients, oldest first."""
        async with self._read.connect() as conn:
            rows = await conn.execute(
                sa.select(oauth_clients).order_by(
                    oauth_clients.c.created_at, oauth_clients.c.client_id
                )
            )
            return [_client(r) for r in rows]

    async def delete(self, client_id: str) -> bool:
        """Remove a client."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                sa.delete(oauth_clients).where(oauth_clients.c.client_id == client_id)
            )
            return bool(res.rowcount == 1)

    async def set_secret(self, client_id: str, secret_hash: str) -> bool:
        """Replace the secret hash of a client that has one."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                sa.update(oauth_clients)
                .where(
                    oauth_clients.c.client_id == client_id,
                    oauth_clients.c.secret_hash.is_not(None),
                )
                .values(secret_hash=secret_hash)
            )
            return bool(res.rowcount == 1)


class SqliteWriter(Protocol):
    """Runs ``fn(sqlite3_connection, *args)`` in a write transaction on the store's thread."""

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run one job; its result."""
        ...


class PgStatements(Protocol):
    """Runs one statement on the store's asyncpg pool."""

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """The statement's first row (or None)."""
        ...


class SqlCodeStore(CodeStore):
    """Codes in ``oauth_codes``, grants in ``oauth_grants``. Redemptions run on the SQL
    store's fast paths when it has them (the SQLite file's writer thread, asyncpg), else
    through SQLAlchemy: the same steps (:mod:`.redemption`) everywhere."""

    _REDEEM_PG = REDEEM_IF_UNSPENT
    _READ_PG = numbered(READ_CODE)

    def __init__(
        self,
        engine: AsyncEngine,
        read_engine: AsyncEngine | None = None,
        *,
        writer: SqliteWriter | None = None,
        pg: PgStatements | None = None,
    ) -> None:
        self._engine = engine
        self._read = read_engine or engine
        self._writer = writer
        self._pg = pg

    async def create(self, code: CodeRecord) -> None:
        """Store a new code."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.insert(oauth_codes).values(
                    code_hash=code.code_hash,
                    client_id=code.client_id,
                    user_id=code.user_id,
                    redirect_uri=code.redirect_uri,
                    code_challenge=code.code_challenge,
                    scope=json.dumps(list(code.scope)),
                    nonce=code.nonce,
                    auth_time=code.auth_time,
                    sid=code.sid,
                    resource=json.dumps(list(code.resource)),
                    created_at=code.created_at,
                    expires_at=code.expires_at,
                    redeemed_at=None,
                    family_id=None,
                    dpop_jkt=code.dpop_jkt,
                )
            )

    async def consume(
        self,
        code_hash: str,
        now: float,
        family: FamilyRecord,
        refresh_hash: str,
        access: tuple[str, float] | None = None,
    ) -> ConsumeResult:
        """Spend the code and store its family and grant atomically (:mod:`.redemption`)."""
        if self._writer is not None:
            return await self._writer.run(
                _redeem_sqlite, code_hash, now, family, refresh_hash, access
            )
        if self._pg is not None:
            jti, exp = access if access is not None else (None, None)
            values = await self._pg.fetchrow(
                self._REDEEM_PG, code_hash, now, family.id, family.created_at,
                family.last_used_at, family.idle_expires_at, family.absolute_expires_at,
                family.user_agent, family.client_ip, refresh_hash, jti, exp,
            )
            if values is not None:
                return redeemed(values)
            return lost(await self._pg.fetchrow(self._READ_PG, code_hash))
        async with self._engine.begin() as conn:
            return await conn.run_sync(
                _redeem_sa, code_hash, now, family, refresh_hash, access
            )

    async def grant(self, family_id: str) -> GrantRecord | None:
        """The grant of a family."""
        async with self._read.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(oauth_grants).where(oauth_grants.c.family_id == family_id)
                )
            ).first()
        if row is None:
            return None
        return GrantRecord(
            family_id=row.family_id,
            client_id=row.client_id,
            user_id=row.user_id,
            scope=_tuple(row.scope),
            resource=_tuple(row.resource),
            sid=row.sid,
            auth_time=row.auth_time,
            nonce=row.nonce,
        )

    async def purge(self, now: float, keep: float = 86400.0) -> int:
        """Delete codes expired for more than ``keep`` seconds (a replay of a recently
        redeemed code must still find it) and grants whose family is gone."""
        async with self._engine.begin() as conn:
            n = await conn.execute(
                sa.delete(oauth_codes).where(oauth_codes.c.expires_at < now - keep)
            )
            live = sa.select(refresh_families.c.id)
            g = await conn.execute(
                sa.delete(oauth_grants).where(oauth_grants.c.family_id.not_in(live))
            )
            return int(n.rowcount + g.rowcount)


def _redeem_sqlite(conn: sqlite3.Connection, *args: Any) -> ConsumeResult:
    return redeem(conn.execute, *args)


def _redeem_sa(conn: sa.Connection, *args: Any) -> ConsumeResult:
    return redeem(sa_executor(conn), *args)


class SqlAssertionStore(AssertionStore):
    """Used client-assertion ``jti`` values in ``oauth_assertions`` (primary key: one insert
    per assertion; a duplicate is a replay)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def use(self, client_id: str, jti: str, exp: float, now: float) -> bool:
        """Insert ``(client_id, jti)``; False on a duplicate that has not expired."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    sa.delete(oauth_assertions).where(
                        oauth_assertions.c.client_id == client_id,
                        oauth_assertions.c.jti == jti,
                        oauth_assertions.c.expires_at <= now,
                    )
                )
                await conn.execute(
                    sa.insert(oauth_assertions).values(
                        client_id=client_id, jti=jti, expires_at=exp
                    )
                )
        except IntegrityError:
            return False
        return True

    async def purge(self, now: float) -> int:
        """Drop expired entries."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                sa.delete(oauth_assertions).where(oauth_assertions.c.expires_at <= now)
            )
            return int(res.rowcount)
