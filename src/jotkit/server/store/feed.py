"""Reading the revocation journal by cursor, for the revocation feed (``/oauth/revocations``).

Every revocation the service makes, on every backend, is first written to the SQL
``revocations`` table (the Redis store journals there before it writes Redis), whose ``seq``
primary key grows with each row. That key is the feed's cursor: reading "what came after
``seq`` N" is one range scan of the primary-key index, on SQLite and PostgreSQL alike, and
no new table is needed.

Two properties make the cursor safe to hand to resource servers:

* **Rows are pruned only once they no longer matter.** ``purge`` drops a row when the token
  (``jti``) or every token a marker covers (``user``) has expired, and ``seq`` is never
  handed out twice (PostgreSQL's sequence; SQLite's ``AUTOINCREMENT``, migration 0005). A
  reader whose cursor predates pruned rows has therefore lost nothing it needs.
* **A cursor ahead of the journal is detected.** The highest ``seq`` never goes down; a
  cursor above it comes from another (replaced or restored) database, and the feed answers
  with a ``reset``: the reader drops its state and reads everything from the start.

PostgreSQL sequences can commit out of order (a transaction holding ``seq`` 7 may commit
after one holding 8 was read), so readers there re-read a window of :data:`LOOKBACK` values
behind their cursor, as the in-service cache does (``SqlRevocationStore.changes_since``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from .tables import revocations

__all__ = ["LOOKBACK", "FeedEntry", "SqlRevocationFeed"]

#: ``seq`` values behind a cursor re-read on databases that can commit them out of order.
LOOKBACK = 512


@dataclass(frozen=True, slots=True)
class FeedEntry:
    """One journal row: a deny-listed ``jti`` until ``exp``, or a user's revoked-before
    marker ``at`` (tokens of ``value`` issued before it are refused) relevant until ``exp``."""

    seq: int
    kind: Literal["jti", "user"]
    value: str
    at: float
    exp: float


class SqlRevocationFeed:
    """Cursor reads of the ``revocations`` journal (see the module docstring)."""

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self._engine = engine
        self._read = read_engine or engine

    @property
    def lookback(self) -> int:
        """How far behind a cursor readers re-read (0 where ``seq`` commits in order)."""
        return 0 if self._engine.dialect.name == "sqlite" else LOOKBACK

    async def high_water(self) -> tuple[int, int]:
        """``(highest seq, rows within the lookback window below it)``: a change of either
        means new rows (a late PostgreSQL commit changes only the count). Two index reads."""
        async with self._read.connect() as conn:
            top = (await conn.execute(sa.select(sa.func.max(revocations.c.seq)))).scalar()
            top_seq = int(top or 0)
            count = 0
            if self.lookback:
                count = int(
                    (
                        await conn.execute(
                            sa.select(sa.func.count()).where(
                                revocations.c.seq > top_seq - self.lookback
                            )
                        )
                    ).scalar()
                    or 0
                )
        return top_seq, count

    async def sequence_top(self) -> int:
        """The highest ``seq`` ever handed out (0 if none), deleted rows included: a cursor
        above it does not come from this journal."""
        if self._engine.dialect.name == "sqlite":
            query = sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'revocations'")
        else:
            query = sa.text(
                "SELECT pg_sequence_last_value(pg_get_serial_sequence('revocations', 'seq'))"
            )
        async with self._read.connect() as conn:
            top = (await conn.execute(query)).scalar()
        return int(top or 0)

    async def read(self, after: int, now: float, limit: int = 1000) -> list[FeedEntry]:
        """Live rows with ``seq > after`` in ``seq`` order, at most ``limit`` of them."""
        query = (
            sa.select(revocations)
            .where(revocations.c.seq > after, revocations.c.expires_at > now)
            .order_by(revocations.c.seq)
            .limit(limit)
        )
        async with self._read.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            FeedEntry(int(r.seq), "jti" if r.kind == "jti" else "user", r.value, r.at,
                      r.expires_at)
            for r in rows
        ]
