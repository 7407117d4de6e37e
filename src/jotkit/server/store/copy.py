"""``jotkit db copy``: move a deployment from one database to another (SQLite -> PostgreSQL).

Every table of the schema is copied row for row (users, refresh families and tokens, issued
access tokens, the revocation journal, login counters and the signing-key ring) inside one
transaction on the target, which must be empty. Afterwards the row counts and the primary keys
of both sides are compared; any difference aborts with an error. Stop the service (or at least
every writer) while copying.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncConnection

from ..migrations import alembic_config, upgrade_connection
from .factory import normalize_database_url
from .tables import metadata

__all__ = ["CopyError", "CopyReport", "copy_database"]


class CopyError(RuntimeError):
    """The copy cannot start or did not verify; nothing was committed on the target."""


@dataclass(frozen=True, slots=True)
class CopyReport:
    """Rows copied per table (in copy order)."""

    tables: tuple[tuple[str, int], ...]

    @property
    def total(self) -> int:
        """All rows copied."""
        return sum(n for _name, n in self.tables)


def _head() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _revision(sync_conn: Any) -> str | None:
    rev: str | None = MigrationContext.configure(sync_conn).get_current_revision()
    return rev


async def _digest(conn: AsyncConnection, table: sa.Table) -> tuple[int, str]:
    """Row count and a hash of the ordered primary keys of ``table``."""
    pk = list(table.primary_key.columns)
    digest = hashlib.sha256()
    count = 0
    result = await conn.stream(sa.select(*pk).order_by(*pk))
    async for row in result:
        digest.update(repr(tuple(row)).encode())
        count += 1
    return count, digest.hexdigest()


async def copy_database(
    source_url: str,
    target_url: str,
    *,
    batch_size: int = 1000,
    progress: Callable[[str, int], None] | None = None,
) -> CopyReport:
    """Copy every jotkit table from ``source_url`` to ``target_url``.

    The source must be at the latest schema revision (``jotkit db upgrade`` first); the target
    is migrated to it and must hold no rows. Raises :class:`CopyError`.
    """
    from .sql import make_engine

    src_url = normalize_database_url(source_url)
    dst_url = normalize_database_url(target_url)
    if src_url == dst_url:
        raise CopyError("source and target are the same database")
    src = make_engine(src_url)
    dst = make_engine(dst_url)
    head = _head()
    copied: list[tuple[str, int]] = []
    try:
        async with src.connect() as sconn:
            rev = await sconn.run_sync(_revision)
            if rev is None:
                raise CopyError("the source has no jotkit schema (wrong URL?)")
            if rev != head:
                raise CopyError(
                    f"the source schema is at revision {rev}, not {head}: "
                    "run `jotkit db upgrade` on it first"
                )
            async with dst.begin() as dconn:
                if dconn.dialect.name == "postgresql":
                    await dconn.execute(sa.text("SELECT pg_advisory_xact_lock(7243001)"))
                await dconn.run_sync(upgrade_connection)
            async with dst.begin() as dconn:
                for table in metadata.sorted_tables:
                    count = sa.select(sa.func.count()).select_from(table)
                    n = (await dconn.execute(count)).scalar()
                    if n:
                        raise CopyError(
                            f"the target is not empty ({table.name} has {n} rows); "
                            "copy into a fresh database"
                        )
                for table in metadata.sorted_tables:
                    pk = list(table.primary_key.columns)
                    total = 0
                    result = await sconn.stream(sa.select(table).order_by(*pk))
                    async for rows in result.partitions(batch_size):
                        await dconn.execute(sa.insert(table), [dict(r._mapping) for r in rows])
                        total += len(rows)
                    copied.append((table.name, total))
                    if progress is not None:
                        progress(table.name, total)
                if dconn.dialect.name == "postgresql":
                    # the copied sequence numbers were explicit: move each sequence past them
                    for table in metadata.sorted_tables:
                        col = table.autoincrement_column
                        if col is None:
                            continue
                        top = (await dconn.execute(sa.select(sa.func.max(col)))).scalar()
                        await dconn.execute(
                            sa.text("SELECT setval(pg_get_serial_sequence(:t, :c), :v, false)"),
                            {"t": table.name, "c": col.name, "v": int(top or 0) + 1},
                        )
                for table in metadata.sorted_tables:
                    if await _digest(sconn, table) != await _digest(dconn, table):
                        raise CopyError(f"verification failed for table {table.name}")
    finally:
        await src.dispose()
        await dst.dispose()
    return CopyReport(tuple(copied))
