"""The storage interface of the auth service.

Routes and :mod:`jotkit.server.sessions` only talk to these abstract classes. The parts a
multi-instance deployment wants in Redis (deny-list + revoked-before markers, login throttle
counters) are separate small interfaces, so a Redis implementation can replace them while the
relational parts (users, refresh families, key ring) stay in SQL.

All times are float epoch seconds supplied by the caller (the service's injectable clock);
stores never read the wall clock.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .feed import SqlRevocationFeed
    from .sso import SsoStore

__all__ = [
    "AccessTokenRecord",
    "AssertionStore",
    "ClientRecord",
    "ClientStore",
    "CodeRecord",
    "CodeStore",
    "ConsumeOutcome",
    "ConsumeResult",
    "DeviceCodeRecord",
    "DeviceCodeStore",
    "DpopStore",
    "FamilyRecord",
    "GrantRecord",
    "KeyRecord",
    "KeyStore",
    "ParRecord",
    "ParStore",
    "PollOutcome",
    "PollResult",
    "RateLimiter",
    "RefreshRecord",
    "RevocationChanges",
    "RevocationStore",
    "RotateOutcome",
    "RotateResult",
    "SessionStore",
    "Store",
    "UserExists",
    "UserRecord",
    "UserStore",
]


class UserExists(Exception):
    """A user with this email already exists."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user account. ``email`` is stored normalised (lower-case, stripped)."""

    id: str
    email: str
    password_hash: str = field(repr=False)
    roles: tuple[str, ...]
    disabled: bool
    created_at: float


@dataclass(frozen=True, slots=True)
class FamilyRecord:
    """A refresh-token family: one login session and every token rotated from it."""

    id: str
    user_id: str
    created_at: float
    last_used_at: float
    idle_expires_at: float
    absolute_expires_at: float
    revoked_at: float | None = None
    revoke_reason: str | None = None
    user_agent: str | None = None
    client_ip: str | None = None
    client_id: str | None = None  # the OAuth client it was issued to (None: first-party /auth/*)

    def active(self, now: float) -> bool:
        """Not revoked and within both the idle and the absolute lifetime."""
        return (
            self.revoked_at is None
            and now < self.idle_expires_at
            and now < self.absolute_expires_at
        )


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    """One refresh token, known only by the SHA-256 of its value."""

    token_hash: str
    family_id: str
    created_at: float
    spent_at: float | None = None
    spent_by: str | None = None


