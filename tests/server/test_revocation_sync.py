"""The deny-list sync cursor never skips a revocation, even one committed out of order."""

from __future__ import annotations

import asyncio

import sqlalchemy as sa

from jotkit.server.store.sql import SqlStore
from jotkit.server.store.tables import revocations

from .test_store import store_url  # noqa: F401  (sqlite and postgres databases)


def test_late_commit_of_a_lower_seq_is_still_synced(store_url):  # noqa: F811
    async def main():
        store = SqlStore(store_url)
        await store.start()
        try:
            now = 1000.0
            first = await store.revocations.changes_since(0, now)
            late_conn = await store.engine.connect()
            late_tx = await late_conn.begin()
            await late_conn.execute(  # takes a seq first, commits last
                sa.insert(revocations).values(kind="jti", value="late", at=now, expires_at=now + 60)
            )
            if store.engine.dialect.name == "sqlite":
                await late_tx.commit()  # SQLite serialises writers: no interleaving to test
                await late_conn.close()  # and has a single writer connection
            await store.revocations.deny([("early", now + 60)], now)
            seen = await store.revocations.changes_since(first.cursor, now)
            assert "early" in {jti for jti, _ in seen.denied}
            if store.engine.dialect.name != "sqlite":
                await late_tx.commit()
                await late_conn.close()
            after = await store.revocations.changes_since(seen.cursor, now)
            synced = {jti for jti, _ in seen.denied} | {jti for jti, _ in after.denied}
            assert synced >= {"early", "late"}
        finally:
            await store.close()

    asyncio.run(main())
