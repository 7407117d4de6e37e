"""SQL stores of pushed authorization requests (RFC 9126) and device codes (RFC 8628).
Dialect-neutral like :mod:`.oauth_sql`, and SQL with Redis too: each single-use rule is one
conditional ``UPDATE`` in the shared database, so of concurrent requests on any instance
exactly one changes the row.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .base import (
    DeviceCodeRecord,
    DeviceCodeStore,
    FamilyRecord,
    GrantRecord,
    ParRecord,
    ParStore,
    PollOutcome,
    PollResult,
)
from .redemption import open_grant, sa_executor
from .tables import oauth_device_codes, oauth_par_requests

__all__ = ["SLOW_DOWN_STEP", "SqlDeviceCodeStore", "SqlParStore"]

SLOW_DOWN_STEP = 5.0  # RFC 8628 §3.5: "the interval MUST be increased by 5 seconds"
_KEEP = 86400.0  # spent rows stay a day, so a replay is told apart from an unknown value


class SqlParStore(ParStore):
    """Pushed requests in ``oauth_par_requests``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, record: ParRecord) -> None:
        """Insert a pushed request."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.insert(oauth_par_requests).values(
                    uri_hash=record.uri_hash,
                    client_id=record.client_id,
                    params=json.dumps([list(p) for p in record.params]),
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    used_at=None,
                )
            )

    async def consume(self, uri_hash: str, client_id: str, now: float) -> ParRecord | None:
        """Mark the request used with one conditional ``UPDATE``; read it back on a win."""
        t = oauth_par_requests
        spend = (
            sa.update(t)
            .where(
                t.c.uri_hash == uri_hash,
                t.c.client_id == client_id,
                t.c.used_at.is_(None),
                t.c.expires_at > now,
            )
            .values(used_at=now)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(spend)).rowcount != 1:
                return None
            row = (await conn.execute(sa.select(t).where(t.c.uri_hash == uri_hash))).one()
        return ParRecord(
            uri_hash=row.uri_hash,
            client_id=row.client_id,
            params=tuple((str(k), str(v)) for k, v in json.loads(row.params)),
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    async def purge(self, now: float) -> int:
        """Delete requests expired for a day."""
        async with self._engine.begin() as conn:
            t = oauth_par_requests
            res = await conn.execute(sa.delete(t).where(t.c.expires_at < now - _KEEP))
            return int(res.rowcount)


def _device(row: Any) -> DeviceCodeRecord:
    return DeviceCodeRecord(
        code_hash=row.code_hash,
        user_code=row.user_code,
        client_id=row.client_id,
        scope=tuple(json.loads(row.scope)),
        resource=tuple(json.loads(row.resource)),
        created_at=row.created_at,
        expires_at=row.expires_at,
        interval=row.interval,
        last_polled_at=row.last_polled_at,
        status=row.status,
        user_id=row.user_id,
        sid=row.sid,
        auth_time=row.auth_time,
        decided_at=row.decided_at,
        redeemed_at=row.redeemed_at,
        family_id=row.family_id,
    )


class SqlDeviceCodeStore(DeviceCodeStore):
    """Device codes in ``oauth_device_codes``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, record: DeviceCodeRecord) -> bool:
        """Insert a pending code; False when the user code is taken."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    sa.insert(oauth_device_codes).values(
                        code_hash=record.code_hash,
                        user_code=record.user_code,
                        client_id=record.client_id,
                        scope=json.dumps(list(record.scope)),
                        resource=json.dumps(list(record.resource)),
                        created_at=record.created_at,
                        expires_at=record.expires_at,
                        interval=record.interval,
                        last_polled_at=None,
                        status="pending",
                    )
                )
        except IntegrityError:
            return False
        return True

    async def pending(self, user_code: str, now: float) -> DeviceCodeRecord | None:
        """The pending, unexpired code with this user code."""
        t = oauth_device_codes
        query = sa.select(t).where(
            t.c.user_code == user_code, t.c.status == "pending", t.c.expires_at > now
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _device(row)

    async def decide(
        self, user_code: str, now: float, *, approve: bool, user_id: str, sid: str,
        auth_time: float,
    ) -> bool:
        """One conditional ``UPDATE`` from ``pending`` to ``approved`` / ``denied``."""
        t = oauth_device_codes
        change = (
            sa.update(t)
            .where(t.c.user_code == user_code, t.c.status == "pending", t.c.expires_at > now)
            .values(
                status="approved" if approve else "denied",
                user_id=user_id,
                sid=sid,
                auth_time=auth_time,
                decided_at=now,
            )
        )
        async with self._engine.begin() as conn:
            return bool((await conn.execute(change)).rowcount == 1)

    async def poll(self, code_hash: str, client_id: str, now: float) -> PollResult:
        """Take the poll slot with one conditional ``UPDATE`` (``last_polled_at`` at least
        ``interval`` ago); a caller that does not get it is slowed down (RFC 8628 §3.5)."""
        t = oauth_device_codes
        mine = sa.and_(t.c.code_hash == code_hash, t.c.client_id == client_id)
        live = sa.and_(mine, t.c.expires_at > now, t.c.redeemed_at.is_(None))
        slot = (
            sa.update(t)
            .where(live, sa.or_(t.c.last_polled_at.is_(None),
                                t.c.last_polled_at + t.c.interval <= now))
            .values(last_polled_at=now)
        )
        slow = (
            sa.update(t)
            .where(live)
            .values(interval=t.c.interval + SLOW_DOWN_STEP, last_polled_at=now)
        )
        async with self._engine.begin() as conn:
            won = (await conn.execute(slot)).rowcount == 1
            row = (await conn.execute(sa.select(t).where(mine))).first()
            if row is None:
                return PollResult(PollOutcome.NOT_FOUND)
            device = _device(row)
            if device.redeemed_at is not None:
                return PollResult(PollOutcome.REDEEMED, device)
            if device.expires_at <= now:
                return PollResult(PollOutcome.EXPIRED, device)
            if not won:
                await conn.execute(slow)
                slowed = replace(device, interval=device.interval + SLOW_DOWN_STEP,
                                 last_polled_at=now)
                return PollResult(PollOutcome.SLOW_DOWN, slowed)
        outcome = {
            "approved": PollOutcome.APPROVED,
            "denied": PollOutcome.DENIED,
        }.get(device.status, PollOutcome.PENDING)
        return PollResult(outcome, device)

    async def redeem(
        self,
        code_hash: str,
        now: float,
        family: FamilyRecord,
        refresh_hash: str,
        access: tuple[str, float] | None = None,
    ) -> DeviceCodeRecord | None:
        """Spend an approved code and open its grant in one transaction."""
        t = oauth_device_codes
        spend = (
            sa.update(t)
            .where(
                t.c.code_hash == code_hash,
                t.c.status == "approved",
                t.c.redeemed_at.is_(None),
                t.c.expires_at > now,
            )
            .values(redeemed_at=now, family_id=family.id)
        )
        async with self._engine.begin() as conn:
            if (await conn.execute(spend)).rowcount != 1:
                return None
            row = (await conn.execute(sa.select(t).where(t.c.code_hash == code_hash))).one()
            device = _device(row)
            assert device.user_id is not None
            grant = GrantRecord(  # the device's own session (``sid``): not the browser's
                family_id=family.id, client_id=device.client_id, user_id=device.user_id,
                scope=device.scope, resource=device.resource, sid=family.id,
                auth_time=device.auth_time or device.decided_at or now, nonce=None,
            )
            await conn.run_sync(lambda sync: open_grant(
                sa_executor(sync), family, refresh_hash, now, access, grant))
        return device

    async def purge(self, now: float) -> int:
        """Delete codes expired for a day."""
        async with self._engine.begin() as conn:
            t = oauth_device_codes
            res = await conn.execute(sa.delete(t).where(t.c.expires_at < now - _KEEP))
            return int(res.rowcount)
