"""Issue, verify, rotate and revoke tokens: the service logic behind the routes.

* Access tokens are JWTs per RFC 9068 (``typ: at+jwt``), signed by the key ring's current key.
* Refresh tokens are opaque (256 random bits), stored only as SHA-256, rotated on every use
  (:meth:`SessionStore.rotate_refresh`), grouped in families (one per login).
* Every protected request goes through :meth:`AuthService.authenticate`: a bounded LRU of
  already-verified tokens (keyed by the token string) skips the signature check, but ``exp``,
  the signing key (still published: not withdrawn by ``jotkit keys revoke``, not retired),
  the deny-list and the user's revoked-before marker are checked on every request against an
  in-process :class:`RevocationCache` that local revocations update immediately and a
  background task re-syncs from the store every ``revocation_sync_interval`` seconds.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import jotkit

from .audit_log import AuditLog
from .clock import Clock
from .errors import ServiceError
from .hashpool import HashPool, PoolFull
from .keyring import KeyRing
from .metrics import Metrics
from .passwords import PasswordPolicy
from .settings import Settings
from .store.base import (
    AccessTokenRecord,
    FamilyRecord,
    RevocationStore,
    RotateOutcome,
    Store,
    UserRecord,
)
from .throttle import LoginThrottle

__all__ = [
    "AuthService",
    "ClientInfo",
    "IssuedTokens",
    "RevocationCache",
    "hash_refresh_token",
    "normalize_email",
]

CLIENT_ID = "jotkit"
ID_TOKEN_ALG = "RS256"
SHED_AUDIT_INTERVAL = 1.0
"""Seconds between two ``login_shed`` audit events (each sums the sheds in between)."""
# (user, family, now, jti, exp) -> (access token, expires_in): an OAuth grant's token signer
IssueAccess = Callable[[UserRecord, FamilyRecord, float, str, float], Awaitable[tuple[str, int]]]
_REFRESH_RE = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


def normalize_email(email: str) -> str:
    """Lower-case and strip an email address; raise ``ValueError`` when it is not one."""
    value = email.strip().lower()
    if not _EMAIL_RE.match(value):
        raise ValueError("not an email address")
    return value


def hash_refresh_token(token: str) -> str:
    """SHA-256 hex of a refresh token (the only form that is stored)."""
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Who is calling: address and user agent (stored with a session)."""

    ip: str
    user_agent: str

    @property
    def fingerprint(self) -> str:
        """Stable id of this client for the refresh grace window."""
        raw = f"{self.ip}|{self.user_agent}".encode()
        return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    """The result of a login or refresh."""

    access_token: str
    expires_in: int
    refresh_token: str
    session_id: str
    user: UserRecord


def _header_kid(token: str) -> object:
    """The ``kid`` of a token's header (unverified; only to name the reason of a refusal)."""
    try:
        return jotkit.decode_unverified(token)[0].get("kid")
    except jotkit.InvalidToken:
        return None


class RevocationCache:
    """In-process copy of the deny-list and revoked-before markers.

    Both stay bounded by time: a deny-list entry is dropped once its token has expired, and a
    marker once ``marker_lifetime`` has passed since it (every token issued before the marker
    has expired by then; the stores keep a marker just as long)."""

    def __init__(self, marker_lifetime: float = math.inf) -> None:
        self.denied: dict[str, float] = {}
        self.markers: dict[str, float] = {}
        self.cursor = 0
        self.marker_lifetime = marker_lifetime

    def deny(self, entries: Iterable[tuple[str, float]]) -> None:
        """Add ``(jti, exp)`` pairs."""
        for jti, exp in entries:
            self.denied[jti] = max(exp, self.denied.get(jti, 0.0))

    def mark(self, user_id: str, revoked_before: float) -> None:
        """Record a revoked-before marker."""
        self.markers[user_id] = max(revoked_before, self.markers.get(user_id, 0.0))

    async def sync(self, store: RevocationStore, now: float) -> None:
        """Pull entries added since the last sync (by any instance or the CLI)."""
        changes = await store.changes_since(self.cursor, now)
        # A reset (a full re-read) is merged, not swapped in: a token this instance denied
        # while the read was in flight committed after the read's snapshot, and clearing the
        # cache would accept it again until the next sync. A denial or marker is never undone
        # (only expired below), so keeping local entries is always safe.
        self.deny(changes.denied)
        for user_id, before in changes.markers:
            self.mark(user_id, before)
        self.cursor = changes.cursor
        self.denied = {j: e for j, e in self.denied.items() if e > now}
        horizon = now - self.marker_lifetime
        if any(before <= horizon for before in self.markers.values()):
            self.markers = {u: b for u, b in self.markers.items() if b > horizon}

    def reason(self, jti: str, sub: str, iat: float) -> str | None:
        """``"revoked"`` when the token is deny-listed or predates the user's marker."""
        if jti in self.denied:
            return "revoked"
        marker = self.markers.get(sub)
        if marker is not None and iat < marker:
            return "revoked"
        return None


