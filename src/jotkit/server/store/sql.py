"""The SQL store: SQLAlchemy 2 Core over an async engine.

The queries are dialect-neutral (no SQLite- or PostgreSQL-only SQL), so the same classes run
on ``sqlite+aiosqlite`` (the embedded default) and ``postgresql+asyncpg``. Only engine set-up
differs per dialect (:func:`make_engine`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

if sys.platform != "win32":
    import fcntl

from ..migrations import upgrade_connection
from . import rotation
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
from .dpop_sql import SqlDpopStore
from .feed import SqlRevocationFeed
from .oauth_sql import SqlAssertionStore, SqlClientStore, SqlCodeStore
from .par_device_sql import SqlDeviceCodeStore, SqlParStore
from .redemption import sa_executor
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
    """Refresh families and tokens in SQL; rotation decided by :mod:`.rotation`.

    Rotation and revocation serialise on the family row: both lock it (``FOR UPDATE`` /
    ``UPDATE``; SQLite: one writer at a time) before reading or writing the family's tokens,
    so a revocation always sees every access token a concurrent rotation recorded, or the
    rotation sees the revocation."""

    def __init__(
        self,
        engine: AsyncEngine,
        read_engine: AsyncEngine | None = None,
        pool: PoolSettings | None = None,
    ) -> None:
        self._engine = engine
        self._read = read_engine or engine
        url = engine.url
        path = _sqlite_file(url)
        self._sqlite = _SqliteThread(path) if path is not None else None
        self._pg = _PgRotation(engine, pool or PoolSettings()) if (
            url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg"
        ) else None

    @property
    def writer(self) -> _SqliteThread | None:
        """The SQLite file's writer thread (None on other databases): the code store's
        redemptions run there too, in the same group commits as the rotations."""
        return self._sqlite

    @property
    def pg(self) -> _PgRotation | None:
        """The asyncpg pool of the PostgreSQL fast paths (None on other databases)."""
        return self._pg

    async def close(self) -> None:
        """Close the rotation's own connection (SQLite thread, asyncpg pool)."""
        if self._sqlite is not None:
            await self._sqlite.close()
        if self._pg is not None:
            await self._pg.close()

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
        client_id: str | None = None,
    ) -> RotateResult:
        """Spend ``old_hash`` and store ``new_hash`` atomically (see the interface).

        One transaction that reads the token, family and user while holding the family,
        decides with :func:`.rotation.decide_refusal` and writes. On a SQLite file it runs
        whole on the store's own ``sqlite3`` thread (one hand-off per rotation); on
        PostgreSQL on asyncpg as a read and one compare-and-set statement (see
        :class:`_PgRotation`)."""
        args = (old_hash, new_hash, now, grace, client, client_id, idle_ttl, access)
        if self._sqlite is not None:
            return await self._sqlite.run(_rotate_sqlite, *args)
        if self._pg is not None:
            return await self._pg.rotate(*args)
        # no fast path (a ``file:`` URI, another driver): the same steps through SQLAlchemy
        async with self._engine.begin() as conn:
            return await conn.run_sync(_rotate_sa, *args)

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

    async def access_token(self, jti: str) -> AccessTokenRecord | None:
        """The ``access_tokens`` row of ``jti``."""
        async with self._read.connect() as conn:
            row = (
                await conn.execute(sa.select(access_tokens).where(access_tokens.c.jti == jti))
            ).first()
        return None if row is None else AccessTokenRecord(row.jti, row.family_id, row.user_id,
                                                          row.exp)

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


# -- refresh rotation: the shells around rotation.decide_refusal ------------------------------
_Execute = Callable[[str, tuple[Any, ...]], Any]  # execute(sql with ?, params) -> cursor


def _rotated(row: rotation.RotationRow, now: float, idle: float) -> RotateResult:
    f = row.family
    family = FamilyRecord(
        f.id, f.user_id, f.created_at, now, idle, f.absolute_expires_at, f.revoked_at,
        f.revoke_reason, f.user_agent, f.client_ip, f.client_id,
    )
    return RotateResult(RotateOutcome.ROTATED, family, user=row.user)


