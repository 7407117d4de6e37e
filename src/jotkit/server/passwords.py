"""Password hashing with argon2id (RFC 9106) via argon2-cffi."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["PasswordPolicy"]


class PasswordPolicy:
    """Hash and verify passwords; unknown users are verified against a dummy hash so the
    login path costs the same whether or not the email exists."""

    def __init__(self, time_cost: int = 3, memory_cost: int = 65536, parallelism: int = 4) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy = self._hasher.hash(secrets.token_urlsafe(24))

    def hash(self, password: str) -> str:
        """A fresh argon2id hash (PHC string format) of ``password``."""
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        """Return ``(ok, needs_rehash)``. ``stored_hash=None`` burns the same time and fails."""
        target = self._dummy if stored_hash is None else stored_hash
        try:
            self._hasher.verify(target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
        if stored_hash is None:
            return False, False
        return True, self._hasher.check_needs_rehash(stored_hash)
