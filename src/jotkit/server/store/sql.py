"""The SQL store: SQLAlchemy 2 Core over an async engine.

The queries are dialect-neutral (no SQLite- or PostgreSQL-only SQL), so the same classes run
on ``sqlite+aiosqlite`` (the embedded default) and ``postgresql+asyncpg``. Only engine set-up
differs per dialect (:func:`make_engine`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..migrations import upgrade_connection
from .base import (
    AccessTokenRecord,
    FamilyRecord,
    KeyRecord,
    KeyStore,
    RateLimiter,
    RefreshRecord,
    RevocationChanges,
    RevocationStore,
    RotateOutcome,
    RotateResult,
    SessionStore,
    Store,
    UserExists,
    UserRecord,
    UserStore,
)
from .feed import SqlRevocationFeed
from .oauth_sql import SqlAssertionStore, SqlClientStore, SqlCodeStore
from .sso import SsoStore
from .tables import (
    access_tokens,
    rate_limits,
    refresh_families,
    refresh_tokens,
    revocations,
    signing_keys,
    users,
)

__all__ = ["PoolSettings", "SqlStore", "make_engine"]


@dataclass(frozen=True, slots=True)
class PoolSettings:
    """Connection-pool sizing of a server database (SQLAlchemy ``QueuePool``): a request
    waits up to ``timeout`` seconds for a connection; after that SQLAlchemy raises
    ``TimeoutError``, which the service answers with 503 and ``Retry-After``."""

    size: int = 10
    max_overflow: int = 10
    timeout: float = 10.0


def make_engine(url: str, pool: PoolSettings | None = None) -> AsyncEngine:
    """Create an async engine; SQLite gets WAL, foreign keys, a busy timeout and one pooled
    connection (SQLite has a single writer; serialising in-process avoids lock errors).
    Other databases get a queue pool sized by ``pool``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        sizing = pool or PoolSettings()
        return create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=sizing.size,
            max_overflow=sizing.max_overflow,
            pool_timeout=sizing.timeout,
            hide_parameters=True,
        )
    database = parsed.database
    if database and database != ":memory:" and not database.startswith("file:"):
        _private_file(Path(database).expanduser())
    engine = create_async_engine(
        url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0, pool_timeout=60,
        hide_parameters=True,  # SQL errors in logs never show bound values (hashes, keys)
        # Transactions always end in COMMIT/ROLLBACK (and closing a connection rolls back an
        # open one), so the pool's extra rollback on return is only a wasted round trip.
        pool_reset_on_return=None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Take the write lock up front: two processes never deadlock on a lock upgrade.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _private_file(path: Path) -> None:
    """Create the data directory (0700) and an empty database file (0600): the database
    holds the private signing keys. Existing files keep their permissions."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)


def make_read_engine(url: str) -> AsyncEngine | None:
    """For SQLite, a second engine for reads: autocommit (no BEGIN, no rollback on return),
    several connections, so reads neither queue behind writes nor pay for transaction
    round trips (WAL readers see every committed write). None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    engine = create_async_engine(
        url, connect_args={"timeout": 30}, pool_size=4, max_overflow=4, pool_timeout=60,
        hide_parameters=True,
        pool_reset_on_return=None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # autocommit: each SELECT is its own snapshot
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    return engine


def _user(row: Any) -> UserRecord:
    return UserRecord(
        id=row.id,
        email=row.email,
        password_hash=row.password_hash,
        roles=tuple(json.loads(row.roles)),
        disabled=bool(row.disabled),
        created_at=row.created_at,
    )


def _family(row: Any) -> FamilyRecord:
    return FamilyRecord(
        id=row.id,
        user_id=row.user_id,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        idle_expires_at=row.idle_expires_at,
        absolute_expires_at=row.absolute_expires_at,
        revoked_at=row.revoked_at,
        revoke_reason=row.revoke_reason,
        user_agent=row.user_agent,
        client_ip=row.client_ip,
        client_id=row.client_id,
    )


class SqlUserStore(UserStore):
    """Users in the ``users`` table."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

    async def create(
        self, user_id: str, email: str, password_hash: str, roles: Sequence[str], now: float
    ) -> UserRecord:
        """Insert a user; raise :class:`UserExists` on a duplicate email."""
        values = {
            "id": user_id,
            "email": email,
            "password_hash": password_hash,
            "roles": json.dumps(list(roles)),
            "disabled": False,
            "created_at": now,
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.insert(users).values(**values))
        except IntegrityError:
            raise UserExists(email) from None
        return UserRecord(user_id, email, password_hash, tuple(roles), False, now)

    async def get(self, user_id: str) -> UserRecord | None:
        """Look a user up by id."""
        async with self._read.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.id == user_id))).first()
        return None if row is None else _user(row)

    async def get_by_email(self, email: str) -> UserRecord | None:
        """Look a user up by normalised email."""
        async with self._read.connect() as conn:
            row = (await conn.execute(sa.select(users).where(users.c.email == email))).first()
        return None if row is None else _user(row)

    async def list(self) -> list[UserRecord]:
        """All users, oldest first."""
        async with self._read.connect() as conn:
            rows = await conn.execute(sa.select(users).order_by(users.c.created_at, users.c.id))
            return [_user(r) for r in rows]

    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the stored hash."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )

    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        """Disable or re-enable a user."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(users).where(users.c.id == user_id).values(disabled=disabled)
            )


class SqlSessionStore(SessionStore):
    """Refresh families and tokens in SQL; rotation is one conditional UPDATE.

    Rotation and revocation serialise on the family row: both lock it (``SELECT ... FOR
    UPDATE`` / ``UPDATE``) before reading or writing the family's tokens, so a revocation
    always sees every access token a concurrent rotation recorded, or the rotation sees the
    revocation."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

    async def create_family(self, family: FamilyRecord, first_token_hash: str) -> None:
        """Store a new family with its first refresh token."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.insert(refresh_families).values(
                    id=family.id,
                    user_id=family.user_id,
                    created_at=family.created_at,
                    last_used_at=family.last_used_at,
                    idle_expires_at=family.idle_expires_at,
                    absolute_expires_at=family.absolute_expires_at,
                    revoked_at=None,
                    revoke_reason=None,
                    user_agent=family.user_agent,
                    client_ip=family.client_ip,
                    client_id=family.client_id,
                )
            )
            await conn.execute(
                sa.insert(refresh_tokens).values(
                    token_hash=first_token_hash,
                    family_id=family.id,
                    created_at=family.created_at,
                    spent_at=None,
                    spent_by=None,
                )
            )

    async def rotate_refresh(
        self,
        old_hash: str,
        new_hash: str,
        now: float,
        grace: float,
        *,
        client: str,
        idle_ttl: float,
        access: tuple[str, float] | None = None,
    ) -> RotateResult:
        """Spend ``old_hash`` and store ``new_hash`` atomically (see the interface)."""
        live_families = sa.select(refresh_families.c.id).where(
            refresh_families.c.revoked_at.is_(None),
            refresh_families.c.idle_expires_at > now,
            refresh_families.c.absolute_expires_at > now,
        )
        spend = (
            sa.update(refresh_tokens)
            .where(
                refresh_tokens.c.token_hash == old_hash,
                refresh_tokens.c.spent_at.is_(None),
                refresh_tokens.c.family_id.in_(live_families.scalar_subquery()),
            )
            .values(spent_at=now, spent_by=client)
        )
        # Lock the family row first (PostgreSQL; SQLite has one writer at a time): a
        # revocation updates that row too, so it either commits before this rotation (which
        # then sees ``revoked_at`` and spends nothing) or waits for it and, under READ
        # COMMITTED, reads the access token recorded below. Without the lock the family check
        # in ``spend`` reads a snapshot, and a revocation that runs in between reads the
        # family's access tokens before this one is inserted: a live token after logout.
        lock_family = (
            sa.select(refresh_families.c.id)
            .join(refresh_tokens, refresh_tokens.c.family_id == refresh_families.c.id)
            .where(refresh_tokens.c.token_hash == old_hash)
            .with_for_update(of=refresh_families)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(lock_family)).first() is None:
                return RotateResult(RotateOutcome.NOT_FOUND)
            won = (await conn.execute(spend)).rowcount == 1
            row = (
                await conn.execute(
                    sa.select(refresh_tokens, refresh_families, users)
                    .join(refresh_families, refresh_tokens.c.family_id == refresh_families.c.id)
                    .join(users, refresh_families.c.user_id == users.c.id)
                    .where(refresh_tokens.c.token_hash == old_hash)
                )
            ).first()
            if row is None:
                return RotateResult(RotateOutcome.NOT_FOUND)
            family = _family(_FamilyRow(row))
            m = row._mapping
            user = UserRecord(
                id=m[users.c.id],
                email=m[users.c.email],
                password_hash=m[users.c.password_hash],
                roles=tuple(json.loads(m[users.c.roles])),
                disabled=bool(m[users.c.disabled]),
                created_at=m[users.c.created_at],
            )
            if won:
                idle = min(now + idle_ttl, family.absolute_expires_at)
                await conn.execute(
                    sa.insert(refresh_tokens).values(
                        token_hash=new_hash,
                        family_id=family.id,
                        created_at=now,
                        spent_at=None,
                        spent_by=None,
                    )
                )
                await conn.execute(
                    sa.update(refresh_families)
                    .where(refresh_families.c.id == family.id)
                    .values(last_used_at=now, idle_expires_at=idle)
                )
                if access is not None:
                    await conn.execute(
                        sa.insert(access_tokens).values(
                            jti=access[0], family_id=family.id, user_id=user.id, exp=access[1]
                        )
                    )
                return RotateResult(
                    RotateOutcome.ROTATED, _replace_use(family, now, idle), user=user
                )
            if family.revoked_at is not None:
                return RotateResult(RotateOutcome.REVOKED, family)
            if row.spent_at is None:
                return RotateResult(RotateOutcome.EXPIRED, family)
            if now - row.spent_at <= grace and row.spent_by == client:
                return RotateResult(RotateOutcome.RETRY, family)
            outstanding = await self._revoke_families(conn, [family.id], now, "reuse")
            return RotateResult(RotateOutcome.REUSED, family, outstanding)

    async def find_refresh(self, token_hash: str) -> tuple[RefreshRecord, FamilyRecord] | None:
        """The token row and its family, or None."""
        async with self._read.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(refresh_tokens, refresh_families)
                    .join(refresh_families, refresh_tokens.c.family_id == refresh_families.c.id)
                    .where(refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
        if row is None:
            return None
        token = RefreshRecord(
            token_hash=row.token_hash,
            family_id=row.family_id,
            created_at=row._mapping[refresh_tokens.c.created_at],
            spent_at=row.spent_at,
            spent_by=row.spent_by,
        )
        return token, _family(_FamilyRow(row))

    async def get_family(self, family_id: str) -> FamilyRecord | None:
        """A family by id."""
        async with self._read.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(refresh_families).where(refresh_families.c.id == family_id)
                )
            ).first()
        return None if row is None else _family(row)

    async def list_families(self, user_id: str, now: float) -> list[FamilyRecord]:
        """The user's active families, newest first."""
        async with self._read.connect() as conn:
            rows = await conn.execute(
                sa.select(refresh_families)
                .where(
                    refresh_families.c.user_id == user_id,
                    refresh_families.c.revoked_at.is_(None),
                    refresh_families.c.idle_expires_at > now,
                    refresh_families.c.absolute_expires_at > now,
                )
                .order_by(refresh_families.c.created_at.desc(), refresh_families.c.id)
            )
            return [_family(r) for r in rows]

    async def record_access_token(self, record: AccessTokenRecord) -> bool:
        """Remember an issued access token unless its family is revoked or its user disabled:
        one ``INSERT … SELECT … FOR UPDATE`` (the row lock on the family means a concurrent
        revocation either sees this row or is seen by it; SQLite serialises writers). The
        user check closes a login racing ``users disable``: the disable commits before this
        statement (nothing is recorded) or its ``revoke_user`` runs after it and sees the
        family and this token."""
        live_family = (
            sa.select(
                sa.literal(record.jti, sa.String(64)),
                refresh_families.c.id,
                sa.literal(record.user_id, sa.String(36)),
                sa.literal(record.exp, sa.Double),
            )
            .join(users, users.c.id == refresh_families.c.user_id)
            .where(
                refresh_families.c.id == record.family_id,
                refresh_families.c.revoked_at.is_(None),
                users.c.disabled.is_(False),
            )
            .with_for_update(of=refresh_families)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.insert(access_tokens).from_select(
                    ["jti", "family_id", "user_id", "exp"], live_family
                )
            )
            return bool(result.rowcount == 1)

    async def revoke_family(
        self, family_id: str, now: float, reason: str
    ) -> tuple[AccessTokenRecord, ...]:
        """Revoke one family; return its unexpired access tokens."""
        async with self._engine.begin() as conn:
            return await self._revoke_families(conn, [family_id], now, reason)

    async def revoke_user(
        self, user_id: str, now: float, reason: str
    ) -> tuple[AccessTokenRecord, ...]:
        """Revoke every family of a user."""
        async with self._engine.begin() as conn:
            ids = [
                r.id
                for r in await conn.execute(
                    sa.select(refresh_families.c.id).where(refresh_families.c.user_id == user_id)
                )
            ]
            return await self._revoke_families(conn, ids, now, reason)

    @staticmethod
    async def _revoke_families(
        conn: AsyncConnection, ids: list[str], now: float, reason: str
    ) -> tuple[AccessTokenRecord, ...]:
        if not ids:
            return ()
        await conn.execute(
            sa.update(refresh_families)
            .where(refresh_families.c.id.in_(ids), refresh_families.c.revoked_at.is_(None))
            .values(revoked_at=now, revoke_reason=reason)
        )
        rows = await conn.execute(
            sa.select(access_tokens).where(
                access_tokens.c.family_id.in_(ids), access_tokens.c.exp > now
            )
        )
        return tuple(AccessTokenRecord(r.jti, r.family_id, r.user_id, r.exp) for r in rows)

    async def purge(self, now: float, keep: float = 86400.0) -> int:
        """Delete expired access-token rows and families dead for more than ``keep`` s."""
        dead = sa.select(refresh_families.c.id).where(
            sa.or_(
                refresh_families.c.absolute_expires_at < now - keep,
                refresh_families.c.idle_expires_at < now - keep,
                refresh_families.c.revoked_at < now - keep,
            )
        )
        async with self._engine.begin() as conn:
            n = await conn.execute(sa.delete(access_tokens).where(access_tokens.c.exp < now))
            total = n.rowcount
            ids = [r.id for r in await conn.execute(dead)]
            if ids:
                total += (
                    await conn.execute(
                        sa.delete(refresh_tokens).where(refresh_tokens.c.family_id.in_(ids))
                    )
                ).rowcount
                total += (
                    await conn.execute(
                        sa.delete(refresh_families).where(refresh_families.c.id.in_(ids))
                    )
                ).rowcount
            return int(total)