def _rotate_sync(
    execute: _Execute,
    old_hash: str,
    new_hash: str,
    now: float,
    grace: float,
    client: str,
    client_id: str | None,
    idle_ttl: float,
    access: tuple[str, float] | None,
    *,
    lock: bool = False,
) -> RotateResult:
    """The rotation over an ``execute(sql, params)`` taking ``?`` placeholders, inside a
    transaction that holds SQLite's write lock (or, with ``lock``, after locking the family
    row: other databases)."""
    if lock:
        execute(rotation.LOCK_FAMILY, (old_hash,))
    values = execute(rotation.READ, (old_hash,)).fetchone()
    row = None if values is None else rotation.parse_row(values)
    refusal = rotation.decide_refusal(row, now, grace, client=client, client_id=client_id)
    if row is None:
        return RotateResult(RotateOutcome.NOT_FOUND)
    family = row.family
    if refusal is None:
        idle = rotation.idle_expiry(family, now, idle_ttl)
        execute(rotation.SPEND, (now, client, old_hash))
        execute(rotation.INSERT, (new_hash, family.id, now))
        execute(rotation.BUMP, (now, idle, family.id))
        if access is not None:
            execute(rotation.RECORD, (access[0], family.id, family.user_id, access[1]))
        return _rotated(row, now, idle)
    reason = rotation.REVOKE_REASON.get(refusal)
    if reason is None:
        return RotateResult(refusal, family)
    execute(rotation.REVOKE, (now, reason, family.id))
    rows = execute(rotation.OUTSTANDING, (family.id, now)).fetchall()
    return RotateResult(refusal, family, tuple(AccessTokenRecord(*r) for r in rows))


def _rotate_sqlite(conn: sqlite3.Connection, *args: Any) -> RotateResult:
    return _rotate_sync(conn.execute, *args)


def _rotate_sa(conn: sa.Connection, *args: Any) -> RotateResult:
    """Through SQLAlchemy (a SQLite ``file:`` URI, or a driver without a fast path)."""
    return _rotate_sync(sa_executor(conn), *args, lock=conn.dialect.name != "sqlite")


def _sqlite_file(url: sa.URL) -> str | None:
    """The path of a SQLite database file (None: not SQLite, in memory or a ``file:`` URI)."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return str(Path(database).expanduser())


_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]
_T = TypeVar("_T")


def _open_writer_lock(path: str) -> int | None:
    """The file beside the database that the writer threads of every process sharing it take
    turns on (``flock``); None where there is none (Windows, a read-only directory)."""
    if sys.platform == "win32":
        return None
    try:
        return os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return None


def _take_turn(lock: int) -> bool:
    """Wait for the writer lock (:func:`_open_writer_lock`); False if flock is refused."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
    except OSError:
        return False
    return True


