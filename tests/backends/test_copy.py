"""``jotkit db copy``: an SQLite deployment moves to PostgreSQL without losing a user, a
session, a revocation or a key, and keeps working there."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from jotkit.server.audit_log import AuditLog
from jotkit.server.clock import FrozenClock
from jotkit.server.errors import ServiceError
from jotkit.server.metrics import Metrics
from jotkit.server.sessions import AuthService, ClientInfo
from jotkit.server.settings import Settings
from jotkit.server.store.copy import CopyError, copy_database
from jotkit.server.store.sql import SqlStore
from jotkit.server.store.tables import metadata

from .util import PASSWORD, jotkit_bin

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

T0 = 1_800_000_000.0
CLIENT = ClientInfo("127.0.0.1", "tests")


def _service(url: str, clock: FrozenClock, tmp_path: Path) -> AuthService:
    settings = Settings(
        data_dir=tmp_path,
        issuer="http://jotkit.test",
        argon2_time_cost=1,
        argon2_memory_cost=1024,
        argon2_parallelism=1,
        argon2_insecure_test_costs=True,
    )
    metrics = Metrics()
    return AuthService(settings, SqlStore(url), clock, metrics, AuditLog(clock, metrics))


async def _dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    store = SqlStore(url)
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        async with store.engine.connect() as conn:
            for table in metadata.sorted_tables:
                pk = list(table.primary_key.columns)
                rows = await conn.execute(sa.select(table).order_by(*pk))
                out[table.name] = [tuple(r) for r in rows]
    finally:
        await store.close()
    return out


async def _populate(url: str, clock: FrozenClock, tmp_path: Path) -> dict[str, Any]:
    svc = _service(url, clock, tmp_path)
    await svc.start()
    try:
        await svc.add_user("alice@example.com", PASSWORD, roles=("user", "admin"))
        await svc.add_user("bob@example.com", PASSWORD)
        await svc.add_user("carol@example.com", PASSWORD)
        alice = await svc.login("alice@example.com", PASSWORD, CLIENT)
        clock.advance(5)
        alice2 = await svc.refresh(alice.refresh_token, CLIENT)  # one spent token in the family
        bob = await svc.login("bob@example.com", PASSWORD, CLIENT)
        bob_claims = await svc.authenticate(bob.access_token)
        await svc.logout(bob_claims)  # a deny-list entry and a revoked family
        await svc.disable_user("carol@example.com")  # a revoked-before marker
        with pytest.raises(ServiceError):
            await svc.login("alice@example.com", "wrong", CLIENT)  # a login counter
        await svc.keyring.rotate("ES256", clock.now(), 300)  # a second, pending key
        return {"alice": alice, "alice2": alice2, "bob": bob}
    finally:
        await svc.store.close()


async def test_copy_sqlite_to_postgres(tmp_path: Path, empty_pg_db: str) -> None:
    clock = FrozenClock(T0)
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    tokens = await _populate(sqlite_url, clock, tmp_path)

    report = await copy_database(sqlite_url, empty_pg_db)
    counts = dict(report.tables)
    assert counts["users"] == 3
    assert counts["signing_keys"] == 3  # two ES256 (one rotation) + the RS256 ID-token key
    assert counts["refresh_tokens"] == 3 and counts["revocations"] >= 2

    # every row of every table arrived unchanged
    assert await _dump(sqlite_url) == await _dump(empty_pg_db)

    # ... and the deployment keeps working on PostgreSQL
    clock.advance(10)
    svc = _service(empty_pg_db, clock, tmp_path)
    await svc.start()
    try:
        claims = await svc.authenticate(tokens["alice2"].access_token)  # old key still verifies
        assert claims["email"] == "alice@example.com"
        with pytest.raises(ServiceError) as exc:
            await svc.authenticate(tokens["bob"].access_token)
        assert exc.value.code == "revoked"
        rotated = await svc.refresh(tokens["alice2"].refresh_token, CLIENT)  # session survived
        assert (await svc.authenticate(rotated.access_token))["sub"] == claims["sub"]
        with pytest.raises(ServiceError):  # reuse detection survived too
            await svc.refresh(tokens["alice"].refresh_token, ClientInfo("10.0.0.9", "other"))
        await svc.add_user("dave@example.com", PASSWORD)  # sequences / constraints work
        await svc.disable_user("dave@example.com")
        assert len(await svc.store.users.list()) == 4
    finally:
        await svc.store.close()


async def test_copy_refuses_a_non_empty_target(tmp_path: Path, pg_db: str) -> None:
    clock = FrozenClock(T0)
    sqlite_url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    await _populate(sqlite_url, clock, tmp_path)
    await copy_database(sqlite_url, pg_db)
    with pytest.raises(CopyError, match="not empty"):
        await copy_database(sqlite_url, pg_db)
    with pytest.raises(CopyError, match="no jotkit schema"):
        await copy_database(f"sqlite+aiosqlite:///{tmp_path / 'none.db'}", pg_db)


def test_db_upgrade_and_copy_cli(tmp_path: Path, postgres_url: str, empty_pg_db: str) -> None:
    """The commands a user runs: ``jotkit db upgrade`` on PostgreSQL, ``jotkit db copy``."""
    import asyncio

    clock = FrozenClock(T0)
    sqlite_path = tmp_path / "old.db"
    asyncio.run(_populate(f"sqlite+aiosqlite:///{sqlite_path}", clock, tmp_path))
    plain = empty_pg_db.replace("postgresql+asyncpg://", "postgresql://")
    env = {"PATH": "/usr/bin:/bin", "JOTKIT_DATABASE_URL": plain,
           "JOTKIT_DATA_DIR": str(tmp_path)}
    up = subprocess.run([jotkit_bin(), "db", "upgrade"], env=env, capture_output=True,
                        text=True, timeout=60)
    assert up.returncode == 0, up.stderr
    # the copy itself through the same Typer app, in-process (faster than another process)
    from typer.testing import CliRunner

    from jotkit.cli import build_app

    args = ["db", "copy", "--from", f"sqlite:///{sqlite_path}", "--to", plain]
    done = CliRunner().invoke(build_app(), args)
    assert done.exit_code == 0, done.output
    assert "verified" in done.output and "users" in done.output
    assert asyncio.run(_dump(f"sqlite+aiosqlite:///{sqlite_path}")) == asyncio.run(
        _dump(empty_pg_db)
    )
    again = CliRunner().invoke(build_app(), args)
    assert again.exit_code == 1 and "not empty" in again.output


async def test_postgres_schema_matches_metadata(pg_db: str) -> None:
    """The Alembic migrations create on PostgreSQL exactly the tables the code declares."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    store = SqlStore(pg_db)
    try:
        async with store.engine.connect() as conn:
            diffs = await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
            revision = await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await store.close()
    assert diffs == []
    assert revision is not None
