"""The SQL store contract on SQLite and (when available) PostgreSQL, the migrations and the
settings loader."""

from __future__ import annotations

import asyncio
import secrets
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jotkit.claims import MAX_TIMESPAN
from jotkit.server.settings import Settings, SettingsError
from jotkit.server.store.base import AccessTokenRecord, FamilyRecord, RotateOutcome, UserExists
from jotkit.server.store.sql import SqlStore
from jotkit.server.store.tables import metadata


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    admin = request.getfixturevalue("postgres_url")
    import asyncpg

    name = "jotkit_srv_" + secrets.token_hex(6)

    async def admin_sql(sql):
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin_sql(f'CREATE DATABASE "{name}"'))
    base = admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    yield f"{base}/{name}"
    asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_with_store(url, fn):
    async def main():
        store = SqlStore(url)
        try:
            await store.start()
            await store.start()  # migrations are idempotent
            return await fn(store)
        finally:
            await store.close()

    return asyncio.run(main())


async def _family(store, user_id="u1", now=1000.0, fid=None):
    fid = fid or secrets.token_hex(8)
    token = secrets.token_hex(32)
    fam = FamilyRecord(fid, user_id, now, now, now + 100, now + 1000, user_agent="ua")
    await store.sessions.create_family(fam, token)
    return fam, token


def test_users(store_url):
    async def body(store):
        u = await store.users.create("u1", "a@example.com", "h", ["user", "admin"], 1.0)
        assert (await store.users.get("u1")) == u
        assert (await store.users.get_by_email("a@example.com")).roles == ("user", "admin")
        with pytest.raises(UserExists):
            await store.users.create("u2", "a@example.com", "h", [], 2.0)
        await store.users.set_password_hash("u1", "h2")
        await store.users.set_disabled("u1", True)
        got = await store.users.get("u1")
        assert got.password_hash == "h2" and got.disabled
        assert [x.id for x in await store.users.list()] == ["u1"]
        assert await store.ping()

    run_with_store(store_url, body)


