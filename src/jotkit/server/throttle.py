"""Login throttling per account and per client address (fixed windows)."""

from __future__ import annotations

import hashlib
import math

from .errors import ServiceError
from .store.base import RateLimiter

__all__ = ["ClientAuthThrottle", "LoginThrottle"]


def _key(kind: str, value: str) -> str:
    # Hash so that raw emails/addresses never sit in the counter table.
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


class LoginThrottle:
    """Every attempt counts against the client address; failures count against the account.
    An account is blocked after ``account_limit`` failures in ``account_window`` seconds, an
    address after ``ip_limit`` attempts in ``ip_window`` seconds (HTTP 429, ``Retry-After``)."""

    def __init__(
        self,
        limiter: RateLimiter,
        *,
        account_limit: int,
        account_window: float,
        ip_limit: int,
        ip_window: float,
    ) -> None:
        self._limiter = limiter
        self._account_limit = account_limit
        self._account_window = account_window
        self._ip_limit = ip_limit
        self._ip_window = ip_window

    @staticmethod
    def _reject(retry_after: float) -> ServiceError:
        seconds = max(1, math.ceil(retry_after))
        return ServiceError(
            "rate_limited",
            f"Too many login attempts; retry after {seconds} s.",
            headers={"Retry-After": str(seconds)},
        )

    async def before_attempt(self, email: str, client_ip: str, now: float) -> None:
        """Count the attempt for the address; raise 429 when either limit is reached."""
        count, reset = await self._limiter.hit(_key("ip", client_ip), self._ip_window, now)
        if count > self._ip_limit:
            raise self._reject(reset)
        failures, reset = await self._limiter.peek(_key("acct", email), self._account_window, now)
        if failures >= self._account_limit:
            raise self._reject(reset)

    async def failed(self, email: str, now: float) -> None:
        """Count a failed attempt against the account."""
        await self._limiter.hit(_key("acct", email), self._account_window, now)

    async def succeeded(self, email: str) -> None:
        """Clear the account's failure counter."""
        await self._limiter.reset(_key("acct", email))


class ClientAuthThrottle:
    """Failed client authentications (``/oauth/*``, RFC 6749 §2.3.1, §10.10) per client
    address: past ``limit`` failures in ``window`` seconds every attempt gets 429."""

    def __init__(self, limiter: RateLimiter, *, limit: int, window: float) -> None:
        self._limiter = limiter
        self._limit = limit
        self._window = window

    async def check(self, client_ip: str, now: float) -> None:
        """Raise 429 (``Retry-After``) when the address has used up its failures."""
        key = _key("client-auth", client_ip)
        failures, reset = await self._limiter.peek(key, self._window, now)
        if failures >= self._limit:
            seconds = max(1, math.ceil(reset))
            raise ServiceError(
                "rate_limited",
                f"Too many failed client authentications; retry after {seconds} s.",
                headers={"Retry-After": str(seconds)},
            )

    async def failed(self, client_ip: str, now: float) -> None:
        """Count one failed client authentication."""
        await self._limiter.hit(_key("client-auth", client_ip), self._window, now)
