"""The revocation feed's cursor over the journal (store/feed.py) on every backend: SQLite,
PostgreSQL, PostgreSQL + Redis. Real servers, no mocks."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

T0 = 1_800_000_000.0


async def test_feed_reads_live_entries_after_a_cursor_in_order(store: Any) -> None:
    rev, feed = store.revocations, store.feed
    await rev.deny([("j1", T0 + 600)], T0)
    await rev.set_user_marker("u1", T0, T0 + 960)
    await rev.deny([("short", T0 + 5), ("j2", T0 + 600)], T0)
    rows = await feed.read(0, T0 + 10)
    assert [(r.kind, r.value) for r in rows] == [("jti", "j1"), ("user", "u1"), ("jti", "j2")]
    assert rows[1].at == T0 and rows[1].exp == T0 + 960
    assert [r.seq for r in rows] == sorted(r.seq for r in rows)
    assert [r.value for r in await feed.read(rows[0].seq, T0 + 10)] == ["u1", "j2"]
    assert await feed.read(rows[-1].seq, T0 + 10) == []
    assert await feed.sequence_top() >= rows[-1].seq


async def test_feed_cursor_is_never_handed_out_again_after_a_purge(store: Any) -> None:
    """A reader at cursor N must see every later revocation: once the newest journal rows are
    purged, SQLite's plain INTEGER PRIMARY KEY would give the next row a seq <= N again and
    the reader would skip it (migration 0005 makes the key AUTOINCREMENT)."""
    rev, feed = store.revocations, store.feed
    await rev.deny([("a", T0 + 10)], T0)
    await rev.deny([("b", T0 + 10)], T0)
    cursor = (await feed.read(0, T0))[-1].seq
    top = await feed.sequence_top()
    assert await rev.purge(T0 + 20) >= 2  # every row expired, the newest one too
    await rev.deny([("c", T0 + 1000)], T0 + 20)
    assert [r.value for r in await feed.read(cursor, T0 + 20)] == ["c"]
    assert await feed.sequence_top() > top


async def test_high_water_changes_with_every_new_row(store: Any) -> None:
    feed = store.feed
    before = await feed.high_water()
    await store.revocations.deny([("x", T0 + 600)], T0)
    after = await feed.high_water()
    assert after != before and after[0] > before[0]