class _FamilyRow:
    """Adapter: the family columns of a token+family join row (the join renames ``id``)."""

    def __init__(self, row: Any) -> None:
        m = row._mapping
        self.id = m[refresh_families.c.id]
        self.user_id = m[refresh_families.c.user_id]
        self.created_at = m[refresh_families.c.created_at]
        self.last_used_at = m[refresh_families.c.last_used_at]
        self.idle_expires_at = m[refresh_families.c.idle_expires_at]
        self.absolute_expires_at = m[refresh_families.c.absolute_expires_at]
        self.revoked_at = m[refresh_families.c.revoked_at]
        self.revoke_reason = m[refresh_families.c.revoke_reason]
        self.user_agent = m[refresh_families.c.user_agent]
        self.client_ip = m[refresh_families.c.client_ip]
        self.client_id = m[refresh_families.c.client_id]


def _replace_use(family: FamilyRecord, now: float, idle: float) -> FamilyRecord:
    import dataclasses

    return dataclasses.replace(family, last_used_at=now, idle_expires_at=idle)


#: How many ``seq`` values behind the cursor are re-read on databases whose sequences can
#: commit out of order (see :meth:`SqlRevocationStore.changes_since`).
_SEQ_LOOKBACK = 512


class SqlRevocationStore(RevocationStore):
    """Deny-list and revoked-before markers in the ``revocations`` table."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

    async def deny(self, entries: Sequence[tuple[str, float]], now: float) -> None:
        """Deny-list ``(jti, exp)`` pairs until their ``exp``."""
        rows = [
            {"kind": "jti", "value": jti, "at": now, "expires_at": exp}
            for jti, exp in entries
            if exp > now
        ]
        if not rows:
            return
        async with self._engine.begin() as conn:
            await conn.execute(sa.insert(revocations), rows)

    async def set_user_marker(self, user_id: str, revoked_before: float, keep_until: float) -> None:
        """Reject the user's access tokens issued before ``revoked_before``."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.insert(revocations).values(
                    kind="user", value=user_id, at=revoked_before, expires_at=keep_until
                )
            )

    async def is_denied(self, jti: str, now: float) -> bool:
        """Authoritative deny-list lookup."""
        async with self._read.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(revocations.c.seq)
                    .where(
                        revocations.c.kind == "jti",
                        revocations.c.value == jti,
                        revocations.c.expires_at > now,
                    )
                    .limit(1)
                )
            ).first()
        return row is not None

    async def user_marker(self, user_id: str, now: float) -> float | None:
        """The latest still-relevant revoked-before marker of a user."""
        async with self._read.connect() as conn:
            value = (
                await conn.execute(
                    sa.select(sa.func.max(revocations.c.at)).where(
                        revocations.c.kind == "user",
                        revocations.c.value == user_id,
                        revocations.c.expires_at > now,
                    )
                )
            ).scalar()
        return None if value is None else float(value)

    async def changes_since(self, cursor: int, now: float) -> RevocationChanges:
        """Entries added after ``cursor`` that still matter; the new cursor is the highest
        ``seq`` read.

        SQLite serialises writers, so ``seq`` values commit in order there. On PostgreSQL a
        transaction can take a lower ``seq`` and commit after a higher one was read, so the
        query also re-reads a window of ``_SEQ_LOOKBACK`` values behind the cursor (callers
        apply changes idempotently) and a late commit is still seen.
        """
        lookback = 0 if self._engine.dialect.name == "sqlite" else _SEQ_LOOKBACK
        async with self._read.connect() as conn:
            rows = (
                await conn.execute(
                    sa.select(revocations)
                    .where(revocations.c.seq > max(0, cursor - lookback))
                    .order_by(revocations.c.seq)
                )
            ).all()
        live = [r for r in rows if r.expires_at > now]
        denied = tuple((r.value, r.expires_at) for r in live if r.kind == "jti")
        markers = tuple((r.value, r.at) for r in live if r.kind == "user")
        new_cursor = max([cursor, *(int(r.seq) for r in rows)])
        return RevocationChanges(denied, markers, new_cursor, reset=cursor == 0)

    async def purge(self, now: float) -> int:
        """Drop entries whose tokens have expired."""
        async with self._engine.begin() as conn:
            res = await conn.execute(sa.delete(revocations).where(revocations.c.expires_at <= now))
            return int(res.rowcount)


