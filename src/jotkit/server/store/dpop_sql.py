"""SQL part of the DPoP state (RFC 9449): ``dpop_proofs`` (replay cache, §11.1) and
``dpop_bindings`` (refresh families bound to a key, §5). Dialect-neutral like :mod:`.sql`;
several instances or ``--workers N`` sharing the database share both."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from .base import DpopStore
from .tables import dpop_bindings, dpop_proofs, refresh_families

__all__ = ["SqlDpopStore", "proof_hash"]


def proof_hash(jkt: str, jti: str) -> str:
    """The replay-cache key of a proof: SHA-256 of its key thumbprint and ``jti`` (hex), so a
    ``jti`` is unique per key and any ``jti`` length fits the column."""
    return hashlib.sha256(f"{jkt}\x00{jti}".encode("utf-8", "surrogatepass")).hexdigest()


class SqlDpopStore(DpopStore):
    """Proofs seen in ``dpop_proofs`` (a primary-key insert: a duplicate is a replay), and
    family bindings in ``dpop_bindings``."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def use_proof(self, jkt: str, jti: str, exp: float, now: float) -> bool:
        """Insert the proof's hash; False on a duplicate that has not expired."""
        key = proof_hash(jkt, jti)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    sa.delete(dpop_proofs).where(
                        dpop_proofs.c.proof_hash == key, dpop_proofs.c.expires_at <= now
                    )
                )
                await conn.execute(sa.insert(dpop_proofs).values(proof_hash=key, expires_at=exp))
        except IntegrityError:
            return False
        return True

    async def bind(self, family_id: str, jkt: str) -> None:
        """Insert the binding; an existing one is kept (a family's key never changes)."""
        try:
            async with self._engine.begin() as conn:
                await conn.execute(sa.insert(dpop_bindings).values(family_id=family_id, jkt=jkt))
        except IntegrityError:
            pass

    async def binding(self, family_id: str) -> str | None:
        """The bound thumbprint, or None."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    sa.select(dpop_bindings.c.jkt).where(dpop_bindings.c.family_id == family_id)
                )
            ).first()
        return None if row is None else str(row.jkt)

    async def purge(self, now: float) -> int:
        """Drop expired proofs and bindings whose family is gone."""
        async with self._engine.begin() as conn:
            n = await conn.execute(sa.delete(dpop_proofs).where(dpop_proofs.c.expires_at <= now))
            live = sa.select(refresh_families.c.id)
            b = await conn.execute(
                sa.delete(dpop_bindings).where(dpop_bindings.c.family_id.not_in(live))
            )
            return int(n.rowcount + b.rowcount)
