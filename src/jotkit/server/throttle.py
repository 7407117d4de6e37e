"""Login throttling (OWASP ASVS 2.2.1): per address, per (account, address) with backoff, and
a looser per-account ceiling. The scheme, its numbers and the 429 are described in
docs/service.md, *Login throttling*.

Every attempt is **reserved** before the password is checked: each counter is bumped with one
atomic store operation (:meth:`RateLimiter.hit`: ``INSERT ... ON CONFLICT DO UPDATE ...
RETURNING`` on PostgreSQL, a write transaction on SQLite, a Lua script on Redis) and the attempt
goes ahead only when the count it got is within the limit. So of N concurrent attempts at most
the limit reach argon2, whichever instance answers them. The reservation is settled afterwards:
a failure keeps it, a success releases it and clears the (account, address) counters.

Counters (fixed windows that start at their first hit; keys are SHA-256 of email / address):

* ``ip``: every attempt from an address (``login_ip_limit`` per ``login_ip_window``).
* ``pair``: failures for one account from one address (``login_pair_limit`` per pair window).
  Each time the limit is reached is a *lockout*; the pair window doubles with every lockout
  remembered (``login_backoff_memory``), from ``login_pair_window`` up to ``login_backoff_max``.
* ``acct``: failures for one account from every address (``login_account_limit`` per
  ``login_account_window``), the ceiling that stops guessing spread over many addresses.

A stranger's failures from other addresses only touch their own ``pair`` counters and the
ceiling, so the owner, from their own address, still logs in until the ceiling is reached.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass

from .errors import ServiceError
from .store.base import RateLimiter

__all__ = ["ClientAuthThrottle", "LoginAttempt", "LoginThrottle"]


def _key(kind: str, *values: str) -> str:
    # Hash so that raw emails/addresses never sit in the counter table.
    return f"{kind}:{hashlib.sha256(chr(0).join(values).encode()).hexdigest()}"


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """A reserved login attempt; settle it with :meth:`LoginThrottle.failed` or
    :meth:`LoginThrottle.succeeded`."""

    account_key: str
    pair_key: str
    strikes_key: str
    ip_key: str
    pair_count: int  # this attempt's place in the pair window (1 .. pair limit)
    lockouts: int  # lockouts of the pair remembered when the attempt was reserved
    now: float


class LoginThrottle:
    """Reserve login attempts against the address, (account, address) and account counters;
    refuse with HTTP 429 and ``Retry-After`` when a limit is reached."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        account_limit: int,
        account_window: float,
        ip_limit: int,
        ip_window: float,
        pair_limit: int,
        pair_window: float,
        backoff_max: float,
        backoff_memory: float,
    ) -> None:
        self._limiter = limiter
        self._account_limit = account_limit
        self._account_window = account_window
        self._ip_limit = ip_limit
        self._ip_window = ip_window
        self._pair_limit = pair_limit
        self._pair_window = pair_window
        self._backoff_max = max(backoff_max, pair_window)
        self._backoff_memory = backoff_memory

    @staticmethod
    def _reject(retry_after: float) -> ServiceError:
        seconds = max(1, math.ceil(retry_after))
        return ServiceError(
            "rate_limited",
            f"Too many login attempts; retry after {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )

    def pair_window(self, lockouts: int) -> float:
        """The (account, address) window after ``lockouts`` remembered lockouts: the base
        window for the first, doubled for each further one, capped at the backoff maximum."""
        if lockouts <= 1:
            return self._pair_window
        return min(self._backoff_max, self._pair_window * 2.0 ** min(lockouts - 1, 64))

    async def reserve(self, email: str, client_ip: str, now: float) -> LoginAttempt:
        """Count the attempt against every counter before the password is checked; raise
        429 when a limit is reached (a refusal by the account ceiling takes back the
        (account, address) count it had made)."""
        limiter = self._limiter
        pair_key, strikes_key = _key("pair", email, client_ip), _key("strikes", email, client_ip)
        ip_key = _key("ip", client_ip)
        (count, reset), (lockouts, _) = await asyncio.gather(  # one round trip, not two
            limiter.hit(ip_key, self._ip_window, now),
            limiter.peek(strikes_key, self._backoff_memory, now),
        )
        if count > self._ip_limit:
            raise self._reject(reset)
        window = self.pair_window(lockouts)
        pair_count, reset = await limiter.hit(pair_key, window, now)
        if pair_count > self._pair_limit:
            raise self._reject(reset)
        account_key = _key("acct", email)
        count, reset = await limiter.hit(account_key, self._account_window, now)
        if count > self._account_limit:
            await limiter.release(pair_key, window, now)
            raise self._reject(reset)
        return LoginAttempt(
            account_key, pair_key, strikes_key, ip_key, pair_count, lockouts, now
        )

    async def failed(self, attempt: LoginAttempt) -> None:
        """Settle a failed attempt: it stays counted. The failure that fills the pair window
        is a lockout, which lengthens the pair window (backoff)."""
        if attempt.pair_count != self._pair_limit:
            return
        lockouts, _ = await self._limiter.hit(
            attempt.strikes_key, self._backoff_memory, attempt.now
        )
        # Count the lockout in the pair window as well: it keeps the counter alive (Redis TTL)
        # for the grown window.
        await self._limiter.hit(attempt.pair_key, self.pair_window(lockouts), attempt.now)

    @property
    def longest_window(self) -> float:
        """No counter matters longer than this after its window started."""
        return max(
            self._ip_window, self._backoff_max, self._backoff_memory, self._account_window
        )

    async def purge(self, now: float) -> int:
        """Delete counters that can no longer matter (the SQL table would grow with every
        email and address ever tried)."""
        return await self._limiter.purge(now - self.longest_window)

    async def cancel(self, attempt: LoginAttempt) -> None:
        """Give back an attempt whose password was never checked (the login was shed with
        503 because the argon2 pool was full): it counts neither as a failure nor against the
        address, pair or account limits."""
        limiter = self._limiter
        await asyncio.gather(
            limiter.release(attempt.ip_key, self._ip_window, attempt.now),
            limiter.release(attempt.pair_key, self.pair_window(attempt.lockouts), attempt.now),
            limiter.release(attempt.account_key, self._account_window, attempt.now),
        )

    async def succeeded(self, attempt: LoginAttempt) -> None:
        """Settle a successful attempt: it is not a failure, so the account ceiling gets it
        back, and this address's failure and lockout counters for the account are cleared."""
        limiter = self._limiter
        await asyncio.gather(
            limiter.release(attempt.account_key, self._account_window, attempt.now),
            limiter.reset(attempt.pair_key),
            *([limiter.reset(attempt.strikes_key)] if attempt.lockouts else []),
        )


class ClientAuthThrottle:
    """Failed client authentications (``/oauth/*``, RFC 6749 §2.3.1, §10.10) per client
    address: past ``limit`` failures in ``window`` seconds every attempt gets 429. With
    another ``kind`` it counts other failures the same way (wrong device user codes, RFC 8628
    §5.1)."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        limit: int,
        window: float,
        clear: dict[str, float] | None = None,
        kind: str = "client-auth",
        what: str = "client authentications",
    ) -> None:
        self._limiter = limiter
        self._limit = limit
        self._window = window
        self._kind = kind  # the counter's key prefix: another kind counts separately
        self._what = what
        # address -> monotonic time until which it is known to be under the limit: the token
        # endpoint's hot path reads the shared counter at most once a second per address. A
        # failure here updates it at once (``failed``); failures counted by other instances
        # are seen within that second.
        self._clear = clear

    async def check(self, client_ip: str, now: float) -> None:
        """Raise 429 (``Retry-After``) when the address has used up its failures."""
        clear = self._clear
        if clear is not None and clear.get(client_ip, 0.0) > time.monotonic():
            return
        key = _key(self._kind, client_ip)
        failures, reset = await self._limiter.peek(key, self._window, now)
        if clear is not None and failures < self._limit:
            if len(clear) > 65536:
                clear.clear()
            clear[client_ip] = time.monotonic() + 1.0
        if failures >= self._limit:
            seconds = max(1, math.ceil(reset))
            raise ServiceError(
                "rate_limited",
                f"Too many failed {self._what}; retry after {seconds} s.",
                headers={"Retry-After": str(seconds)},
            )

    async def failed(self, client_ip: str, now: float) -> None:
        """Count one failed client authentication."""
        if self._clear is not None:
            self._clear.pop(client_ip, None)  # the next check reads the shared counter
        await self._limiter.hit(_key(self._kind, client_ip), self._window, now)