class SqlRateLimiter(RateLimiter):
    """Fixed-window counters in the ``rate_limits`` table."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

    async def hit(self, key: str, window: float, now: float) -> tuple[int, float]:
        """Count one event in the current window."""
        if self._engine.dialect.name == "postgresql":
            return await self._hit_upsert(key, window, now)
        for _attempt in range(3):
            try:
                async with self._engine.begin() as conn:
                    bump = (
                        sa.update(rate_limits)
                        .where(rate_limits.c.key == key, rate_limits.c.window_start > now - window)
                        .values(count=rate_limits.c.count + 1)
                    )
                    if (await conn.execute(bump)).rowcount == 0:
                        await conn.execute(sa.delete(rate_limits).where(rate_limits.c.key == key))
                        await conn.execute(
                            sa.insert(rate_limits).values(key=key, window_start=now, count=1)
                        )
                    row = (
                        await conn.execute(sa.select(rate_limits).where(rate_limits.c.key == key))
                    ).one()
                    return int(row._mapping["count"]), max(0.0, row.window_start + window - now)
            except IntegrityError:  # a concurrent first hit inserted the row; count again
                continue
        return await self.peek(key, window, now)

    async def _hit_upsert(self, key: str, window: float, now: float) -> tuple[int, float]:
        """PostgreSQL: one atomic ``INSERT ... ON CONFLICT DO UPDATE`` (under READ COMMITTED the
        update-then-delete-and-insert above can reset a counter that a concurrent first hit
        just created, losing counts)."""
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        current = rate_limits.c.window_start > now - window
        upsert = pg_insert(rate_limits).values(key=key, window_start=now, count=1)
        stmt = upsert.on_conflict_do_update(
            index_elements=[rate_limits.c.key],
            set_={
                "count": sa.case((current, rate_limits.c.count + 1), else_=1),
                "window_start": sa.case((current, rate_limits.c.window_start), else_=now),
            },
        ).returning(rate_limits.c.count, rate_limits.c.window_start)
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).one()
        return int(row[0]), max(0.0, float(row[1]) + window - now)

    async def peek(self, key: str, window: float, now: float) -> tuple[int, float]:
        """The current count without counting."""
        async with self._read.connect() as conn:
            row = (
                await conn.execute(sa.select(rate_limits).where(rate_limits.c.key == key))
            ).first()
        if row is None or row.window_start <= now - window:
            return 0, 0.0
        return int(row._mapping["count"]), max(0.0, row.window_start + window - now)

    async def release(self, key: str, window: float, now: float) -> None:
        """Take back one event of the current window (one conditional ``UPDATE``)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(rate_limits)
                .where(
                    rate_limits.c.key == key,
                    rate_limits.c.window_start > now - window,
                    rate_limits.c.count > 0,
                )
                .values(count=rate_limits.c.count - 1)
            )

    async def reset(self, key: str) -> None:
        """Forget a counter."""
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(rate_limits).where(rate_limits.c.key == key))

    async def purge(self, started_before: float) -> int:
        """Delete counters whose window started before ``started_before``."""
        async with self._engine.begin() as conn:
            res = await conn.execute(
                sa.delete(rate_limits).where(rate_limits.c.window_start < started_before)
            )
            return int(res.rowcount)