class AuthService:
    """Everything the routes need; one instance per app."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        clock: Clock,
        metrics: Metrics,
        audit: AuditLog,
    ) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self.metrics = metrics
        self.audit = audit
        self._sheds_unlogged = 0  # logins shed since the last login_shed audit event
        self._shed_logged_at = -SHED_AUDIT_INTERVAL  # time.monotonic() of that event
        self.issuer = settings.effective_issuer
        self.passwords = PasswordPolicy(
            settings.argon2_time_cost,
            settings.argon2_memory_cost,
            settings.argon2_parallelism,
            insecure_test_costs=settings.argon2_insecure_test_costs,
        )
        # every argon2 run (login, dummy hash for unknown emails, rehash, new users) goes here
        self.hash_pool = HashPool(
            settings.effective_argon2_workers, settings.effective_argon2_queue
        )
        # ID tokens are RS256 by default (OpenID Connect Core §3.1.3.7): RS256 keys form their
        # own ring (rotated and revoked like the access-token keys) unless access tokens are
        # RS256 themselves, then one ring serves both.
        own_ring = settings.signing_alg != ID_TOKEN_ALG
        self.keyring = KeyRing(
            store.keys,
            issuer=self.issuer,
            audience=settings.audience,
            access_ttl=settings.access_ttl,
            retire_margin=settings.key_retire_margin,
            select=(lambda r: r.alg != ID_TOKEN_ALG) if own_ring else None,
        )
        self.id_keyring = self.keyring if not own_ring else KeyRing(
            store.keys,
            issuer=self.issuer,
            audience=settings.audience,
            access_ttl=max(settings.access_ttl, settings.id_token_ttl),
            retire_margin=settings.key_retire_margin,
            select=lambda r: r.alg == ID_TOKEN_ALG,
        )
        self.throttle = LoginThrottle(
            store.rate_limits,
            account_limit=settings.login_account_limit,
            account_window=settings.login_account_window,
            ip_limit=settings.login_ip_limit,
            ip_window=settings.login_ip_window,
            pair_limit=settings.login_pair_limit,
            pair_window=settings.login_pair_window,
            backoff_max=settings.login_backoff_max,
            backoff_memory=settings.login_backoff_memory,
        )
        # the stores keep a marker as long (_revoke_user; store/factory.py for Redis)
        self.revocations = RevocationCache(
            float(settings.access_ttl) + float(settings.key_retire_margin) + 1.0
        )
        # token -> (claims, exp, kid of the signing key)
        self._verified: OrderedDict[str, tuple[dict[str, Any], float, str]] = OrderedDict()
        # the same for OAuth access tokens of other audiences (oauth/tokens.py), kept apart so
        # that /auth/* never skips its audience check
        self.oauth_verified: OrderedDict[str, tuple[dict[str, Any], float, str]] = OrderedDict()
        self._cache_size = settings.token_cache_size
        self._last_key_reload = 0.0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Migrate the store, make sure a signing key exists, load the revocation cache."""
        await self.store.start()
        now = self.clock.now()
        created = await self.keyring.ensure_key(self.settings.signing_alg, now)
        if created is not None:
            self.audit.event("key_created", kid=created.kid, alg=created.alg)
        if self.id_keyring is not self.keyring:
            created = await self.id_keyring.ensure_key(ID_TOKEN_ALG, now)
            if created is not None:
                self.audit.event("key_created", kid=created.kid, alg=created.alg)
        await self.revocations.sync(self.store.revocations, now)

    def close(self) -> None:
        """Stop the argon2 pool's threads (the store is closed by its owner)."""
        self.hash_pool.close()

    async def sync(self) -> None:
        """Periodic work: re-read the key ring and pull new revocations."""
        now = self.clock.now()
        if await self.keyring.load():
            self._verified.clear()
            self.oauth_verified.clear()
        if self.id_keyring is not self.keyring:
            await self.id_keyring.load()
        await self.revocations.sync(self.store.revocations, now)
        self.metrics.denylist_size.set(len(self.revocations.denied))

    async def purge(self) -> int:
        """Delete expired rows (access-token records, dead families, old deny entries, old
        login-throttle counters)."""
        now = self.clock.now()
        return (
            await self.store.sessions.purge(now)
            + await self.store.revocations.purge(now)
            + await self.throttle.purge(now)
            + await self.store.codes.purge(now)
            + await self.store.assertions.purge(now)
            + await self.store.dpop.purge(now)
            + await self.store.par.purge(now)
            + await self.store.devices.purge(now)
            + await self.store.sso.purge(now)
        )

    # -- users ----------------------------------------------------------------------------
    async def add_user(
        self, email: str, password: str, roles: Sequence[str] = ("user",)
    ) -> UserRecord:
        """Create a user (raises ``ValueError`` on a bad email, ``WeakPassword`` (a
        ``ValueError``) when the password breaks the rules of :mod:`.passwords`, ``UserExists``)."""
        normalized = normalize_email(email)
        self.passwords.check_new(password, normalized)
        hashed = await self.hash_pool.run(self.passwords.hash, password, shed=False)
        return await self.store.users.create(
            uuid.uuid4().hex, normalized, hashed, list(roles), self.clock.now()
        )

    async def disable_user(self, email: str) -> UserRecord | None:
        """Disable a user and revoke everything they hold."""
        user = await self.store.users.get_by_email(normalize_email(email))
        if user is None:
            return None
        await self.store.users.set_disabled(user.id, True)
        await self._revoke_user(user.id, "disabled")
        self.audit.event("user_disabled", user_id=user.id)
        return user

    # -- login / refresh ------------------------------------------------------------------
    async def check_password(self, email: str, password: str, client: ClientInfo) -> UserRecord:
        """Check credentials (argon2id; same cost for unknown users) under the login throttle
        and the argon2 pool; return the user or raise ``invalid_credentials`` / 429 / 503.
        Shared by ``/auth/login`` and the hosted OAuth login page."""
        now = self.clock.now()
        try:
            normalized = normalize_email(email)
        except ValueError:
            normalized = email.strip().lower()[:320]
        if self.hash_pool.full:  # shed early: a flood costs no throttle round trips
            self._shed(client)
        try:
            # Reserved atomically before the password check (docs/service.md, throttling).
            attempt = await self.throttle.reserve(normalized, client.ip, now)
        except ServiceError:
            self.audit.event("login_throttled", ip=client.ip)
            raise
        user = await self.store.users.get_by_email(normalized)
        usable = user is not None and not user.disabled
        stored = user.password_hash if (user is not None and usable) else None
        try:  # unknown and disabled users take the same path (dummy hash, same pool)
            ok, rehash = await self.hash_pool.run(self.passwords.verify, stored, password)
        except PoolFull:  # filled while reserving: not a failure, give the reservation back
            await self.throttle.cancel(attempt)
            self._shed(client)
        if not ok or user is None:
            await self.throttle.failed(attempt)
            reason = "unknown_user" if user is None else ("disabled" if not usable else "password")
            self.audit.event(
                "login_failed", reason=reason, ip=client.ip, user_id=user.id if user else None
            )
            raise ServiceError("invalid_credentials")
        if rehash:
            new_hash = await self.hash_pool.run(self.passwords.hash, password, shed=False)
            await self.store.users.set_password_hash(user.id, new_hash)
            self.audit.event("password_rehashed", user_id=user.id)
        await self.throttle.succeeded(attempt)
        return user

    async def login(self, email: str, password: str, client: ClientInfo) -> IssuedTokens:
        """Check credentials (argon2id; same cost for unknown users) and open a session."""
        user = await self.check_password(email, password, client)
        now = self.clock.now()
        refresh = secrets.token_urlsafe(32)
        family = FamilyRecord(
            id=secrets.token_urlsafe(16),
            user_id=user.id,
            created_at=now,
            last_used_at=now,
            idle_expires_at=now
            + min(self.settings.refresh_idle_ttl, self.settings.refresh_absolute_ttl),
            absolute_expires_at=now + self.settings.refresh_absolute_ttl,
            user_agent=client.user_agent[:512] or None,
            client_ip=client.ip[:64] or None,
        )
        await self.store.sessions.create_family(family, hash_refresh_token(refresh))
        try:
            access, expires_in = await self._issue_access(user, family, now)
        except ServiceError:  # disabled (or the session revoked) while the password was checked
            self.audit.event("login_failed", reason="disabled", ip=client.ip, user_id=user.id)
            raise ServiceError("invalid_credentials") from None
        self.audit.event("login_ok", user_id=user.id, session_id=family.id, ip=client.ip)
        return IssuedTokens(access, expires_in, refresh, family.id, user)

    def _shed(self, client: ClientInfo) -> NoReturn:
        """Refuse a login because the argon2 pool and its queue are full (503)."""
        self.note_shed(client.ip)
        raise PoolFull()

    def note_shed(self, ip: str) -> None:
        """Count one shed login (``jotkit_login_shed_total``) and audit sheds in summary: at
        most one ``login_shed`` event per second, whose ``count`` is the logins shed since the
        previous one and whose ``ip`` is the last one's. A flood sheds thousands of logins a
        second; a log line each would make the log the next thing the flood exhausts."""
        self.metrics.login_shed.inc()
        self._sheds_unlogged += 1
        now = time.monotonic()
        if now - self._shed_logged_at >= SHED_AUDIT_INTERVAL:
            self.audit.event("login_shed", ip=ip, count=self._sheds_unlogged)
            self._sheds_unlogged = 0
            self._shed_logged_at = now

    async def refresh(
        self,
        refresh_token: str,
        client: ClientInfo,
        *,
        client_id: str | None = None,
        issue: IssueAccess | None = None,
    ) -> IssuedTokens:
        """Rotate a refresh token (RFC 6749 §6, RFC 9700 §4.14.2 rotation + reuse detection).

        ``client_id`` is the authenticated OAuth client (None: the first-party API); a token
        of another client is refused and its family revoked (RFC 6749 §6: bound to its
        client). ``issue`` signs the access token instead of :meth:`_issue_access`."""
        now = self.clock.now()
        if not _REFRESH_RE.match(refresh_token):
            self.audit.event("refresh_failed", reason="malformed", ip=client.ip)
            raise ServiceError("invalid_grant", "The refresh token is malformed.")
        new_token = secrets.token_urlsafe(32)
        # The winner's access token is recorded inside the rotation, so a concurrent reuse
        # that revokes the family deny-lists it as well (RFC 9700 §4.14.2).
        jti, exp = secrets.token_urlsafe(16), float(int(now) + int(self.settings.access_ttl))
        result = await self.store.sessions.rotate_refresh(
            hash_refresh_token(refresh_token),
            hash_refresh_token(new_token),
            now,
            self.settings.reuse_grace,
            client=client.fingerprint,
            idle_ttl=self.settings.refresh_idle_ttl,
            access=(jti, exp),
            client_id=client_id,
        )
        family = result.family
        outcome = result.outcome
        if outcome is RotateOutcome.ROTATED and family is not None:
            user = result.user or await self.store.users.get(family.user_id)
            if user is None or user.disabled:  # only for a store that did not read the user
                await self._revoke_family(family.id, "disabled")
                self.audit.event("refresh_failed", reason="user_disabled", session_id=family.id)
                raise ServiceError("invalid_grant", "The session is no longer valid.")
            if issue is not None:
                access, expires_in = await issue(user, family, now, jti, exp)
            else:
                access, expires_in = await self._issue_access(
                    user, family, now, recorded=(jti, exp)
                )
            self.audit.event("refresh", user_id=user.id, session_id=family.id, ip=client.ip)
            return IssuedTokens(access, expires_in, new_token, family.id, user)
        if outcome is RotateOutcome.WRONG_CLIENT and family is not None:
            # the store revoked the family (RFC 6749 §6: a refresh token is bound to its client)
            await self._deny(result.outstanding, now)
            self.audit.event("refresh_failed", reason="wrong_client", session_id=family.id)
            raise ServiceError("invalid_grant", "The refresh token belongs to another client.")
        if outcome is RotateOutcome.USER_DISABLED and family is not None:
            await self._deny(result.outstanding, now)
            self.audit.event("refresh_failed", reason="user_disabled", session_id=family.id)
            raise ServiceError("invalid_grant", "The session is no longer valid.")
        if result.outcome is RotateOutcome.RETRY:
            self.audit.event(
                "refresh_retry", session_id=family.id if family else None, ip=client.ip
            )
            raise ServiceError("refresh_retry")
        if result.outcome is RotateOutcome.REUSED and family is not None:
            await self._deny(result.outstanding, now)
            self.audit.event(
                "reuse_detected",
                user_id=family.user_id,
                session_id=family.id,
                ip=client.ip,
                denied=len(result.outstanding),
            )
            raise ServiceError(
                "invalid_grant", "Refresh token reuse detected; the session has been revoked."
            )
        reason = result.outcome.value
        self.audit.event(
            "refresh_failed", reason=reason, ip=client.ip, session_id=family.id if family else None
        )
        descriptions = {
            "expired": "The session has expired; log in again.",
            "revoked": "The session has been revoked; log in again.",
        }
        raise ServiceError("invalid_grant", descriptions.get(reason, "Unknown refresh token."))

    async def _issue_access(
        self,
        user: UserRecord,
        family: FamilyRecord,
        now: float,
        *,
        recorded: tuple[str, float] | None = None,
    ) -> tuple[str, int]:
        """Sign an RFC 9068 access token and remember its ``jti`` for the family.

        ``recorded`` is the ``(jti, exp)`` the store already recorded (during a rotation).
        """
        ttl = int(self.settings.access_ttl)
        issued = int(now)
        jti = recorded[0] if recorded is not None else secrets.token_urlsafe(16)
        exp = issued + ttl
        # the claims exactly as jotkit.encode would add them (RFC 7519 §4.1), so the verified
        # token cache gets them without parsing the token just signed
        claims: dict[str, Any] = {
            "client_id": CLIENT_ID,
            "roles": list(user.roles),
            "email": user.email,
            "sid": family.id,
            "auth_time": int(family.created_at),
            "iat": issued,
            "exp": exp,
            "iss": self.issuer,
            "aud": self.settings.audience,
            "sub": user.id,
            "jti": jti,
        }
        signing_key = self.keyring.signing_key(now)
        token = jotkit.encode(claims, signing_key, headers={"typ": "at+jwt"}, now=now)
        if recorded is None and not await self.store.sessions.record_access_token(
            AccessTokenRecord(jti, family.id, user.id, float(exp))
        ):
            # A concurrent reuse/logout revoked the family between rotation and signing.
            self.audit.event("refresh_failed", reason="revoked", session_id=family.id)
            raise ServiceError("invalid_grant", "The session has been revoked; log in again.")
        self._remember(token, claims, float(exp), str(signing_key.kid))
        return token, ttl

    # -- the hot path ---------------------------------------------------------------------
    def _remember(self, token: str, claims: dict[str, Any], exp: float, kid: str) -> None:
        """Put a verified token in the bounded LRU, evicting the least recently used."""
        cache = self._verified
        cache[token] = (claims, exp, kid)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)

    async def authenticate(self, token: str) -> dict[str, Any]:
        """Verify an access token and check revocation; return its claims.

        Raises :class:`ServiceError` with the jotkit reason code (``expired``,
        ``bad_signature``, ``revoked``, ...).
        """
        now = self.clock.now()
        entry = self._verified.get(token)
        if entry is None:
            self.metrics.cache_miss.inc()
            claims, kid = await self._verify_with_kid(token, now)
            exp = float(claims["exp"])
            self._remember(token, claims, exp, kid)
        else:
            self.metrics.cache_hit.inc()
            self._verified.move_to_end(token)  # least recently used is evicted first
            claims, exp, kid = entry
            if now >= exp:
                self._verified.pop(token, None)
                raise self._reject("expired", "The access token has expired.")
            if kid not in self.keyring.snapshot(now).kids:  # withdrawn or retired since
                self._verified.pop(token, None)
                raise self._key_gone(kid)
        reason = self.revocations.reason(claims["jti"], claims["sub"], claims["iat"])
        if reason is not None:
            raise self._reject(reason, "The access token has been revoked.")
        return claims

    async def _verify(self, token: str, now: float) -> dict[str, Any]:
        return (await self._verify_with_kid(token, now))[0]

    def _key_gone(self, kid: object) -> ServiceError:
        if self.keyring.is_revoked(kid):
            return self._reject("revoked", "The access token was signed by a withdrawn key.")
        return self._reject("key_not_found", "The access token's signing key is not published.")

    async def _verify_with_kid(self, token: str, now: float) -> tuple[dict[str, Any], str]:
        """Verify signature and claims; return the claims and the signing key's kid."""
        snap = self.keyring.snapshot(now)
        try:
            verified = snap.verifier.decode_complete(token, now=now)
        except jotkit.KeyNotFound as exc:
            kid = _header_kid(token)
            if self.keyring.is_revoked(kid):
                raise self._key_gone(kid) from None
            # Maybe another process (``jotkit keys rotate``) added a key: reload, at most 1/s.
            if time.monotonic() - self._last_key_reload < 1.0:
                raise self._reject(exc.code, exc.message) from None
            self._last_key_reload = time.monotonic()
            if not await self.keyring.load():
                raise self._reject(exc.code, exc.message) from None
            try:
                verified = self.keyring.snapshot(now).verifier.decode_complete(token, now=now)
            except jotkit.InvalidToken as exc2:
                if self.keyring.is_revoked(kid):
                    raise self._key_gone(kid) from None
                raise self._reject(exc2.code, exc2.message) from None
        except jotkit.InvalidToken as exc:
            raise self._reject(exc.code, exc.message) from None
        claims = verified.claims
        for name in ("sub", "jti", "sid"):
            if not isinstance(claims.get(name), str):
                raise self._reject("invalid_claim", f"The {name!r} claim must be a string.")
        if not isinstance(claims.get("iat"), int | float) or isinstance(claims["iat"], bool):
            raise self._reject("invalid_claim", "The 'iat' claim must be a number.")
        return claims, str(verified.key.kid)

    def _reject(self, code: str, message: str) -> ServiceError:
        self.audit.event("token_rejected", reason=code)
        return ServiceError(code, message or "The access token is invalid.")

    # -- revocation -----------------------------------------------------------------------
    async def _deny(
        self, records: Iterable[AccessTokenRecord | tuple[str, float]], now: float
    ) -> None:
        entries = [
            (r.jti, r.exp) if isinstance(r, AccessTokenRecord) else (r[0], r[1]) for r in records
        ]
        if not entries:
            return
        await self.store.revocations.deny(entries, now)
        self.revocations.deny(entries)

    async def _revoke_family(self, family_id: str, reason: str) -> None:
        now = self.clock.now()
        outstanding = await self.store.sessions.revoke_family(family_id, now, reason)
        await self._deny(outstanding, now)

    async def revoke_family(self, family_id: str, reason: str) -> None:
        """Revoke one refresh family and deny-list its outstanding access tokens."""
        await self._revoke_family(family_id, reason)

    async def _revoke_user(self, user_id: str, reason: str) -> None:
        now = self.clock.now()
        outstanding = await self.store.sessions.revoke_user(user_id, now, reason)
        await self._deny(outstanding, now)
        marker = float(math.floor(now))
        keep = now + self.settings.access_ttl + self.settings.key_retire_margin
        await self.store.revocations.set_user_marker(user_id, marker, keep)
        self.revocations.mark(user_id, marker)

    async def revoke_grant(self, family_id: str, reason: str) -> None:
        """Revoke a family and deny-list its access tokens (an OAuth grant: code replay)."""
        await self._revoke_family(family_id, reason)
        self.audit.event("grant_revoked", session_id=family_id, reason=reason)

    async def logout(self, claims: dict[str, Any]) -> None:
        """Revoke this session's family and deny-list the presented token."""
        now = self.clock.now()
        await self._deny([(claims["jti"], float(claims["exp"]))], now)
        await self._revoke_family(claims["sid"], "logout")
        self.audit.event("logout", user_id=claims["sub"], session_id=claims["sid"])

    async def logout_all(self, claims: dict[str, Any]) -> None:
        """Revoke every session of the user and set their revoked-before marker."""
        now = self.clock.now()
        await self._deny([(claims["jti"], float(claims["exp"]))], now)
        await self._revoke_user(claims["sub"], "logout_all")
        self.audit.event("logout_all", user_id=claims["sub"])

    async def list_sessions(self, user_id: str) -> list[FamilyRecord]:
        """The user's active sessions."""
        return await self.store.sessions.list_families(user_id, self.clock.now())

    async def end_session(self, user_id: str, session_id: str) -> bool:
        """End one of the user's sessions; False when it is not theirs or not active."""
        family = await self.store.sessions.get_family(session_id)
        if family is None or family.user_id != user_id or not family.active(self.clock.now()):
            return False
        await self._revoke_family(session_id, "ended")
        self.audit.event("session_ended", user_id=user_id, session_id=session_id)
        return True

    # -- RFC 7009 / RFC 7662 --------------------------------------------------------------
    async def revoke_token(self, token: str, hint: str | None) -> None:
        """Revoke a refresh or access token (RFC 7009 §2.1); unknown tokens are ignored."""
        kinds = ["refresh_token", "access_token"]
        if hint == "access_token":
            kinds.reverse()
        for kind in kinds:
            if kind == "refresh_token" and _REFRESH_RE.match(token):
                found = await self.store.sessions.find_refresh(hash_refresh_token(token))
                if found is not None:
                    await self._revoke_family(found[1].id, "revoked")
                    self.audit.event("token_revoked", kind=kind, session_id=found[1].id)
                    return
            elif kind == "access_token" and token.count(".") == 2:
                try:
                    claims = await self._verify(token, self.clock.now())
                except ServiceError:
                    continue
                await self._deny([(claims["jti"], float(claims["exp"]))], self.clock.now())
                self.audit.event("token_revoked", kind=kind, user_id=claims["sub"])
                return

    async def deny_access_token(self, claims: dict[str, Any]) -> None:
        """Deny-list a verified access token until it expires (RFC 7009 §2.1)."""
        await self._deny([(claims["jti"], float(claims["exp"]))], self.clock.now())
        self.audit.event("token_revoked", kind="access_token", user_id=claims["sub"])

    async def refresh_token_client(self, token: str) -> str | None:
        """The OAuth client a refresh token was issued to (None: unknown or first-party)."""
        if not _REFRESH_RE.match(token):
            return None
        found = await self.store.sessions.find_refresh(hash_refresh_token(token))
        return None if found is None else found[1].client_id

    async def introspect(self, token: str, hint: str | None) -> dict[str, Any]:
        """RFC 7662 §2.2 introspection response (``{"active": false}`` for anything invalid)."""
        now = self.clock.now()
        if token.count(".") == 2:  # the hint only orders a search (RFC 7662 §2.1)
            try:
                claims = await self.authenticate(token)
            except ServiceError:
                return {"active": False}
            out: dict[str, Any] = {
                k: claims[k]
                for k in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "roles", "sid")
                if k in claims
            }
            out.update(active=True, token_type="access_token", username=claims.get("email"))
            return out
        if _REFRESH_RE.match(token):
            found = await self.store.sessions.find_refresh(hash_refresh_token(token))
            if found is not None:
                record, family = found
                if record.spent_at is None and family.active(now):
                    return {
                        "active": True,
                        "token_type": "refresh_token",
                        "sub": family.user_id,
                        "sid": family.id,
                        "iat": int(record.created_at),
                        "exp": int(min(family.idle_expires_at, family.absolute_expires_at)),
                        "client_id": family.client_id or CLIENT_ID,
                        "iss": self.issuer,
                    }
        return {"active": False}

