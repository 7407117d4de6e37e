"""The JWE algorithm tables (RFC 7516 §4.1.1-2, RFC 7518 §4-5, RFC 8037 §3.2).

Immutable data only, beside :mod:`jotkit.algorithms` (the JWS table): one table
for key management (``alg``) and one for content encryption (``enc``). A
:class:`jotkit.Key` may be bound to a key-management algorithm, exactly as it
is bound to a JWS algorithm; nothing registers anything at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "CONTENT_ENCRYPTION",
    "ENCRYPTION_NAMES",
    "KEY_MANAGEMENT",
    "KEY_MANAGEMENT_NAMES",
    "ContentEncryption",
    "KeyManagement",
    "get_encryption",
    "get_key_management",
]

KeyManagementFamily = Literal["dir", "AESKW", "AESGCMKW", "RSA-OAEP", "RSA1_5", "ECDH-ES", "PBES2"]
KeyType = Literal["oct", "RSA", "EC", "OKP"]

#: Key-agreement curves (RFC 7518 §4.6, RFC 8037 §3.2).
ECDH_CURVES = ("P-256", "P-384", "P-521", "X25519", "X448")


@dataclass(frozen=True, slots=True)
class KeyManagement:
    """One JWE ``alg`` value (RFC 7518 §4.1) and what it requires of a key."""

    name: str
    family: KeyManagementFamily
    kty: KeyType
    hash_name: str | None = None
    """OAEP / PBES2-HMAC digest (``hashlib`` name), or ``None``."""
    wrap_size: int = 0
    """Octets of the AES key-encryption key (AES KW / GCM KW, ECDH-ES+KW, PBES2); 0 otherwise."""
    curves: tuple[str, ...] = ()
    """Allowed JWK ``crv`` values (ECDH-ES only)."""
    spec: str = ""
    """Where the algorithm is defined."""

    @property
    def direct(self) -> bool:
        """True when the CEK is the key or the agreed key itself (no JWE Encrypted Key)."""
        return self.family == "dir" or (self.family == "ECDH-ES" and self.wrap_size == 0)

    @property
    def digest_size(self) -> int:
        """Kept for the shape the key checks share with :class:`jotkit.Algorithm` (no HMAC key)."""
        return 0


@dataclass(frozen=True, slots=True)
class ContentEncryption:
    """One JWE ``enc`` value (RFC 7518 §5.1)."""

    name: str
    family: Literal["AES-GCM", "AES-CBC-HMAC"]
    key_size: int
    """Octets of the content encryption key (CEK); CBC-HMAC keys are MAC key || ENC key."""
    iv_size: int
    tag_size: int
    hash_name: str | None = None
    """HMAC digest for AES-CBC-HMAC-SHA2 (RFC 7518 §5.2.2)."""
    spec: str = ""


def _km(*algs: KeyManagement) -> Mapping[str, KeyManagement]:
    return MappingProxyType({a.name: a for a in algs})


def _ce(*encs: ContentEncryption) -> Mapping[str, ContentEncryption]:
    return MappingProxyType({e.name: e for e in encs})


KEY_MANAGEMENT: Mapping[str, KeyManagement] = _km(
    KeyManagement("dir", "dir", "oct", spec="RFC 7518 §4.5"),
    KeyManagement("A128KW", "AESKW", "oct", wrap_size=16, spec="RFC 7518 §4.4"),
    KeyManagement("A192KW", "AESKW", "oct", wrap_size=24, spec="RFC 7518 §4.4"),
    KeyManagement("A256KW", "AESKW", "oct", wrap_size=32, spec="RFC 7518 §4.4"),
    KeyManagement("A128GCMKW", "AESGCMKW", "oct", wrap_size=16, spec="RFC 7518 §4.7"),
    KeyManagement("A192GCMKW", "AESGCMKW", "oct", wrap_size=24, spec="RFC 7518 §4.7"),
    KeyManagement("A256GCMKW", "AESGCMKW", "oct", wrap_size=32, spec="RFC 7518 §4.7"),
    KeyManagement("RSA-OAEP", "RSA-OAEP", "RSA", "sha1", spec="RFC 7518 §4.3"),
    KeyManagement("RSA-OAEP-256", "RSA-OAEP", "RSA", "sha256", spec="RFC 7518 §4.3"),
    KeyManagement("RSA1_5", "RSA1_5", "RSA", spec="RFC 7518 §4.2"),
    KeyManagement("ECDH-ES", "ECDH-ES", "EC", curves=ECDH_CURVES, spec="RFC 7518 §4.6"),
    KeyManagement(
        "ECDH-ES+A128KW", "ECDH-ES", "EC", wrap_size=16, curves=ECDH_CURVES, spec="RFC 7518 §4.6"
    ),
    KeyManagement(
        "ECDH-ES+A192KW", "ECDH-ES", "EC", wrap_size=24, curves=ECDH_CURVES, spec="RFC 7518 §4.6"
    ),
    KeyManagement(
        "ECDH-ES+A256KW", "ECDH-ES", "EC", wrap_size=32, curves=ECDH_CURVES, spec="RFC 7518 §4.6"
    ),
    KeyManagement("PBES2-HS256+A128KW", "PBES2", "oct", "sha256", 16, spec="RFC 7518 §4.8"),
    KeyManagement("PBES2-HS384+A192KW", "PBES2", "oct", "sha384", 24, spec="RFC 7518 §4.8"),
    KeyManagement("PBES2-HS512+A256KW", "PBES2", "oct", "sha512", 32, spec="RFC 7518 §4.8"),
)
"""ECDH-ES entries name ``kty`` ``EC``; X25519/X448 keys (``OKP``, RFC 8037 §3.2) fit them too."""

CONTENT_ENCRYPTION: Mapping[str, ContentEncryption] = _ce(
    ContentEncryption("A128CBC-HS256", "AES-CBC-HMAC", 32, 16, 16, "sha256", "RFC 7518 §5.2.3"),
    ContentEncryption("A192CBC-HS384", "AES-CBC-HMAC", 48, 16, 24, "sha384", "RFC 7518 §5.2.4"),
    ContentEncryption("A256CBC-HS512", "AES-CBC-HMAC", 64, 16, 32, "sha512", "RFC 7518 §5.2.5"),
    ContentEncryption("A128GCM", "AES-GCM", 16, 12, 16, spec="RFC 7518 §5.3"),
    ContentEncryption("A192GCM", "AES-GCM", 24, 12, 16, spec="RFC 7518 §5.3"),
    ContentEncryption("A256GCM", "AES-GCM", 32, 12, 16, spec="RFC 7518 §5.3"),
)

KEY_MANAGEMENT_NAMES: tuple[str, ...] = tuple(KEY_MANAGEMENT)
ENCRYPTION_NAMES: tuple[str, ...] = tuple(CONTENT_ENCRYPTION)


def get_key_management(name: str) -> KeyManagement:
    """The table entry for a JWE ``alg``; ``ValueError`` for unknown names (caller misuse)."""
    try:
        return KEY_MANAGEMENT[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown JWE key management algorithm {name!r}; "
            f"supported: {', '.join(KEY_MANAGEMENT_NAMES)}"
        ) from None


def get_encryption(name: str) -> ContentEncryption:
    """The table entry for a JWE ``enc``; ``ValueError`` for unknown names (caller misuse)."""
    try:
        return CONTENT_ENCRYPTION[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown JWE content encryption {name!r}; supported: {', '.join(ENCRYPTION_NAMES)}"
        ) from None