class SqlKeyStore(KeyStore):
    """Signing keys in the ``signing_keys`` table."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

    async def list(self) -> list[KeyRecord]:
        """All keys, oldest activation first."""
        async with self._read.connect() as conn:
            rows = await conn.execute(
                sa.select(signing_keys).order_by(signing_keys.c.activate_at, signing_keys.c.kid)
            )
            return [
                KeyRecord(
                    r.kid, r.alg, r.private_jwk, r.created_at, r.activate_at, r.revoked_at
                )
                for r in rows
            ]

    @staticmethod
    def _insert(record: KeyRecord) -> sa.Insert:
        return sa.insert(signing_keys).values(
            kid=record.kid,
            alg=record.alg,
            private_jwk=record.private_jwk,
            created_at=record.created_at,
            activate_at=record.activate_at,
            revoked_at=record.revoked_at,
        )

    async def add(self, record: KeyRecord) -> None:
        """Insert a key."""
        async with self._engine.begin() as conn:
            await conn.execute(self._insert(record))

    async def revoke(self, kid: str, now: float, replacement: KeyRecord | None = None) -> bool:
        """Set ``revoked_at`` and insert the replacement key in one transaction."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                sa.update(signing_keys)
                .where(signing_keys.c.kid == kid, signing_keys.c.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            if done.rowcount != 1:  # unknown or already revoked: nothing was changed
                return False
            if replacement is not None:
                await conn.execute(self._insert(replacement))
            return True

    async def delete(self, kid: str) -> None:
        """Remove a key."""
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(signing_keys).where(signing_keys.c.kid == kid))


