"""Single sign-on state in SQL: SSO sessions, the clients that took part in each, consents and
back-channel logout deliveries (OIDC Core §3.1.2.4, Back-Channel Logout 1.0 §2.5).

Dialect-neutral SQLAlchemy Core, so the same class serves SQLite and PostgreSQL; with Redis
configured the SQL database still holds this state (it is durable, and read once per
authorization request, not per API call).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .tables import (
    backchannel_deliveries,
    oauth_consents,
    sso_participants,
    sso_sessions,
)
from .tables import (
    oauth_grants as _grants,
)

__all__ = ["ConsentRecord", "DeliveryRecord", "SsoSessionRecord", "SsoStore"]



@dataclass(frozen=True, slots=True)
class SsoSessionRecord:
    """One browser's signed-in state at the provider (the cookie holds a secret whose SHA-256
    is ``token_hash``; ``sid`` is the public id that goes into ID and logout tokens)."""

    sid: str
    user_id: str
    auth_time: float
    created_at: float
    expires_at: float
    ended_at: float | None = None

    def active(self, now: float) -> bool:
        """Not ended and not expired."""
        return self.ended_at is None and now < self.expires_at


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    """Scopes a user granted to a client (remembered until revoked)."""

    user_id: str
    client_id: str
    scopes: tuple[str, ...]
    granted_at: float


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One back-channel logout token to POST to one client."""

    id: str
    client_id: str
    uri: str
    logout_token: str
    attempts: int
    next_attempt_at: float | None
    created_at: float
    delivered_at: float | None = None
    last_error: str | None = None


def _session(row: sa.Row[tuple[object, ...]]) -> SsoSessionRecord:
    m = row._mapping
    return SsoSessionRecord(
        sid=m["sid"],
        user_id=m["user_id"],
        auth_time=m["auth_time"],
        created_at=m["created_at"],
        expires_at=m["expires_at"],
        ended_at=m["ended_at"],
    )


def _delivery(row: sa.Row[tuple[object, ...]]) -> DeliveryRecord:
    m = row._mapping
    return DeliveryRecord(
        id=m["id"],
        client_id=m["client_id"],
        uri=m["uri"],
        logout_token=m["logout_token"],
        attempts=m["attempts"],
        next_attempt_at=m["next_attempt_at"],
        created_at=m["created_at"],
        delivered_at=m["delivered_at"],
        last_error=m["last_error"],
    )