@dataclass(frozen=True, slots=True)
class AccessTokenRecord:
    """An issued access token (only ``jti`` and ``exp``), so a family can deny-list them."""

    jti: str
    family_id: str
    user_id: str
    exp: float


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A signing key of the key ring; ``private_jwk`` is JSON text (plaintext at rest).

    ``revoked_at`` is set by an emergency withdrawal (``jotkit keys revoke``): the key is no
    longer published, signs nothing and every token it signed is refused."""

    kid: str
    alg: str
    private_jwk: str = field(repr=False)
    created_at: float
    activate_at: float
    revoked_at: float | None = None


class RotateOutcome(enum.Enum):
    """What :meth:`SessionStore.rotate_refresh` did."""

    ROTATED = "rotated"  # the caller won: old token spent, new token stored
    RETRY = "retry"  # already spent by the same client within the grace window: benign
    REUSED = "reused"  # spent token presented again: family revoked
    EXPIRED = "expired"  # family idle/absolute lifetime over
    REVOKED = "revoked"  # family was revoked earlier
    NOT_FOUND = "not_found"  # unknown token
    WRONG_CLIENT = "wrong_client"  # issued to another OAuth client: family revoked
    USER_DISABLED = "user_disabled"  # the family's user is disabled or gone: family revoked


@dataclass(frozen=True, slots=True)
class RotateResult:
    """Outcome of a rotation plus the family and, on reuse, its outstanding access tokens."""

    outcome: RotateOutcome
    family: FamilyRecord | None = None
    outstanding: tuple[AccessTokenRecord, ...] = ()
    user: UserRecord | None = None  # the family's user, when the store read it anyway


@dataclass(frozen=True, slots=True)
class RevocationChanges:
    """Deny-list entries and user markers added after a cursor (for in-process caches)."""

    denied: tuple[tuple[str, float], ...]  # (jti, exp)
    markers: tuple[tuple[str, float], ...]  # (user_id, revoked_before)
    cursor: int
    reset: bool = field(default=False)  # True when the cursor was unknown: a full re-read


class UserStore(ABC):
    """Users and their password hashes."""

    @abstractmethod
    async def create(
        self, user_id: str, email: str, password_hash: str, roles: Sequence[str], now: float
    ) -> UserRecord:
        """Insert a user; raise :class:`UserExists` on a duplicate email."""

    @abstractmethod
    async def get(self, user_id: str) -> UserRecord | None:
        """Look a user up by id."""

    @abstractmethod
    async def get_by_email(self, email: str) -> UserRecord | None:
        """Look a user up by normalised email."""

    @abstractmethod
    async def list(self) -> list[UserRecord]:
        """All users, oldest first."""

    @abstractmethod
    async def set_password_hash(self, user_id: str, password_hash: str) -> None:
        """Replace the stored hash (rehash on login)."""

    @abstractmethod
    async def set_disabled(self, user_id: str, disabled: bool) -> None:
        """Disable or re-enable a user."""


class SessionStore(ABC):
    """Refresh families, refresh tokens and the issued access tokens of each family."""

    @abstractmethod
    async def create_family(self, family: FamilyRecord, first_token_hash: str) -> None:
        """Store a new family with its first refresh token."""

    @abstractmethod
    async def rotate_refresh(
        self,
        old_hash: str,
        new_hash: str,
        now: float,
        grace: float,
        *,
        client: str,
        idle_ttl: float,
        access: tuple[str, float] | None = None,
        client_id: str | None = None,
    ) -> RotateResult:
        """Spend ``old_hash`` and store ``new_hash`` atomically, as decided by
        :func:`jotkit.server.store.rotation.decide_refusal` over the rows read in the same
        transaction.

        ``access`` is the ``(jti, exp)`` of the access token the winner will be issued; it is
        recorded for the family in the same transaction, so a concurrent reuse that revokes
        the family deny-lists it too.
        Of many concurrent calls with the same ``old_hash`` exactly one gets ``ROTATED``.
        A spent token presented again by the same ``client`` within ``grace`` seconds of
        being spent is ``RETRY``; otherwise it is ``REUSED`` and the family is revoked in the
        same transaction (RFC 9700 §4.14.2, refresh token rotation).
        ``client_id`` is the OAuth client presenting the token (None: the first-party API);
        an unspent token of another client's family is ``WRONG_CLIENT`` and a live token of a
        disabled user ``USER_DISABLED``: both revoke the family in the same transaction and
        return its outstanding access tokens (RFC 6749 §6).
        """

    @abstractmethod
    async def find_refresh(self, token_hash: str) -> tuple[RefreshRecord, FamilyRecord] | None:
        """The token row and its family, or None."""

    @abstractmethod
    async def get_family(self, family_id: str) -> FamilyRecord | None:
        """A family by id."""

    @abstractmethod
    async def list_families(self, user_id: str, now: float) -> list[FamilyRecord]:
        """The user's active families, newest first."""

    @abstractmethod
    async def record_access_token(self, record: AccessTokenRecord) -> bool:
        """Remember an issued access token so its family can deny-list it later.

        Return False (and store nothing) when the family has been revoked meanwhile; the
        check and the insert must be atomic with respect to :meth:`revoke_family`."""

    @abstractmethod
    async def access_token(self, jti: str) -> AccessTokenRecord | None:
        """The record of an issued access token by ``jti`` (None: unknown, never recorded,
        or purged); token exchange (RFC 8693) binds a new token to the same family."""

    @abstractmethod
    async def revoke_family(
        self, family_id: str, now: float, reason: str
    ) -> tuple[AccessTokenRecord, ...]:
        """Revoke a family (idempotent); return its access tokens that are not expired."""

    @abstractmethod
    async def revoke_user(
        self, user_id: str, now: float, reason: str
    ) -> tuple[AccessTokenRecord, ...]:
        """Revoke every family of a user; return their unexpired access tokens."""

    @abstractmethod
    async def purge(self, now: float) -> int:
        """Delete rows that can no longer matter; return how many."""


class RevocationStore(ABC):
    """The deny-list of access-token ``jti`` values and per-user revoked-before markers."""

    @abstractmethod
    async def deny(self, entries: Sequence[tuple[str, float]], now: float) -> None:
        """Deny-list ``(jti, exp)`` pairs until their ``exp``."""

    @abstractmethod
    async def set_user_marker(self, user_id: str, revoked_before: float, keep_until: float) -> None:
        """Reject the user's access tokens issued before ``revoked_before``."""

    @abstractmethod
    async def is_denied(self, jti: str, now: float) -> bool:
        """Authoritative deny-list lookup."""

    @abstractmethod
    async def user_marker(self, user_id: str, now: float) -> float | None:
        """The latest revoked-before marker of a user, if any is still relevant."""

    @abstractmethod
    async def changes_since(self, cursor: int, now: float) -> RevocationChanges:
        """Entries added after ``cursor`` (0: everything still relevant).

        Every entry added after ``cursor`` is returned; entries from shortly before it may be
        returned again (so that out-of-order commits are never skipped), and callers apply
        changes idempotently.
        """

    @abstractmethod
    async def purge(self, now: float) -> int:
        """Drop entries whose tokens have expired."""


