"""SQL stores of the OAuth provider: clients, authorization codes + grants, and the
``jti`` values of used client assertions. Dialect-neutral like :mod:`.sql`.

A code is spent by one conditional ``UPDATE ... WHERE redeemed_at IS NULL``: of concurrent
redemptions (in one process or on several instances sharing PostgreSQL) exactly one changes
the row, and it stores the grant's refresh family in the same transaction.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .base import (
    AssertionStore,
    ClientRecord,
    ClientStore,
    CodeRecord,
    CodeStore,
    ConsumeOutcome,
    ConsumeResult,
    FamilyRecord,
    GrantRecord,
)
from .tables import (
    access_tokens,
    oauth_assertions,
    oauth_clients,
    oauth_codes,
    oauth_grants,
    refresh_families,
    refresh_tokens,
)

__all__ = ["SqlAssertionStore", "SqlClientStore", "SqlCodeStore", "open_grant"]


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
    )


async def open_grant(
    conn: AsyncConnection,
    family: FamilyRecord,
    refresh_hash: str,
    now: float,
    access: tuple[str, float] | None,
    grant: GrantRecord,
) -> None:
    """Insert what a redeemed code (or device code, RFC 8628) opens, inside the caller's
    transaction: the refresh family of ``grant.user_id`` / ``grant.client_id``, its first
    refresh token, the grant and the winner's access token ``(jti, exp)``."""
    await conn.execute(
        sa.insert(refresh_families).values(
            id=family.id,
            user_id=grant.user_id,
            created_at=family.created_at,
            last_used_at=family.last_used_at,
            idle_expires_at=family.idle_expires_at,
            absolute_expires_at=family.absolute_expires_at,
            revoked_at=None,
            revoke_reason=None,
            user_agent=family.user_agent,
            client_ip=family.client_ip,
            client_id=grant.client_id,
        )
    )
    await conn.execute(
        sa.insert(refresh_tokens).values(
            token_hash=refresh_hash, family_id=family.id, created_at=now, spent_at=None,
            spent_by=None,
        )
    )
    await conn.execute(
        sa.insert(oauth_grants).values(
            family_id=family.id,
            client_id=grant.client_id,
            user_id=grant.user_id,
            scope=json.dumps(list(grant.scope)),
            resource=json.dumps(list(grant.resource)),
            sid=grant.sid,
            auth_time=grant.auth_time,
            nonce=grant.nonce,
        )
    )
    if access is not None:
        await conn.execute(
            sa.insert(access_tokens).values(
                jti=access[0], family_id=family.id, user_id=grant.user_id, exp=access[1]
            )
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


class SqlCodeStore(CodeStore):
    """Codes in ``oauth_codes``, grants in ``oauth_grants``."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

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
        """Spend the code and store its family and grant in one transaction."""
        spend = (
            sa.update(oauth_codes)
            .where(
                oauth_codes.c.code_hash == code_hash,
                oauth_codes.c.redeemed_at.is_(None),
                oauth_codes.c.expires_at > now,
            )
            .values(redeemed_at=now, family_id=family.id)
        )
        read = sa.select(oauth_codes).where(oauth_codes.c.code_hash == code_hash)
        async with self._engine.begin() as conn:
            won = (await conn.execute(spend)).rowcount == 1
            row = (await conn.execute(read)).first()
            if row is None:
                return ConsumeResult(ConsumeOutcome.NOT_FOUND)
            code = _code(row)
            if not won:
                if code.redeemed_at is None:
                    return ConsumeResult(ConsumeOutcome.EXPIRED, code)
                return ConsumeResult(ConsumeOutcome.REPLAYED, code)
            await open_grant(
                conn, family, refresh_hash, now, access,
                GrantRecord(
                    family_id=family.id, client_id=code.client_id, user_id=code.user_id,
                    scope=code.scope, resource=code.resource, sid=code.sid,
                    auth_time=code.auth_time, nonce=code.nonce,
                ),
            )
            return ConsumeResult(ConsumeOutcome.REDEEMED, code)

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
