"""The signing-key ring: persisted keys, time-based activation and retirement.

Each key has an ``activate_at`` time. At time *t* the signing key is the key with the latest
``activate_at <= t``. A rotated-in key is published in the JWKS from the moment it is added
(``keys rotate`` activates it ``key_publish_delay`` seconds later, so relying parties that cache
the JWKS see it before it signs). A key stays published until every token it signed has
expired: its successor's ``activate_at + access_ttl + key_retire_margin``. The whole state is a
pure function of the stored rows and the time, so several instances agree without messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import jotkit

from .settings import SIGNING_ALGORITHMS
from .store.base import KeyRecord, KeyStore

__all__ = ["KeyRing", "KeyStatus", "new_key_record"]


def new_key_record(alg: str, now: float, activate_at: float) -> KeyRecord:
    """Generate a private key for ``alg``; its ``kid`` is the RFC 7638 thumbprint.

    Only asymmetric algorithms: the public half is published in the JWKS."""
    if alg not in SIGNING_ALGORITHMS:
        raise ValueError(f"{alg} is not an asymmetric signing algorithm")
    key = jotkit.Key.generate(alg)
    key = key.with_kid(key.thumbprint())
    jwk = key.to_jwk(private=True)
    return KeyRecord(
        kid=str(key.kid),
        alg=alg,
        private_jwk=json.dumps(jwk, separators=(",", ":")),
        created_at=now,
        activate_at=activate_at,
    )


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """A key's place in the ring at some time (for ``jotkit keys list``)."""

    kid: str
    alg: str
    state: str  # pending | active | retiring | expired
    activate_at: float
    published_until: float | None


class _Snapshot:
    """The keys published at a time, with a prepared verifier; valid until ``valid_until``."""

    __slots__ = ("jwks", "kids", "signer", "valid_until", "verifier")

    def __init__(
        self,
        signer: jotkit.Key,
        published: list[jotkit.Key],
        valid_until: float,
        issuer: str,
        audience: str,
    ) -> None:
        self.signer = signer
        self.kids = frozenset(str(k.kid) for k in published)
        keyset = jotkit.KeySet([k.public() for k in published])
        self.jwks = keyset.to_jwks()
        algorithms = sorted({k.alg for k in published})
        self.verifier = jotkit.Verifier(
            keyset,
            algorithms=algorithms,
            issuer=issuer,
            audience=audience,
            typ="at+jwt",
            require=("exp", "iat", "jti", "sub"),
        )
        self.valid_until = valid_until


class KeyRing:
    """Loads keys from a :class:`KeyStore` and answers "which key signs / which are published"."""

    def __init__(
        self,
        store: KeyStore,
        *,
        issuer: str,
        audience: str,
        access_ttl: float,
        retire_margin: float,
    ) -> None:
        self._store = store
        self._issuer = issuer
        self._audience = audience
        self._access_ttl = access_ttl
        self._margin = retire_margin
        self._records: list[KeyRecord] = []
        self._keys: dict[str, jotkit.Key] = {}
        self._snapshot: _Snapshot | None = None

    # -- loading and changing -------------------------------------------------------------
    async def load(self) -> bool:
        """Re-read the ring from the store; return True when it changed."""
        records = await self._store.list()
        if [r.kid for r in records] == [r.kid for r in self._records]:
            return False
        keys = dict(self._keys)
        for rec in records:
            if rec.kid not in keys:
                keys[rec.kid] = jotkit.Key.from_jwk(rec.private_jwk, alg=rec.alg)
        self._records = records
        self._keys = {r.kid: keys[r.kid] for r in records}
        self._snapshot = None
        return True

    async def ensure_key(self, alg: str, now: float) -> KeyRecord | None:
        """Create the first key (active at once) when the ring is empty."""
        await self.load()
        if self._records:
            return None
        record = new_key_record(alg, now, now)
        await self._store.add(record)
        await self.load()
        return record

    async def rotate(self, alg: str, now: float, delay: float) -> KeyRecord:
        """Add a key that is published now and starts signing at ``now + delay``."""
        record = new_key_record(alg, now, now + delay)
        await self._store.add(record)
        await self.load()
        return record

    # -- queries --------------------------------------------------------------------------
    def _retire_at(self, index: int) -> float | None:
        """When key ``index`` leaves the JWKS (None: it has no successor yet)."""
        if index + 1 >= len(self._records):
            return None
        return self._records[index + 1].activate_at + self._access_ttl + self._margin

    def statuses(self, now: float) -> list[KeyStatus]:
        """Every stored key with its state at ``now``."""
        out = []
        signer = self._signer_index(now)
        for i, rec in enumerate(self._records):
            retire = self._retire_at(i)
            if rec.activate_at > now:
                state = "pending"
            elif i == signer:
                state = "active"
            elif retire is not None and now < retire:
                state = "retiring"
            else:
                state = "expired"
            out.append(KeyStatus(rec.kid, rec.alg, state, rec.activate_at, retire))
        return out

    def _signer_index(self, now: float) -> int:
        index = 0
        for i, rec in enumerate(self._records):
            if rec.activate_at <= now:
                index = i
        return index

    def snapshot(self, now: float) -> _Snapshot:
        """The signer, JWKS and verifier at ``now`` (cached until the next transition)."""
        snap = self._snapshot
        if snap is not None and now < snap.valid_until:
            return snap
        if not self._records:
            raise RuntimeError("the key ring is empty; call ensure_key() first")
        signer = self._signer_index(now)
        published: list[jotkit.Key] = []
        transitions: list[float] = []
        for i, rec in enumerate(self._records):
            retire = self._retire_at(i)
            if rec.activate_at > now:
                transitions.append(rec.activate_at)
            if retire is not None and retire <= now and i != signer:
                continue
            if retire is not None:
                transitions.append(retire)
            published.append(self._keys[rec.kid])
        valid_until = min((t for t in transitions if t > now), default=float("inf"))
        snap = _Snapshot(
            self._keys[self._records[signer].kid],
            published,
            valid_until,
            self._issuer,
            self._audience,
        )
        self._snapshot = snap
        return snap

    def signing_key(self, now: float) -> jotkit.Key:
        """The key that signs at ``now``."""
        return self.snapshot(now).signer

    def jwks(self, now: float) -> dict[str, object]:
        """The public JWK Set published at ``now`` (RFC 7517 §5)."""
        return self.snapshot(now).jwks

    def algorithms(self, now: float) -> Sequence[str]:
        """Algorithms of the published keys."""
        return sorted({self._keys[k].alg for k in self.snapshot(now).kids})