class SsoStore:
    """SSO sessions, participants, consents and deliveries on one async engine."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    # -- sessions -----------------------------------------------------------------------------
    async def create_session(self, record: SsoSessionRecord, token_hash: str) -> None:
        """Insert a new SSO session."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.insert(sso_sessions).values(
                    sid=record.sid,
                    token_hash=token_hash,
                    user_id=record.user_id,
                    auth_time=record.auth_time,
                    created_at=record.created_at,
                    expires_at=record.expires_at,
                    ended_at=None,
                )
            )

    async def find_session(self, token_hash: str) -> SsoSessionRecord | None:
        """The session whose cookie hashes to ``token_hash`` (ended ones included)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(sso_sessions).where(sso_sessions.c.token_hash == token_hash)
                )
            ).first()
        return _session(row) if row is not None else None

    async def get_session(self, sid: str) -> SsoSessionRecord | None:
        """The session with public id ``sid``."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(sa.select(sso_sessions).where(sso_sessions.c.sid == sid))
            ).first()
        return _session(row) if row is not None else None

    async def reauthenticated(self, sid: str, now: float) -> None:
        """The user proved the password again in session ``sid`` (``prompt=login``,
        ``max_age``): move its ``auth_time`` to ``now``."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(sso_sessions).where(sso_sessions.c.sid == sid).values(auth_time=now)
            )

    async def end_session(self, sid: str, now: float) -> list[str]:
        """Mark the session ended; return the client ids that took part (empty when it was
        already ended: the caller then sends no second round of logout tokens)."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.update(sso_sessions)
                .where(sso_sessions.c.sid == sid, sso_sessions.c.ended_at.is_(None))
                .values(ended_at=now)
            )
            if result.rowcount != 1:
                return []
            rows = await conn.execute(
                sa.select(sso_participants.c.client_id)
                .where(sso_participants.c.sid == sid)
                .order_by(sso_participants.c.joined_at)
            )
            return [r.client_id for r in rows]

    async def add_participant(self, sid: str, client_id: str, now: float) -> None:
        """Record that ``client_id`` received a code in session ``sid`` (idempotent)."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    sa.insert(sso_participants).values(sid=sid, client_id=client_id, joined_at=now)
                )
        except IntegrityError:
            pass  # already a participant

    async def participants(self, sid: str) -> list[str]:
        """Client ids that took part in ``sid``."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(sso_participants.c.client_id).where(sso_participants.c.sid == sid)
            )
            return [r.client_id for r in rows]

    async def purge(self, now: float, keep: float = 86400.0) -> int:
        """Delete sessions dead for more than ``keep`` seconds, their participants, and
        deliveries settled for more than ``keep`` seconds."""
        dead = sa.select(sso_sessions.c.sid).where(
            sa.or_(
                sso_sessions.c.expires_at < now - keep,
                sso_sessions.c.ended_at < now - keep,
            )
        )
        async with self._engine.begin() as conn:
            await conn.execute(sa.delete(sso_participants).where(sso_participants.c.sid.in_(dead)))
            r1 = await conn.execute(sa.delete(sso_sessions).where(sso_sessions.c.sid.in_(dead)))
            r2 = await conn.execute(
                sa.delete(backchannel_deliveries).where(
                    backchannel_deliveries.c.next_attempt_at.is_(None),
                    backchannel_deliveries.c.created_at < now - keep,
                )
            )
        return int(r1.rowcount or 0) + int(r2.rowcount or 0)

    # -- links to the token side (``oauth_grants``, migration 0003_oauth) -----------------------
    async def families_of_session(self, sid: str) -> list[str]:
        """Refresh families (grants) issued in SSO session ``sid``."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(_grants.c.family_id).where(_grants.c.sid == sid)
            )
            return [r.family_id for r in rows]

    async def grants_of(self, user_id: str, client_id: str) -> list[str]:
        """Refresh families (grants) the client holds for the user."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(_grants.c.family_id).where(
                    _grants.c.user_id == user_id, _grants.c.client_id == client_id
                )
            )
            return [r.family_id for r in rows]

    # -- consents -----------------------------------------------------------------------------
    async def get_consent(self, user_id: str, client_id: str) -> ConsentRecord | None:
        """The user's remembered consent for ``client_id``."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(oauth_consents).where(
                        oauth_consents.c.user_id == user_id,
                        oauth_consents.c.client_id == client_id,
                    )
                )
            ).first()
        if row is None:
            return None
        return ConsentRecord(row.user_id, row.client_id, tuple(row.scopes.split()), row.granted_at)

    async def grant_consent(
        self, user_id: str, client_id: str, scopes: Sequence[str], now: float
    ) -> None:
        """Remember that the user granted ``scopes`` (merged with what was granted before)."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    sa.select(oauth_consents.c.scopes).where(
                        oauth_consents.c.user_id == user_id,
                        oauth_consents.c.client_id == client_id,
                    )
                )
            ).first()
            merged = " ".join(sorted(set(scopes) | set(row.scopes.split() if row else ())))
            if row is None:
                await conn.execute(
                    sa.insert(oauth_consents).values(
                        user_id=user_id, client_id=client_id, scopes=merged, granted_at=now
                    )
                )
            else:
                await conn.execute(
                    sa.update(oauth_consents)
                    .where(
                        oauth_consents.c.user_id == user_id,
                        oauth_consents.c.client_id == client_id,
                    )
                    .values(scopes=merged, granted_at=now)
                )

    async def list_consents(self, user_id: str) -> list[ConsentRecord]:
        """Every consent the user gave, oldest first."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(oauth_consents)
                .where(oauth_consents.c.user_id == user_id)
                .order_by(oauth_consents.c.granted_at)
            )
            return [
                ConsentRecord(r.user_id, r.client_id, tuple(r.scopes.split()), r.granted_at)
                for r in rows
            ]

    async def revoke_consent(self, user_id: str, client_id: str) -> bool:
        """Forget a consent; False when there was none."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.delete(oauth_consents).where(
                    oauth_consents.c.user_id == user_id, oauth_consents.c.client_id == client_id
                )
            )
            return bool(result.rowcount)

    # -- back-channel deliveries ----------------------------------------------------------------
    async def add_deliveries(self, records: Sequence[DeliveryRecord]) -> None:
        """Persist deliveries to make (so a restart does not lose them)."""
        if not records:
            return
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.insert(backchannel_deliveries),
                [
                    {
                        "id": r.id,
                        "client_id": r.client_id,
                        "uri": r.uri,
                        "logout_token": r.logout_token,
                        "attempts": r.attempts,
                        "next_attempt_at": r.next_attempt_at,
                        "created_at": r.created_at,
                        "delivered_at": None,
                        "last_error": None,
                    }
                    for r in records
                ],
            )

    async def due_deliveries(self, now: float, limit: int = 50) -> list[DeliveryRecord]:
        """Pending deliveries whose next attempt is due."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                sa.select(backchannel_deliveries)
                .where(backchannel_deliveries.c.next_attempt_at <= now)
                .order_by(backchannel_deliveries.c.next_attempt_at)
                .limit(limit)
            )
            return [_delivery(r) for r in rows]

    async def claim_delivery(self, delivery_id: str, attempts: int, lease_until: float) -> bool:
        """Take a due delivery for one attempt (compare-and-set on ``attempts``, so two
        instances never send the same attempt twice); it is due again at ``lease_until``
        if this instance dies before settling it."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                sa.update(backchannel_deliveries)
                .where(
                    backchannel_deliveries.c.id == delivery_id,
                    backchannel_deliveries.c.attempts == attempts,
                    backchannel_deliveries.c.next_attempt_at.is_not(None),
                )
                .values(attempts=attempts + 1, next_attempt_at=lease_until)
            )
            return bool(result.rowcount == 1)

    async def settle_delivery(
        self,
        delivery_id: str,
        *,
        delivered_at: float | None,
        next_attempt_at: float | None,
        error: str | None,
    ) -> None:
        """Record the outcome of an attempt: delivered, retry at ``next_attempt_at``, or
        given up (both None)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                sa.update(backchannel_deliveries)
                .where(backchannel_deliveries.c.id == delivery_id)
                .values(
                    delivered_at=delivered_at,
                    next_attempt_at=next_attempt_at,
                    last_error=error[:200] if error else None,
                )
            )

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """One delivery (tests and the CLI)."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(backchannel_deliveries).where(
                        backchannel_deliveries.c.id == delivery_id
                    )
                )
            ).first()
        return _delivery(row) if row is not None else None