class RateLimiter(ABC):
    """Fixed-window counters for login throttling.

    A window starts at the first hit after the previous one ended. ``window`` is given on every
    call and may grow between calls (login backoff); the counter then lives longer."""

    @abstractmethod
    async def hit(self, key: str, window: float, now: float) -> tuple[int, float]:
        """Count one event atomically; return ``(count in window including this one, seconds
        until the window resets)``. Of N concurrent hits exactly one sees each count."""

    @abstractmethod
    async def peek(self, key: str, window: float, now: float) -> tuple[int, float]:
        """Like :meth:`hit` without counting."""

    @abstractmethod
    async def release(self, key: str, window: float, now: float) -> None:
        """Take back one event counted by :meth:`hit` in the current window (never below 0).

        Login throttling reserves an attempt with :meth:`hit` before the password check and
        releases it when the attempt turns out not to be a failure."""

    @abstractmethod
    async def reset(self, key: str) -> None:
        """Forget a counter (e.g. after a successful login)."""

    @abstractmethod
    async def purge(self, started_before: float) -> int:
        """Delete counters whose window started before ``started_before`` (a store whose
        counters expire by themselves returns 0)."""


class KeyStore(ABC):
    """The persisted signing-key ring."""

    @abstractmethod
    async def list(self) -> list[KeyRecord]:
        """All keys, oldest activation first."""

    @abstractmethod
    async def add(self, record: KeyRecord) -> None:
        """Insert a key."""

    @abstractmethod
    async def add_first(self, record: KeyRecord, same_ring: Callable[[KeyRecord], bool]) -> bool:
        """Insert ``record`` unless an unrevoked key of its ring (``same_ring``) exists, as one
        atomic step across processes; return whether it was inserted. Instances or workers
        that start together on an empty database thus create one first key, not one each."""

    @abstractmethod
    async def delete(self, kid: str) -> None:
        """Remove a key (only once nothing it signed can still be valid)."""

    @abstractmethod
    async def revoke(self, kid: str, now: float, replacement: KeyRecord | None = None) -> bool:
        """Withdraw a key at ``now`` and insert ``replacement`` (if any) in one transaction.

        Return False (and change nothing) when no unrevoked key ``kid`` exists."""


@dataclass(frozen=True, slots=True)
class ClientRecord:
    """A registered OAuth client (RFC 7591 §2 metadata names). ``scopes`` empty means the
    OpenID scopes ``openid profile email offline_access``."""

    client_id: str
    name: str
    secret_hash: str | None = field(repr=False)  # None for public clients
    auth_method: str  # client_secret_basic|client_secret_post|private_key_jwt|none
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    scopes: tuple[str, ...]
    first_party: bool
    backchannel_logout_uri: str | None
    jwks_uri: str | None
    jwks: dict[str, Any] | None
    id_token_signed_response_alg: str
    default_audience: str | None
    created_at: float
    resources: tuple[str, ...] = ()  # RFC 8707 resource indicators it may ask for
    dpop_bound_access_tokens: bool = False  # RFC 9449 §5.2: every token request uses DPoP
    require_par: bool = False  # RFC 9126 §6 require_pushed_authorization_requests
    # token-exchange policy (RFC 8693; migration 0008): the audiences it may exchange tokens
    # for, the scopes an exchanged token may carry (empty: the subject's), and the other
    # clients whose client-credentials token it may present as ``actor_token``
    exchange_audiences: tuple[str, ...] = ()
    exchange_scopes: tuple[str, ...] = ()
    exchange_actors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """An authorization code (RFC 6749 §4.1.2), known only by the SHA-256 of its value."""

    code_hash: str
    client_id: str
    user_id: str
    redirect_uri: str
    code_challenge: str
    scope: tuple[str, ...]
    nonce: str | None
    auth_time: float
    sid: str
    resource: tuple[str, ...]
    created_at: float
    expires_at: float
    redeemed_at: float | None = None
    family_id: str | None = None  # the grant (refresh family) the redemption opened
    dpop_jkt: str | None = None  # RFC 9449 §10: redeemed only with a proof by this key


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """What a user granted a client through one code: the refresh family's OAuth side."""

    family_id: str
    client_id: str
    user_id: str
    scope: tuple[str, ...]
    resource: tuple[str, ...]
    sid: str
    auth_time: float
    nonce: str | None = None