class _SqliteThread:
    """One ``sqlite3`` connection owned by one thread (WAL, ``synchronous=NORMAL``): each job
    is a whole transaction, handed over once. Jobs that queue up while a transaction runs are
    committed together (group commit), each in its own savepoint, so one job's error rolls
    back only that job; every job is answered only after the commit.

    Several processes on one database (``jotkit serve --workers N``) each have such a thread.
    They take turns on an exclusive ``flock`` of ``<database>-writer.lock`` around each
    transaction: a waiting thread sleeps in the kernel and wakes as soon as the lock is free.
    Without it they met only at SQLite's write lock, whose busy handler polls with sleeps of up
    to 100 ms, and a thread that kept losing the race waited for seconds
    (benchmarks/results-workers.md)."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    async def run(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run ``fn(connection, *args)`` in a write transaction on the thread (a refresh
        rotation, a code redemption)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    thread = threading.Thread(
                        target=self._main, name="jotkit-sqlite-rotation", daemon=True
                    )
                    thread.start()
                    self._thread = thread
        self._jobs.put((fn, args, loop, future))
        return await future

    async def close(self) -> None:
        """Stop the thread after the queued jobs; close its connection."""
        thread = self._thread
        if thread is None:
            return
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, thread.join)
        self._thread = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self._path, timeout=30, isolation_level=None, check_same_thread=False,
            cached_statements=64,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def _main(self) -> None:
        conn: sqlite3.Connection | None = None
        lock = _open_writer_lock(self._path)
        try:
            while True:
                job = self._jobs.get()
                batch: list[_Job] = []
                stop = job is None
                if job is not None:
                    batch.append(job)
                while not stop:
                    try:
                        job = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        stop = True
                    else:
                        batch.append(job)
                if batch:
                    try:
                        if conn is None:
                            conn = self._connect()
                        if lock is not None and not _take_turn(lock):
                            os.close(lock)  # a filesystem without flock: SQLite's lock alone
                            lock = None
                        try:
                            answers = self._transaction(conn, batch)
                        finally:
                            if lock is not None:
                                fcntl.flock(lock, fcntl.LOCK_UN)
                    except BaseException as exc:  # the whole batch failed (BEGIN/COMMIT)
                        answers = [(False, exc)] * len(batch)
                    self._answer(batch, answers)
                if stop:
                    return
        finally:
            if conn is not None:
                conn.close()
            if lock is not None:
                os.close(lock)

    @staticmethod
    def _transaction(
        conn: sqlite3.Connection, batch: list[_Job]
    ) -> list[tuple[bool, Any]]:
        answers: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            if len(batch) == 1:
                fn, args, _loop, _future = batch[0]
                answers.append((True, fn(conn, *args)))
            else:
                for fn, args, _loop, _future in batch:
                    conn.execute("SAVEPOINT job")
                    try:
                        answers.append((True, fn(conn, *args)))
                    except Exception as exc:
                        conn.execute("ROLLBACK TO job")
                        answers.append((False, exc))
                    conn.execute("RELEASE job")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return answers

    @staticmethod
    def _answer(batch: list[_Job], answers: list[tuple[bool, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (_fn, _args, loop, future), (ok, value) in zip(batch, answers, strict=True):
            by_loop.setdefault(loop, []).append((future, ok, value))
        for loop, items in by_loop.items():
            # RuntimeError: the loop is closed, nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)


def _settle(items: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in items:
        if future.cancelled():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


#: Connect-time arguments of SQLAlchemy's asyncpg adapter that asyncpg itself does not take.
_ADAPTER_ONLY = (
    "prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn"
)


class _PgRotation:
    """PostgreSQL rotation on asyncpg directly: a small pool of its own (no pre-ping round
    trips per checkout), statements prepared and cached by asyncpg.

    A rotation is two round trips: the unlocked read, then
    :data:`.rotation.ROTATE_IF_UNCHANGED` (one atomic statement, no ``BEGIN``/``COMMIT``).
    A refusal that revokes the family, and a rotation that lost a race, are decided again in
    a transaction that holds the family lock."""

    _READ = rotation.numbered(rotation.READ)
    _LOCK = rotation.numbered(rotation.LOCK_FAMILY)
    _REVOKE = rotation.numbered(rotation.REVOKE)
    _OUTSTANDING = rotation.numbered(rotation.OUTSTANDING)

    def __init__(self, engine: AsyncEngine, sizing: PoolSettings) -> None:
        self._engine = engine
        self._sizing = sizing
        self._pool: asyncio.Future[Any] | None = None  # creating or created

    async def _connections(self) -> Any:
        task = self._pool
        if task is None:
            task = self._pool = asyncio.ensure_future(self._create())
        try:
            return await task
        except BaseException:
            if self._pool is task:
                self._pool = None  # try again on the next rotation
            raise

    async def _create(self) -> Any:
        import asyncpg

        args, kwargs = self._engine.dialect.create_connect_args(self._engine.url)
        if kwargs.get("prepared_statement_cache_size") == 0:  # e.g. for a pooler: none here
            kwargs["statement_cache_size"] = 0
        for name in _ADAPTER_ONLY:
            kwargs.pop(name, None)
        return await asyncpg.create_pool(
            *args, min_size=0, max_size=max(1, self._sizing.size), **kwargs
        )

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        """One statement on a pooled connection (a code redemption); its first row. A
        connection found dead (a database restart) is replaced once: a redemption whose
        answer was lost then reads as a replay and revokes its grant, never issues twice."""
        import asyncpg

        pool = await self._connections()
        for attempt in (1, 2):
            try:
                async with pool.acquire(timeout=self._sizing.timeout) as conn:
                    return await conn.fetchrow(sql, *args)
            except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError):
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        """Close the pool."""
        task, self._pool = self._pool, None
        if task is None:
            return
        try:
            pool = await task
        except Exception:  # never made: nothing to close
            return
        await pool.close()

    async def rotate(
        self,
        old_hash: str,
        new_hash: str,
        now: float,
        grace: float,
        client: str,
        client_id: str | None,
        idle_ttl: float,
        access: tuple[str, float] | None,
    ) -> RotateResult:
        """One rotation (see :meth:`SqlSessionStore.rotate_refresh`); a connection found dead
        before anything was sent that writes is replaced once."""
        import asyncpg

        pool = await self._connections()
        jti, exp = access if access is not None else (None, None)
        for attempt in (1, 2):
            wrote = False
            try:
                async with pool.acquire(timeout=self._sizing.timeout) as conn:
                    values = await conn.fetchrow(self._READ, old_hash)
                    row = None if values is None else rotation.parse_row(values)
                    refusal = rotation.decide_refusal(
                        row, now, grace, client=client, client_id=client_id
                    )
                    if row is None:
                        return RotateResult(RotateOutcome.NOT_FOUND)
                    if refusal is None:
                        idle = rotation.idle_expiry(row.family, now, idle_ttl)
                        wrote = True
                        spent = await conn.fetchval(
                            rotation.ROTATE_IF_UNCHANGED, now, client, old_hash, new_hash,
                            row.family.id, idle, jti, row.family.user_id, exp,
                        )
                        if spent == 1:
                            return _rotated(row, now, idle)
                    elif refusal not in rotation.REVOKE_REASON:
                        return RotateResult(refusal, row.family)
                    wrote = True
                    async with conn.transaction():
                        return await self._locked(
                            conn, old_hash, new_hash, now, grace, client, client_id, idle_ttl,
                            jti, exp,
                        )
            except (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError, OSError):
                if wrote or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _locked(
        self,
        conn: Any,
        old_hash: str,
        new_hash: str,
        now: float,
        grace: float,
        client: str,
        client_id: str | None,
        idle_ttl: float,
        jti: str | None,
        exp: float | None,
    ) -> RotateResult:
        """Decide and write while holding the family row (inside a transaction)."""
        await conn.fetchval(self._LOCK, old_hash)
        values = await conn.fetchrow(self._READ, old_hash)
        row = None if values is None else rotation.parse_row(values)
        refusal = rotation.decide_refusal(row, now, grace, client=client, client_id=client_id)
        if row is None:
            return RotateResult(RotateOutcome.NOT_FOUND)
        family = row.family
        if refusal is None:
            idle = rotation.idle_expiry(family, now, idle_ttl)
            spent = await conn.fetchval(
                rotation.ROTATE_IF_UNCHANGED, now, client, old_hash, new_hash, family.id, idle,
                jti, family.user_id, exp,
            )
            if spent != 1:  # cannot happen while the family row is locked
                raise RuntimeError("refresh rotation wrote nothing under the family lock")
            return _rotated(row, now, idle)
        reason = rotation.REVOKE_REASON.get(refusal)
        if reason is None:
            return RotateResult(refusal, family)
        await conn.execute(self._REVOKE, now, reason, family.id)
        rows = await conn.fetch(self._OUTSTANDING, family.id, now)
        return RotateResult(refusal, family, tuple(AccessTokenRecord(*r) for r in rows))


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

    async def add_first(self, record: KeyRecord, same_ring: Callable[[KeyRecord], bool]) -> bool:
        """Insert ``record`` unless the ring already has an unrevoked key. SQLite: the
        transaction starts with ``BEGIN IMMEDIATE``, so it holds the database's write lock from
        its first read; PostgreSQL: a transaction-scoped advisory lock serialises the check."""
        async with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7243002)"))
            rows = await conn.execute(
                sa.select(signing_keys).where(signing_keys.c.revoked_at.is_(None))
            )
            for r in rows:
                existing = KeyRecord(
                    r.kid, r.alg, r.private_jwk, r.created_at, r.activate_at, r.revoked_at
                )
                if same_ring(existing):
                    return False
            await conn.execute(self._insert(record))
            return True

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
        self._sessions = SqlSessionStore(self.engine, self.read_engine, pool)
        self.sessions = self._sessions
        self.revocations = SqlRevocationStore(self.engine, self.read_engine)
        self.rate_limits = SqlRateLimiter(self.engine, self.read_engine)
        self.keys = SqlKeyStore(self.engine, self.read_engine)
        self.sso = SsoStore(self.engine)
        self.clients = SqlClientStore(self.engine, self.read_engine)
        self.codes = SqlCodeStore(
            self.engine, self.read_engine, writer=self._sessions.writer, pg=self._sessions.pg
        )
        self.assertions = SqlAssertionStore(self.engine)
        self.dpop = SqlDpopStore(self.engine)  # RFC 9449 replay cache + refresh bindings
        self.par = SqlParStore(self.engine)  # RFC 9126
        self.devices = SqlDeviceCodeStore(self.engine)  # RFC 8628
        self.feed = SqlRevocationFeed(self.engine, self.read_engine)  # /oauth/revocations

    async def start(self) -> None:
        """Run the Alembic migrations up to head."""
        async with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # instances starting at once migrate in turn
                await conn.execute(sa.text("SELECT pg_advisory_xact_lock(7243001)"))
            await conn.run_sync(upgrade_connection)

    async def close(self) -> None:
        """Dispose of the engines' connections."""
        await self._sessions.close()
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
