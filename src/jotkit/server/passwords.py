"""Password rules and hashing with argon2id (RFC 9106) via argon2-cffi.

* Passwords are NFKC-normalised before hashing and before verifying (NIST SP 800-63B §5.1.1.2),
  so the same password typed as NFC or NFD (or with compatibility characters) is the same
  password. Hashes made before normalisation was introduced still verify: when the typed
  password is not in NFKC form, the raw form is tried as well, and the hash is upgraded.
* New passwords need :data:`MIN_PASSWORD_LENGTH` characters (counted after normalisation) and at
  most :data:`MAX_PASSWORD_LENGTH` characters as typed; login refuses longer input with the same
  constant, so every password ``jotkit users add`` accepts can log in.
* New passwords on the common-secret list shipped for the token audit
  (``audit_rules.json``, read through :func:`jotkit.audit.load_rules`) are refused, also with
  different case or with digits and symbols appended (``Password123!``).
* The argon2id cost cannot go below :data:`ARGON2_FLOOR` (the OWASP Password Storage Cheat
  Sheet's minimum configurations) unless ``insecure_test_costs=True`` says so explicitly.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import logging
import re
import secrets
import unicodedata
from types import MappingProxyType

from argon2 import PasswordHasher, Type
from argon2.exceptions import (
    HashingError,
    InvalidHashError,
    VerificationError,
    VerifyMismatchError,
)
from argon2.low_level import core, error_to_str, ffi, lib  # type: ignore[attr-defined]

__all__ = [
    "ARGON2_FLOOR",
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "PasswordPolicy",
    "WeakPassword",
    "argon2_floor_problem",
    "normalize_password",
]

_log = logging.getLogger("jotkit.server")

MIN_PASSWORD_LENGTH = 8
"""Characters (after NFKC) a new password needs (NIST SP 800-63B §5.1.1.2, OWASP ASVS 2.1.1)."""

MAX_PASSWORD_LENGTH = 1024
"""Characters as typed: the most ``users add`` accepts and the most ``/auth/login`` reads."""

ARGON2_FLOOR: MappingProxyType[int, int] = MappingProxyType(
    {1: 47104, 2: 19456, 3: 12288, 4: 9216, 5: 7168}
)
"""The least argon2id memory cost (KiB) per time cost, from the OWASP Password Storage Cheat
Sheet (m=46 MiB t=1, m=19 MiB t=2, m=12 MiB t=3, m=9 MiB t=4, m=7 MiB t=5; p=1). A time cost
above 5 still needs 7 MiB."""


class WeakPassword(ValueError):
    """A new password breaks the password rules; the message says which one."""


def normalize_password(password: str) -> str:
    """NFKC form of ``password`` (NIST SP 800-63B §5.1.1.2)."""
    return unicodedata.normalize("NFKC", password)


def argon2_floor_problem(time_cost: int, memory_cost: int, parallelism: int) -> str | None:
    """Why these argon2id costs are below :data:`ARGON2_FLOOR`, or None when they are not."""
    if time_cost < 1 or parallelism < 1:
        return "time cost and parallelism must be >= 1"
    need = ARGON2_FLOOR[min(time_cost, 5)]
    if memory_cost < need:
        return (
            f"argon2id memory cost {memory_cost} KiB with time cost {time_cost} is below the "
            f"floor of {need} KiB (OWASP: m=19456 KiB t=2, m=12288 KiB t=3, ...)"
        )
    return None


@functools.lru_cache(maxsize=1)
def _common_secrets() -> frozenset[str]:
    from jotkit.audit import load_rules  # the one copy of the list, shared with the audit

    return frozenset(s.decode("utf-8").casefold() for s in load_rules().secrets)


def _stem(text: str) -> str:
    """``text`` without trailing digits and punctuation (``password123!`` -> ``password``)."""
    end = len(text)
    while end and not text[end - 1].isalpha():
        end -= 1
    return text[:end]


_PHC_ARGON2 = re.compile(
    r"\$argon2(id|i|d)(?:\$v=(19|16))?"
    r"\$m=([1-9][0-9]{0,9}),t=([1-9][0-9]{0,9}),p=([1-9][0-9]{0,7})"
    r"\$([A-Za-z0-9+/]{11,86})\$([A-Za-z0-9+/]{22,86})"
)
"""An argon2 hash in the PHC string format as the reference encoder writes it (salt and hash in
unpadded standard base64; no ``v=`` means version 1.0, RFC 9106 §3.1)."""

_TYPES = {"id": Type.ID, "i": Type.I, "d": Type.D}
_VERSIONS = {"19": 0x13, "16": 0x10, None: 0x10}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes | None:
    """Unpadded standard base64, canonical only (no stray bits in the last character, as
    libargon2's decoder requires); None otherwise."""
    try:
        data = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return data if _b64(data) == text else None


def _argon2_raw(
    secret: bytes,
    salt: bytes,
    t: int,
    m: int,
    lanes: int,
    out_len: int,
    kind: Type = Type.ID,
    version: int = 0x13,
) -> bytes:
    """argon2 (RFC 9106 §3) of ``secret`` computed by argon2-cffi's bundled libargon2 with all
    ``lanes`` on the calling thread: the same bytes as ``lanes`` threads give (the lane count,
    not the thread count, is a parameter of the function), but one core instead of ``lanes``."""
    out = ffi.new("uint8_t[]", out_len)
    pwd = ffi.new("uint8_t[]", secret)
    csalt = ffi.new("uint8_t[]", salt)
    ctx = ffi.new(
        "argon2_context *",
        {
            "out": out,
            "outlen": out_len,
            "pwd": pwd,
            "pwdlen": len(secret),
            "salt": csalt,
            "saltlen": len(salt),
            "secret": ffi.NULL,
            "secretlen": 0,
            "ad": ffi.NULL,
            "adlen": 0,
            "t_cost": t,
            "m_cost": m,
            "lanes": lanes,
            "threads": 1,
            "version": version,
            "allocate_cbk": ffi.NULL,
            "free_cbk": ffi.NULL,
            "flags": lib.ARGON2_DEFAULT_FLAGS,
        },
    )
    rc = core(ctx, kind.value)
    if rc != lib.ARGON2_OK:
        raise HashingError(error_to_str(rc))
    return bytes(ffi.buffer(out, out_len))


def _verify_one_thread(encoded: str, password: str) -> bool | None:
    """Verify ``password`` against an argon2 PHC hash (any type and version) on this thread
    alone, so every stored hash costs what the dummy of unknown users costs; None when the hash
    is not in the reference encoder's exact form (the caller then asks argon2-cffi)."""
    match = _PHC_ARGON2.fullmatch(encoded)
    if match is None:
        return None
    kind, version = _TYPES[match.group(1)], _VERSIONS[match.group(2)]
    m, t, p = (int(match.group(i)) for i in (3, 4, 5))
    salt, digest = _unb64(match.group(6)), _unb64(match.group(7))
    if salt is None or digest is None:
        return None
    if m < 8 * p or m > 0xFFFFFFFF or t > 0xFFFFFFFF or p > 0xFFFFFF:
        return None
    computed = _argon2_raw(password.encode("utf-8"), salt, t, m, p, len(digest), kind, version)
    return hmac.compare_digest(computed, digest)


class PasswordPolicy:
    """Check new passwords, hash and verify. Unknown users are verified against a dummy hash
    so the login path costs the same whether or not the email exists."""

    def __init__(
        self,
        time_cost: int = 3,
        memory_cost: int = 65536,
        parallelism: int = 4,
        *,
        insecure_test_costs: bool = False,
    ) -> None:
        problem = argon2_floor_problem(time_cost, memory_cost, parallelism)
        if problem is not None:
            if not insecure_test_costs:
                raise ValueError(problem)
            _log.warning("INSECURE password hashing for tests: %s", problem)
        self._hasher = PasswordHasher(
            time_cost=time_cost,
            memory_cost=memory_cost,
            parallelism=parallelism,
            hash_len=32,
            salt_len=16,
            type=Type.ID,
        )
        self._dummy = self.hash(secrets.token_urlsafe(24))

    @staticmethod
    def check_new(password: str, email: str | None = None) -> str:
        """Return the normalised ``password`` or raise :class:`WeakPassword` (too short, too
        long, common, or the email / its local part)."""
        if len(password) > MAX_PASSWORD_LENGTH:
            raise WeakPassword(f"the password must be at most {MAX_PASSWORD_LENGTH} characters")
        normalized = normalize_password(password)
        try:
            normalized.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (e.g. undecodable bytes in argv)
            raise WeakPassword("the password must be valid Unicode text") from None
        if len(normalized) < MIN_PASSWORD_LENGTH:
            raise WeakPassword(f"the password must be at least {MIN_PASSWORD_LENGTH} characters")
        folded = normalized.casefold()
        common = _common_secrets()
        stem = _stem(folded)
        if folded in common or (stem and stem in common):
            raise WeakPassword("the password is on the list of common passwords")
        if email:
            address = email.strip().casefold()
            if folded in {address, address.partition("@")[0]}:
                raise WeakPassword("the password must not be the email address")
        return normalized

    def hash(self, password: str) -> str:
        """A fresh argon2id v1.3 hash (RFC 9106; PHC string format) of the NFKC form of
        ``password``, its lanes computed on the calling thread (see :func:`_argon2_raw`)."""
        p = self._hasher
        salt = secrets.token_bytes(p.salt_len)
        digest = _argon2_raw(
            normalize_password(password).encode("utf-8"),
            salt,
            p.time_cost,
            p.memory_cost,
            p.parallelism,
            p.hash_len,
        )
        return (
            f"$argon2id$v=19$m={p.memory_cost},t={p.time_cost},p={p.parallelism}"
            f"${_b64(salt)}${_b64(digest)}"
        )

    def _matches(self, encoded: str, password: str) -> bool:
        """Whether ``password`` matches ``encoded``: on this thread alone for a hash in the
        reference encoding, else (other spellings argon2-cffi accepts) through argon2-cffi. A
        NUL never matches: libargon2 would read a C string only up to it."""
        if "\x00" in encoded:
            return False
        try:
            ok = _verify_one_thread(encoded, password)
            if ok is not None:
                return ok
            return self._hasher.verify(encoded, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError, HashingError):
            return False
        except UnicodeError:  # a non-ASCII stored hash, or a password with a lone surrogate
            return False

    def verify(self, stored_hash: str | None, password: str) -> tuple[bool, bool]:
        """Return ``(ok, needs_rehash)``. ``stored_hash=None`` burns the same time and fails.

        The NFKC form is checked first; a password typed in another form is also checked as
        typed (a hash from before normalisation), and then needs a rehash."""
        target = self._dummy if stored_hash is None else stored_hash
        normalized = normalize_password(password)
        candidates = (normalized,) if normalized == password else (normalized, password)
        for index, candidate in enumerate(candidates):
            if not self._matches(target, candidate):
                continue
            if stored_hash is None:
                return False, False
            return True, index > 0 or self._needs_rehash(stored_hash)
        return False, False

    def _needs_rehash(self, stored_hash: str) -> bool:
        """Whether a hash that just matched should be made again with the current costs (also
        when argon2-cffi cannot parse its parameters)."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except (InvalidHashError, ValueError):
            return True