class ConsumeOutcome(enum.Enum):
    """What :meth:`CodeStore.consume` did."""

    REDEEMED = "redeemed"  # the caller won: code spent, family + grant stored
    REPLAYED = "replayed"  # already spent: the caller must revoke what it issued
    EXPIRED = "expired"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class ConsumeResult:
    """Outcome of a code redemption with the stored code (None when unknown) and, when the
    store read it in the same transaction, whether the code's user is active (exists and is
    not disabled; None: not read, the caller reads the user)."""

    outcome: ConsumeOutcome
    code: CodeRecord | None = None
    user_active: bool | None = None


class ClientStore(ABC):
    """Registered OAuth clients."""

    @abstractmethod
    async def create(self, client: ClientRecord) -> None:
        """Insert a client; raise ``ValueError`` when the id exists."""

    @abstractmethod
    async def get(self, client_id: str) -> ClientRecord | None:
        """A client by id."""

    @abstractmethod
    async def list(self) -> list[ClientRecord]:
        """All clients, oldest first."""

    @abstractmethod
    async def delete(self, client_id: str) -> bool:
        """Remove a client; False when unknown."""

    @abstractmethod
    async def set_secret(self, client_id: str, secret_hash: str) -> bool:
        """Replace a confidential client's secret hash; False when unknown."""


class CodeStore(ABC):
    """Authorization codes and the grants their redemption opens."""

    @abstractmethod
    async def create(self, code: CodeRecord) -> None:
        """Store a new code."""

    @abstractmethod
    async def consume(
        self,
        code_hash: str,
        now: float,
        family: FamilyRecord,
        refresh_hash: str,
        access: tuple[str, float] | None = None,
    ) -> ConsumeResult:
        """Spend a code once (RFC 6749 §4.1.2, single use). ``family`` gets the code's
        ``user_id`` and ``client_id``; ``access`` is the ``(jti, exp)`` of the access token
        the winner will be issued, recorded for the family in the same transaction (so a
        concurrent replay that revokes the family deny-lists it, and the winner still gets
        its answer).

        Of many concurrent calls exactly one gets ``REDEEMED``: in the same transaction the
        code is marked redeemed by ``family`` and ``family`` (with its first refresh token
        ``refresh_hash``) and its :class:`GrantRecord` are stored, so a replay that sees the
        spent code always finds the family to revoke."""

    @abstractmethod
    async def grant(self, family_id: str) -> GrantRecord | None:
        """The grant of a family opened by a code, or None (first-party family)."""

    @abstractmethod
    async def purge(self, now: float) -> int:
        """Delete expired codes (and grants whose family is gone); return how many."""


class AssertionStore(ABC):
    """``jti`` values of client assertions already used (RFC 7523 §3, item 7)."""

    @abstractmethod
    async def use(self, client_id: str, jti: str, exp: float, now: float) -> bool:
        """Record ``jti`` for ``client_id`` until ``exp``; False when it was seen before."""

    @abstractmethod
    async def purge(self, now: float) -> int:
        """Drop entries past their ``exp``."""


class DpopStore(ABC):
    """DPoP state shared by every instance (RFC 9449): proofs already seen (§11.1) and the
    key a public client's refresh family is bound to (§5)."""

    @abstractmethod
    async def use_proof(self, jkt: str, jti: str, exp: float, now: float) -> bool:
        """Record the proof ``jti`` of key ``jkt`` until ``exp``; False when it was seen."""

    @abstractmethod
    async def bind(self, family_id: str, jkt: str) -> None:
        """Bind a refresh family to the thumbprint ``jkt`` (idempotent)."""

    @abstractmethod
    async def binding(self, family_id: str) -> str | None:
        """The thumbprint a refresh family is bound to, or None."""

    @abstractmethod
    async def purge(self, now: float) -> int:
        """Drop proofs past their window and bindings of deleted families."""


@dataclass(frozen=True, slots=True)
class ParRecord:
    """A pushed authorization request (RFC 9126 §2): the validated parameters, bound to the
    client that pushed them, known only by the SHA-256 of its ``request_uri``."""

    uri_hash: str
    client_id: str
    params: tuple[tuple[str, str], ...]
    created_at: float
    expires_at: float