def test_rotation_semantics(store_url):
    async def body(store):
        await store.users.create("u1", "a@example.com", "h", [], 1.0)
        fam, t0 = await _family(store)
        r = await store.sessions.rotate_refresh(t0, "t1", 1001.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.ROTATED
        assert r.family.idle_expires_at == 1101.0 and r.family.last_used_at == 1001.0
        assert (await store.sessions.record_access_token(
            AccessTokenRecord("j1", fam.id, "u1", 2000.0)))
        # Same client, within grace: benign retry.
        r = await store.sessions.rotate_refresh(t0, "t2", 1003.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.RETRY
        # Unknown token.
        r = await store.sessions.rotate_refresh("nope", "t3", 1003.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.NOT_FOUND
        # Reuse after grace: family revoked, outstanding access tokens returned.
        r = await store.sessions.rotate_refresh(t0, "t4", 1010.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.REUSED
        assert [a.jti for a in r.outstanding] == ["j1"]
        r = await store.sessions.rotate_refresh("t1", "t5", 1011.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.REVOKED
        assert not await store.sessions.record_access_token(
            AccessTokenRecord("j2", fam.id, "u1", 2000.0))
        # Idle expiry.
        fam2, t = await _family(store, fid="f2", now=5000.0)
        r = await store.sessions.rotate_refresh(t, "t6", 5100.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.EXPIRED
        assert await store.sessions.list_families("u1", 5050.0) == [fam2]
        assert await store.sessions.list_families("u1", 5100.0) == []

    run_with_store(store_url, body)


def test_concurrent_rotation_exactly_one_wins(store_url):
    async def body(store):
        await store.users.create("u1", "a@example.com", "h", [], 1.0)
        _, t0 = await _family(store)

        async def attempt(i):
            return await store.sessions.rotate_refresh(
                t0, f"new-{i}", 1001.0, 5, client="c", idle_ttl=100
            )

        results = await asyncio.gather(*[attempt(i) for i in range(25)])
        outcomes = [r.outcome for r in results]
        assert outcomes.count(RotateOutcome.ROTATED) == 1
        assert outcomes.count(RotateOutcome.RETRY) == 24

    run_with_store(store_url, body)


def test_revocations_rate_limits_keys(store_url):
    async def body(store):
        rv = store.revocations
        await rv.deny([("a", 200.0), ("b", 50.0)], now=100.0)  # b already expired: dropped
        assert await rv.is_denied("a", 150.0) and not await rv.is_denied("b", 150.0)
        assert not await rv.is_denied("a", 250.0)
        await rv.set_user_marker("u1", 120.0, keep_until=1000.0)
        assert await rv.user_marker("u1", 130.0) == 120.0
        full = await rv.changes_since(0, 130.0)
        assert full.reset and full.denied == (("a", 200.0),) and full.markers == (("u1", 120.0),)
        await rv.deny([("c", 300.0)], now=130.0)
        delta = await rv.changes_since(full.cursor, 130.0)
        assert not delta.reset
        assert ("c", 300.0) in delta.denied  # new entries always; earlier ones may repeat
        assert set(delta.denied) <= {("a", 200.0), ("c", 300.0)}
        assert set(delta.markers) <= {("u1", 120.0)}
        assert await rv.purge(250.0) == 1

        rl = store.rate_limits
        assert (await rl.hit("k", 60, 1000.0))[0] == 1
        count, reset = await rl.hit("k", 60, 1010.0)
        assert count == 2 and reset == pytest.approx(50.0)
        assert (await rl.peek("k", 60, 1020.0))[0] == 2
        assert (await rl.hit("k", 60, 1061.0))[0] == 1  # new window
        await rl.reset("k")
        assert await rl.peek("k", 60, 1062.0) == (0, 0.0)

        from jotkit.server.keyring import new_key_record

        rec = new_key_record("ES256", 1.0, 1.0)
        await store.keys.add(rec)
        assert await store.keys.list() == [rec]
        await store.keys.delete(rec.kid)
        assert await store.keys.list() == []

    run_with_store(store_url, body)


def test_migrated_schema_matches_table_metadata(tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"

    async def body(store):
        async with store.engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )

    assert run_with_store(url, body) == []


def _memory_keys():
    import dataclasses

    from jotkit.server.store.base import KeyStore

    class MemoryKeys(KeyStore):
        def __init__(self):
            self.rows = []

        async def list(self):
            return sorted(self.rows, key=lambda r: (r.activate_at, r.kid))

        async def add(self, record):
            self.rows.append(record)

        async def add_first(self, record, same_ring):
            if any(r.revoked_at is None and same_ring(r) for r in self.rows):
                return False
            self.rows.append(record)
            return True

        async def delete(self, kid):
            self.rows = [r for r in self.rows if r.kid != kid]

        async def revoke(self, kid, now, replacement=None):
            found = [r for r in self.rows if r.kid == kid and r.revoked_at is None]
            if not found:
                return False
            self.rows = [dataclasses.replace(r, revoked_at=now) if r.kid == kid else r
                         for r in self.rows]
            if replacement is not None:
                self.rows.append(replacement)
            return True

    return MemoryKeys()


def test_key_ring_revoke_withdraws_the_key_at_once_and_replaces_the_signer():
    """Emergency withdrawal: the key leaves the JWKS at once (no retirement window), a
    withdrawn signer is replaced by a key that signs at once, and the other keys' timeline
    does not move (a retiring predecessor keeps its retirement time)."""
    from jotkit.server.keyring import KeyRing

    async def body():
        ring = KeyRing(_memory_keys(), issuer="i", audience="a", access_ttl=100, retire_margin=10)
        first = await ring.ensure_key("ES256", 1000.0)
        second = await ring.rotate("ES256", 1500.0, delay=0)  # first retires at 1610
        kids = lambda t: [k["kid"] for k in ring.jwks(t)["keys"]]  # noqa: E731
        assert kids(1520.0) == [first.kid, second.kid]
        done = await ring.revoke(second.kid, 1520.0)  # the signer: replaced at once
        third = done.replacement
        assert third is not None and third.activate_at == 1520.0
        assert kids(1520.0) == [first.kid, third.kid]
        assert ring.signing_key(1520.0).kid == third.kid
        assert ring.is_revoked(second.kid) and not ring.is_revoked(third.kid)
        assert kids(1609.0) == [first.kid, third.kid]  # first still retires at 1610
        assert kids(1610.0) == [third.kid]
        states = {s.kid: s.state for s in ring.statuses(1520.0)}
        assert states == {first.kid: "retiring", second.kid: "revoked", third.kid: "active"}
        # a retiring key is withdrawn without a replacement
        done = await ring.revoke(first.kid, 1530.0)
        assert done.replacement is None and kids(1530.0) == [third.kid]
        # a pending key that is withdrawn never signs, and the signer does not retire for it
        pending = await ring.rotate("ES256", 1540.0, delay=300)
        assert (await ring.revoke(pending.kid, 1550.0)).replacement is None
        assert ring.signing_key(2000.0).kid == third.kid
        assert kids(5000.0) == [third.kid]
        with pytest.raises(LookupError):
            await ring.revoke(second.kid, 1560.0)  # already revoked
        with pytest.raises(LookupError):
            await ring.revoke("no-such-kid", 1560.0)
        # the only usable key: a replacement is created in the same step
        only = await ring.revoke(third.kid, 1570.0, alg="EdDSA")
        assert only.replacement is not None and only.replacement.alg == "EdDSA"
        assert kids(1570.0) == [only.replacement.kid]

    asyncio.run(body())


def test_key_ring_timeline():
    from jotkit.server.keyring import KeyRing

    MemoryKeys = lambda: _memory_keys()  # noqa: E731

    async def body():
        ring = KeyRing(MemoryKeys(), issuer="i", audience="a", access_ttl=100, retire_margin=10)
        first = await ring.ensure_key("ES256", 1000.0)
        assert await ring.ensure_key("ES256", 1001.0) is None
        second = await ring.rotate("ES256", 1500.0, delay=50)
        states = {s.kid: s.state for s in ring.statuses(1520.0)}
        assert states == {first.kid: "active", second.kid: "pending"}
        assert ring.signing_key(1549.0).kid == first.kid
        assert ring.signing_key(1550.0).kid == second.kid
        kids = lambda t: [k["kid"] for k in ring.jwks(t)["keys"]]  # noqa: E731
        assert kids(1520.0) == [first.kid, second.kid]
        assert kids(1659.0) == [first.kid, second.kid]  # 1550 + 100 + 10 = 1660
        assert kids(1660.0) == [second.kid]
        assert {s.kid: s.state for s in ring.statuses(1660.0)}[first.kid] == "expired"

    asyncio.run(body())


def test_settings_from_env_and_toml(tmp_path: Path):
    toml = tmp_path / "jotkit.toml"
    toml.write_text('[server]\naccess_ttl = "5m"\ncookie_mode = true\nport = 9000\n'
                    'introspection_clients = { rs = "secret" }\n')
    s = Settings.from_env(
        {"JOTKIT_ACCESS_TTL": "10m", "JOTKIT_DATA_DIR": str(tmp_path / "d"),
         "JOTKIT_SIGNING_ALG": "EdDSA", "JOTKIT_REFRESH_IDLE_TTL": "1d"},
        toml_path=toml,
    )
    assert s.access_ttl == 600  # the environment wins over the file
    assert s.cookie_mode is True and s.port == 9000 and s.signing_alg == "EdDSA"
    assert s.refresh_idle_ttl == 86400
    assert s.introspection_clients == (("rs", "secret"),)
    assert s.effective_database_url.startswith("sqlite+aiosqlite:///")
    assert s.effective_database_url.endswith("/d/jotkit.db")
    assert s.effective_issuer == "http://127.0.0.1:9000"
    with pytest.raises(SettingsError, match="unknown setting"):
        toml.write_text("acces_ttl = 5\n")
        Settings.from_env({}, toml_path=toml)
    for env in ({"JOTKIT_SIGNING_ALG": "HS256"}, {"JOTKIT_PORT": "x"},
                {"JOTKIT_COOKIE_SAMESITE": "sometimes"}, {"JOTKIT_DEMO": "maybe"},
                {"JOTKIT_INTROSPECTION_CLIENTS": "nocolon"}):
        with pytest.raises(SettingsError):
            Settings.from_env(env)
    with pytest.raises(SettingsError):
        Settings(access_ttl=0)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["s", "m", "h", "d", "w", ""]))
def test_timespan_parsing(n, unit):
    factor = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "": 1}[unit]
    if n * factor > MAX_TIMESPAN:  # over 100 years: refused like in the core
        with pytest.raises(SettingsError):
            Settings.from_env({"JOTKIT_REUSE_GRACE": f"{n}{unit}"})
        return
    s = Settings.from_env({"JOTKIT_REUSE_GRACE": f"{n}{unit}"})
    assert s.reuse_grace == n * factor


def test_settings_are_frozen():
    s = Settings()
    with pytest.raises(AttributeError):
        s.port = 1  # type: ignore[misc]


def test_sqlite_files_are_private(tmp_path):
    import os
    import stat

    db = tmp_path / "new-dir" / "jotkit.db"
    run_with_store(f"sqlite+aiosqlite:///{db}", lambda store: store.ping())
    assert stat.S_IMODE(os.stat(db.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_migration_0002_keeps_the_keys_of_an_existing_database(tmp_path):
    """A database created before ``keys revoke`` (schema 0001) upgrades in place: its keys
    survive, unrevoked, and can then be revoked."""
    import sqlalchemy as sa

    from jotkit.server.keyring import new_key_record
    from jotkit.server.migrations import upgrade_connection
    from jotkit.server.store.sql import make_engine

    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    rec = new_key_record("ES256", 1.0, 1.0)

    async def make_old():
        engine = make_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(lambda sync: upgrade_connection(sync, "0001"))
                await conn.execute(sa.text(
                    "INSERT INTO signing_keys (kid, alg, private_jwk, created_at, activate_at) "
                    "VALUES (:kid, :alg, :jwk, 1.0, 1.0)"
                ), {"kid": rec.kid, "alg": rec.alg, "jwk": rec.private_jwk})
        finally:
            await engine.dispose()

    asyncio.run(make_old())

    async def body(store):
        assert await store.keys.list() == [rec]  # revoked_at is None
        assert await store.keys.revoke(rec.kid, 5.0) is True
        return [k.revoked_at for k in await store.keys.list()]

    assert run_with_store(url, body) == [5.0]



def test_rotation_through_sqlalchemy_has_the_same_outcomes(store_url):
    """A database without a driver fast path (a ``file:`` URI, another PostgreSQL driver)
    rotates through SQLAlchemy under the same rules: one decision function,
    :mod:`jotkit.server.store.rotation`, for every shell."""
    _rotation_outcomes(store_url, disable_fast_path=True)


def test_rotation_fast_paths_have_the_same_outcomes(store_url):
    _rotation_outcomes(store_url, disable_fast_path=False)


def _rotation_outcomes(url, *, disable_fast_path):
    async def body(store):
        if disable_fast_path:  # the SQLAlchemy shell, as for a database without a fast path
            store.sessions._pg = store.sessions._sqlite = None
        await store.users.create("u1", "a@example.com", "h", ["user"], 1.0)
        _, t0 = await _family(store)
        r = await store.sessions.rotate_refresh(
            t0, "t1", 1001.0, 5, client="c", idle_ttl=100, access=("j1", 1900.0)
        )
        assert r.outcome is RotateOutcome.ROTATED and r.user.email == "a@example.com"
        r = await store.sessions.rotate_refresh(t0, "t2", 1002.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.RETRY
        r = await store.sessions.rotate_refresh(t0, "t3", 1010.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.REUSED
        assert [a.jti for a in r.outstanding] == ["j1"]
        r = await store.sessions.rotate_refresh("t1", "t4", 1011.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.REVOKED
        _, t5 = await _family(store)
        r = await store.sessions.rotate_refresh(
            t5, "t6", 1001.0, 5, client="c", idle_ttl=100, client_id="app"
        )
        assert r.outcome is RotateOutcome.WRONG_CLIENT
        assert (await store.sessions.get_family(r.family.id)).revoke_reason == "wrong_client"
        _, t7 = await _family(store)
        await store.users.set_disabled("u1", True)
        r = await store.sessions.rotate_refresh(t7, "t8", 1001.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.USER_DISABLED
        r = await store.sessions.rotate_refresh("nope", "t9", 1001.0, 5, client="c", idle_ttl=100)
        assert r.outcome is RotateOutcome.NOT_FOUND

    run_with_store(url, body)


@pytest.mark.parametrize("fast", [True, False], ids=["fast-path", "sqlalchemy"])
def test_code_redemption_outcomes_are_the_same_on_every_shell(store_url, fast):
    """A code is redeemed by the writer thread (SQLite), one asyncpg statement (PostgreSQL)
    or SQLAlchemy (no fast path): one function, :func:`.redemption.redeem`, and one
    PostgreSQL statement; the same outcomes and rows on each."""
    from jotkit.server.store.base import CodeRecord, ConsumeOutcome

    def code(code_hash, expires_at=1060.0):
        return CodeRecord(code_hash, "app", "u1", "https://a/cb", "c" * 43, ("openid", "x"),
                          "n1", 990.0, "sso-1", ("https://api/",), 1000.0, expires_at)

    def family():
        return FamilyRecord(secrets.token_hex(8), "", 1001.0, 1001.0, 1101.0, 2001.0,
                            user_agent="ua", client_ip="127.0.0.1")

    async def body(store):
        if not fast:
            store.codes._writer = store.codes._pg = None
        await store.users.create("u1", "a@example.com", "h", ["user"], 1.0)
        for h in ("h1", "h2"):
            await store.codes.create(code(h))
        await store.codes.create(code("h3", expires_at=1000.5))
        fam = family()
        won = await store.codes.consume("h1", 1001.0, fam, "r" * 64, access=("j1", 1900.0))
        assert won.outcome is ConsumeOutcome.REDEEMED and won.code.redeemed_at == 1001.0
        assert won.code.family_id == fam.id and won.user_active is True
        assert won.code.scope == ("openid", "x") and won.code.resource == ("https://api/",)
        stored = await store.sessions.get_family(fam.id)
        assert stored.user_id == "u1" and stored.client_id == "app"
        assert stored.user_agent == "ua" and stored.idle_expires_at == 1101.0
        grant = await store.codes.grant(fam.id)
        assert grant.scope == ("openid", "x") and grant.sid == "sso-1" and grant.nonce == "n1"
        assert (await store.sessions.find_refresh("r" * 64))[1].id == fam.id
        assert await store.sessions.access_token("j1") == AccessTokenRecord("j1", fam.id, "u1",
                                                                           1900.0)
        again = await store.codes.consume("h1", 1002.0, family(), "s" * 64)
        assert again.outcome is ConsumeOutcome.REPLAYED and again.code.family_id == fam.id
        late = await store.codes.consume("h3", 1001.0, family(), "t" * 64)
        assert late.outcome is ConsumeOutcome.EXPIRED
        unknown = await store.codes.consume("nope", 1001.0, family(), "u" * 64)
        assert unknown.outcome is ConsumeOutcome.NOT_FOUND
        await store.users.set_disabled("u1", True)  # read with the code, in its transaction
        bare = await store.codes.consume("h2", 1001.0, family(), "v" * 64)  # no access token
        assert bare.outcome is ConsumeOutcome.REDEEMED and bare.user_active is False
        assert [f.client_id for f in await store.sessions.list_families("u1", 1001.0)] == [
            "app", "app"]

    run_with_store(store_url, body)


def _writer_thread(path: Path):
    """A SQLite database at ``path`` with one table ``t (x)``, and a writer thread on it."""
    import sqlite3

    from jotkit.server.store.sql import _SqliteThread

    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    return _SqliteThread(str(path))


def _insert(conn, x):
    """A writer-thread job: insert ``x`` into ``t``."""
    conn.execute("INSERT INTO t VALUES (?)", (x,))
    return x


def test_group_commit_rolls_back_only_the_failing_rotation(tmp_path):
    """Rotations queued together commit in one SQLite transaction, each in its own savepoint:
    one that fails leaves no row behind and the others are committed and answered."""
    import sqlite3

    path = tmp_path / "group.db"
    worker = _writer_thread(path)

    def insert(conn, x):
        _insert(conn, x)
        if x == 3:
            raise ValueError("boom")
        return x

    async def main():
        try:
            return await asyncio.gather(
                *(worker.run(insert, x) for x in range(12)), return_exceptions=True
            )
        finally:
            await worker.close()

    results = asyncio.run(main())
    assert isinstance(results[3], ValueError)
    assert [r for i, r in enumerate(results) if i != 3] == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]
    with sqlite3.connect(path) as conn:
        rows = [r[0] for r in conn.execute("SELECT x FROM t ORDER BY x")]
    assert rows == [0, 1, 2, 4, 5, 6, 7, 8, 9, 10, 11]


@pytest.mark.skipif(sys.platform == "win32", reason="flock: POSIX only")
def test_sqlite_writer_starvation_across_workers_is_prevented_by_taking_turns(tmp_path):
    """`jotkit serve --workers N` on SQLite: each process's writer thread waits for its turn on
    ``<database>-writer.lock`` before it asks for SQLite's write lock. Met only at SQLite's lock,
    a thread that kept losing polled with sleeps of up to 100 ms and waited for seconds (p99 of
    a refresh 1.2 s with two workers, benchmarks/results-workers.md)."""
    import fcntl
    import os
    import sqlite3

    path = tmp_path / "turns.db"
    worker = _writer_thread(path)
    other = os.open(f"{path}-writer.lock", os.O_RDWR | os.O_CREAT)  # another process's writer
    fcntl.flock(other, fcntl.LOCK_EX)

    async def main():
        try:
            job = asyncio.ensure_future(worker.run(_insert, 7))
            await asyncio.sleep(0.3)
            assert not job.done()  # waiting for its turn...
            probe = sqlite3.connect(path, timeout=0, isolation_level=None)
            probe.execute("BEGIN IMMEDIATE")  # ...without holding SQLite's write lock meanwhile
            probe.execute("ROLLBACK")
            probe.close()
            fcntl.flock(other, fcntl.LOCK_UN)  # the other writer's transaction ends
            return await asyncio.wait_for(job, 5)
        finally:
            await worker.close()
            os.close(other)

    assert asyncio.run(main()) == 7
    with sqlite3.connect(path) as conn:
        assert [r[0] for r in conn.execute("SELECT x FROM t")] == [7]


@pytest.mark.skipif(sys.platform == "win32", reason="flock: POSIX only")
def test_sqlite_writer_without_flock_support_still_commits(tmp_path, monkeypatch):
    """A filesystem that refuses ``flock`` (some network mounts) costs the turn-taking, not
    the refresh: the writer thread goes on with SQLite's own lock alone."""
    import fcntl

    def no_flock(fd, op):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    worker = _writer_thread(tmp_path / "nolock.db")

    async def main():
        try:
            return [await worker.run(_insert, 1), await worker.run(_insert, 2)]
        finally:
            await worker.close()

    assert asyncio.run(main()) == [1, 2]
