"""The signing-key ring: persisted keys, time-based activation and retirement.

Each key has an ``activate_at`` time. At time *t* the signing key is the key with the latest
``activate_at <= t``. A rotated-in key is published in the JWKS from the moment it is added
(``keys rotate`` activates it ``key_publish_delay`` seconds later, so relying parties that cache
the JWKS see it before it signs). A key stays published until every token it signed has
expired: its successor's ``activate_at + access_ttl + key_retire_margin``. The whole state is a
pure function of the stored rows and the time, so several instances agree without messages.

An emergency withdrawal (:meth:`KeyRing.revoke`, ``jotkit keys revoke``) marks a key revoked:
it leaves the JWKS and the verifier at once (each instance when it reloads the ring: at once
over the Redis bus, else at its next sync), so every token it signed is refused. Withdrawing
the key that signs now also adds a replacement that signs at once, in the same transaction,
so the ring never lacks a signer. A revoked key keeps its row: it still marks when its
predecessor stopped signing (that key's retirement time does not move).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jotkit

from .settings import SIGNING_ALGORITHMS
from .store.base import KeyRecord, KeyStore

__all__ = ["KeyRevocation", "KeyRing", "KeyStatus", "new_key_record"]


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
    state: str  # pending | active | retiring | expired | revoked
    activate_at: float
    published_until: float | None


@dataclass(frozen=True, slots=True)
class KeyRevocation:
    """What :meth:`KeyRing.revoke` did: the withdrawn kid and the replacement, if one was
    needed because the withdrawn key was signing."""

    kid: str
    replacement: KeyRecord | None


class _Snapshot:
    """The keys published at a time, with a prepared verifier; valid until ``valid_until``."""

    __slots__ = ("_by_audience", "_keyset", "jwks", "kids", "signer", "valid_until", "verifier")

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
        self._keyset = keyset
        self.jwks = keyset.to_jwks()
        self.verifier = self._verifier(issuer, audience)
        self._by_audience: dict[object, jotkit.Verifier] = {audience: self.verifier}
        self.valid_until = valid_until

    def _verifier(self, issuer: str, audience: str | tuple[str, ...]) -> jotkit.Verifier:
        return jotkit.Verifier(
            self._keyset,
            algorithms=sorted({k.alg for k in self._keyset}),
            issuer=issuer,
            audience=audience,
            typ="at+jwt",
            require=("exp", "iat", "jti", "sub"),
        )

    def verifier_for(self, issuer: str, aud: Any) -> jotkit.Verifier | None:
        """A verifier of access tokens meant for ``aud`` (a token's own, unverified ``aud``:
        a string or a list of strings), for the authorization server's own endpoints
        (introspection, revocation, userinfo) that accept tokens for every resource it
        issues to (RFC 7662 §2.2, RFC 8707). None when ``aud`` is not of that shape."""
        if isinstance(aud, list) and aud and all(isinstance(a, str) for a in aud):
            key: object = tuple(aud)
        elif isinstance(aud, str):
            key = aud
        else:
            return None
        verifier = self._by_audience.get(key)
        if verifier is None:
            verifier = self._verifier(issuer, key)  # type: ignore[arg-type]
            if len(self._by_audience) < 256:
                self._by_audience[key] = verifier
        return verifier


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
        select: Callable[[KeyRecord], bool] | None = None,
    ) -> None:
        self._store = store
        self._select = select  # this ring's keys among the stored ones (by algorithm)
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
        if self._select is not None:
            records = [r for r in records if self._select(r)]
        if [(r.kid, r.revoked_at) for r in records] == [
            (r.kid, r.revoked_at) for r in self._records
        ]:
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
        """Create the first key (active at once) when the ring is empty; None when it is not
        (or when another instance created one at the same moment)."""
        await self.load()
        if any(r.revoked_at is None for r in self._records):
            return None
        record = new_key_record(alg, now, now)
        added = await self._store.add_first(record, self._select or (lambda _r: True))
        await self.load()
        return record if added else None  # another process created it first

    async def rotate(self, alg: str, now: float, delay: float) -> KeyRecord:
        """Add a key that is published now and starts signing at ``now + delay``."""
        record = new_key_record(alg, now, now + delay)
        await self._store.add(record)
        await self.load()
        return record

    async def revoke(self, kid: str, now: float, alg: str | None = None) -> KeyRevocation:
        """Withdraw ``kid`` at ``now`` (emergency: it leaves the JWKS, every token it signed
        is refused). When it is the key signing at ``now``, or no other usable key would be
        left, a replacement of ``alg`` (default: the withdrawn key's) is created that signs at
        once, in the same transaction. Raise ``LookupError`` for an unknown or already
        revoked kid."""
        await self.load()
        record = next((r for r in self._records if r.kid == kid), None)
        if record is None:
            raise LookupError(f"no key {kid!r} in the ring")
        if record.revoked_at is not None:
            raise LookupError(f"key {kid!r} is already revoked")
        others = [
            r for r in self._records if r.kid != kid and r.revoked_at is None
        ]
        signing = self._signer_index(now)
        needs_new = not others or (
            signing is not None and self._records[signing].kid == kid
        )
        replacement = new_key_record(alg or record.alg, now, now) if needs_new else None
        if not await self._store.revoke(kid, now, replacement):
            raise LookupError(f"key {kid!r} is unknown or already revoked")
        await self.load()
        return KeyRevocation(kid, replacement)

    # -- queries --------------------------------------------------------------------------
    def is_revoked(self, kid: object) -> bool:
        """True when ``kid`` names a key withdrawn by :meth:`revoke`."""
        return any(r.kid == kid and r.revoked_at is not None for r in self._records)

    def _signed(self, index: int) -> bool:
        """Whether key ``index`` ever signed: not revoked, or revoked after activating."""
        rec = self._records[index]
        return rec.revoked_at is None or rec.activate_at < rec.revoked_at

    def _retire_at(self, index: int) -> float | None:
        """When key ``index`` leaves the JWKS (None: it has no successor yet): its successor
        (the next key that signed, or will) activated, plus the token lifetime and margin."""
        for nxt in range(index + 1, len(self._records)):
            if self._signed(nxt):
                return self._records[nxt].activate_at + self._access_ttl + self._margin
        return None

    def statuses(self, now: float) -> list[KeyStatus]:
        """Every stored key with its state at ``now``."""
        out = []
        signer = self._signer_index(now)
        for i, rec in enumerate(self._records):
            retire = self._retire_at(i)
            if rec.revoked_at is not None:
                state = "revoked"
                retire = rec.revoked_at
            elif rec.activate_at > now:
                state = "pending"
            elif i == signer:
                state = "active"
            elif retire is not None and now < retire:
                state = "retiring"
            else:
                state = "expired"
            out.append(KeyStatus(rec.kid, rec.alg, state, rec.activate_at, retire))
        return out

    def _signer_index(self, now: float) -> int | None:
        """The unrevoked key activated last at ``now``; before any activation, the first
        unrevoked key; None when every key is revoked."""
        index = None
        for i, rec in enumerate(self._records):
            if rec.revoked_at is None and (rec.activate_at <= now or index is None):
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
        if signer is None:
            raise RuntimeError("every key of the ring is revoked; run `jotkit keys rotate`")
        published: list[jotkit.Key] = []
        transitions: list[float] = []
        for i, rec in enumerate(self._records):
            if rec.revoked_at is not None:
                continue  # withdrawn: never published again
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