class SqlStore(Store):
    """Every store interface on one SQLAlchemy async engine."""

    def __init__(self, url: str, pool: PoolSettings | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool)
        self.read_engine = make_read_engine(url)
        self.users = SqlUserStore(self.engine, self.read_engine)
        self.sessions = SqlSessionStore(self.engine, self.read_engine)
        self.revocations = SqlRevocationStore(self.engine, self.read_engine)
        self.rate_limits = SqlRateLimiter(self.engine, self.read_engine)
        self.keys = SqlKeyStore(self.engine, self.read_engine)
        self.sso = SsoStore(self.engine)
        self.clients = SqlClientStore(self.engine, self.read_engine)
        self.codes = SqlCodeStore(self.engine, self.read_engine)
        self.assertions = SqlAssertionStore(self.engine)
        self.feed = SqlRevocationFeed(self.engine, self.read_engine)  # /oauth/revocations

    async def start(self) -> None:
        """Run the Alembic migrations up to head."""
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # instances starting at once migrate in turn
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7243001)"))
            await conn.run_sync(upgrade_connection)

    async def close(self) -> None:
        """Dispose of the engines' connections."""
        await self.engine.dispose()
        if self.read_engine is not None:
            await self.read_engine.dispose()

    async def ping(self) -> bool:
        """``SELECT 1``."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        except Exception:
            return False
        return True