class ParStore(ABC):
    """Pushed authorization requests (RFC 9126)."""

    @abstractmethod
    async def create(self, record: ParRecord) -> None:
        """Store a pushed request."""

    @abstractmethod
    async def consume(self, uri_hash: str, client_id: str, now: float) -> ParRecord | None:
        """Spend a ``request_uri`` once (RFC 9126 §4: "one-time use"): None when it is
        unknown, used already, expired or was pushed by another client. Of concurrent calls
        at most one gets the record."""

    @abstractmethod
    async def purge(self, now: float) -> int:
        """Delete expired requests; return how many."""


@dataclass(frozen=True, slots=True)
class DeviceCodeRecord:
    """A device authorization (RFC 8628 §3.2), known by the SHA-256 of its ``device_code``
    and by its ``user_code`` (stored normalised: eight letters, no dash)."""

    code_hash: str
    user_code: str
    client_id: str
    scope: tuple[str, ...]
    resource: tuple[str, ...]
    created_at: float
    expires_at: float
    interval: float
    last_polled_at: float | None = None
    status: str = "pending"  # pending | approved | denied
    user_id: str | None = None
    sid: str | None = None  # the SSO session that approved it (audit; not the grant's sid)
    auth_time: float | None = None
    decided_at: float | None = None
    redeemed_at: float | None = None
    family_id: str | None = None


class PollOutcome(enum.Enum):
    """What one poll of the token endpoint finds (RFC 8628 §3.5)."""

    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    APPROVED = "approved"  # the caller may now try :meth:`DeviceCodeStore.redeem`
    DENIED = "access_denied"
    EXPIRED = "expired_token"
    REDEEMED = "redeemed"  # tokens were issued already
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class PollResult:
    """Outcome of a poll with the stored device code (None when unknown)."""

    outcome: PollOutcome
    device: DeviceCodeRecord | None = None


class DeviceCodeStore(ABC):
    """Device codes of the device authorization grant (RFC 8628)."""

    @abstractmethod
    async def create(self, record: DeviceCodeRecord) -> bool:
        """Store a new device code; False when its ``user_code`` is taken (pick another)."""

    @abstractmethod
    async def pending(self, user_code: str, now: float) -> DeviceCodeRecord | None:
        """The unexpired, undecided device code with this user code, else None."""

    @abstractmethod
    async def decide(
        self, user_code: str, now: float, *, approve: bool, user_id: str, sid: str,
        auth_time: float,
    ) -> bool:
        """Approve or deny a pending, unexpired code once; False when it is not pending."""

    @abstractmethod
    async def poll(self, code_hash: str, client_id: str, now: float) -> PollResult:
        """One poll by ``client_id`` (a code of another client is ``NOT_FOUND``). A poll
        sooner than ``interval`` after the previous one is ``SLOW_DOWN`` and adds 5 seconds
        to the interval (RFC 8628 §3.5); of concurrent polls at most one passes."""

    @abstractmethod
    async def redeem(
        self,
        code_hash: str,
        now: float,
        family: FamilyRecord,
        refresh_hash: str,
        access: tuple[str, float] | None = None,
    ) -> DeviceCodeRecord | None:
        """Spend an approved code once, storing ``family`` (with its first refresh token),
        its grant and the access token ``(jti, exp)`` in the same transaction, as
        :meth:`CodeStore.consume` does. Of concurrent calls exactly one gets the record.
        The grant's ``sid`` is ``family.id``: the device is its own session, so signing out of
        the browser that approved it does not sign the device out."""

    @abstractmethod
    async def purge(self, now: float) -> int:
        """Delete device codes expired for a day; return how many."""


class Store(ABC):
    """A bundle of the interfaces above, with a lifecycle."""

    users: UserStore
    sessions: SessionStore
    revocations: RevocationStore
    rate_limits: RateLimiter
    keys: KeyStore
    sso: SsoStore  # single sign-on state (store/sso.py), always SQL
    clients: ClientStore
    codes: CodeStore
    assertions: AssertionStore
    dpop: DpopStore
    par: ParStore  # RFC 9126 pushed authorization requests, always SQL
    devices: DeviceCodeStore  # RFC 8628 device codes, always SQL
    feed: SqlRevocationFeed  # cursor reads of the revocation journal (store/feed.py)

    @abstractmethod
    async def start(self) -> None:
        """Connect and bring the schema up to date."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""

    @abstractmethod
    async def ping(self) -> bool:
        """True when the backend answers."""
