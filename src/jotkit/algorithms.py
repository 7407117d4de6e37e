"""The JWS algorithm table (RFC 7518 §3, RFC 8037 §3.1, RFC 8812 §3.2, RFC 9864 §2).

Immutable data only: each algorithm names the key type it needs, the curve(s)
it accepts and the hash it uses. Keys and the JWS layer look algorithms up
here; nothing registers anything at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ALGORITHMS",
    "ALGORITHM_NAMES",
    "Algorithm",
    "AlgorithmName",
    "get_algorithm",
]

AlgorithmName = Literal[
    "HS256", "HS384", "HS512",
    "RS256", "RS384", "RS512",
    "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "ES256K",
    "EdDSA", "Ed25519", "Ed448",
]  # fmt: skip

Family = Literal["HMAC", "RSASSA-PKCS1-v1_5", "RSASSA-PSS", "ECDSA", "EdDSA"]
KeyType = Literal["oct", "RSA", "EC", "OKP"]


@dataclass(frozen=True, slots=True)
class Algorithm:
    """One JWS ``alg`` value and what it requires of a key."""

    name: str
    family: Family
    kty: KeyType
    hash_name: str | None
    """``hashlib`` name of the digest (``None`` for EdDSA, which hashes internally)."""
    curves: tuple[str, ...] = ()
    """Allowed JWK ``crv`` values (EC and OKP only)."""
    coordinate_size: int = 0
    """ECDSA: octets of one coordinate; a JWS signature is ``2 * coordinate_size`` octets."""
    spec: str = ""
    """Where the algorithm is defined."""

    @property
    def digest_size(self) -> int:
        """Octets of the hash output (HMAC minimum key size, PSS salt length)."""
        return {"sha256": 32, "sha384": 48, "sha512": 64}.get(self.hash_name or "", 0)


def _table(*algs: Algorithm) -> Mapping[str, Algorithm]:
    return MappingProxyType({a.name: a for a in algs})


ALGORITHMS: Mapping[str, Algorithm] = _table(
    Algorithm("HS256", "HMAC", "oct", "sha256", spec="RFC 7518 §3.2"),
    Algorithm("HS384", "HMAC", "oct", "sha384", spec="RFC 7518 §3.2"),
    Algorithm("HS512", "HMAC", "oct", "sha512", spec="RFC 7518 §3.2"),
    Algorithm("RS256", "RSASSA-PKCS1-v1_5", "RSA", "sha256", spec="RFC 7518 §3.3"),
    Algorithm("RS384", "RSASSA-PKCS1-v1_5", "RSA", "sha384", spec="RFC 7518 §3.3"),
    Algorithm("RS512", "RSASSA-PKCS1-v1_5", "RSA", "sha512", spec="RFC 7518 §3.3"),
    Algorithm("PS256", "RSASSA-PSS", "RSA", "sha256", spec="RFC 7518 §3.5"),
    Algorithm("PS384", "RSASSA-PSS", "RSA", "sha384", spec="RFC 7518 §3.5"),
    Algorithm("PS512", "RSASSA-PSS", "RSA", "sha512", spec="RFC 7518 §3.5"),
    Algorithm("ES256", "ECDSA", "EC", "sha256", ("P-256",), 32, spec="RFC 7518 §3.4"),
    Algorithm("ES384", "ECDSA", "EC", "sha384", ("P-384",), 48, spec="RFC 7518 §3.4"),
    Algorithm("ES512", "ECDSA", "EC", "sha512", ("P-521",), 66, spec="RFC 7518 §3.4"),
    Algorithm("ES256K", "ECDSA", "EC", "sha256", ("secp256k1",), 32, spec="RFC 8812 §3.2"),
    Algorithm("EdDSA", "EdDSA", "OKP", None, ("Ed25519", "Ed448"), spec="RFC 8037 §3.1"),
    Algorithm("Ed25519", "EdDSA", "OKP", None, ("Ed25519",), spec="RFC 9864 §2.2"),
    Algorithm("Ed448", "EdDSA", "OKP", None, ("Ed448",), spec="RFC 9864 §2.3"),
)

ALGORITHM_NAMES: tuple[str, ...] = tuple(ALGORITHMS)


def get_algorithm(name: str) -> Algorithm:
    """Return the table entry for ``name``; ``ValueError`` for unknown names (caller misuse)."""
    if not isinstance(name, str):
        raise TypeError(f"algorithm name must be a str, not {type(name).__name__}")
    try:
        return ALGORITHMS[name]
    except KeyError:
        if name.lower() == "none":
            raise ValueError(
                "'none' is not a signing algorithm; see jotkit.unsafe_encode_none"
            ) from None
        raise ValueError(
            f"unknown algorithm {name!r}; supported: {', '.join(ALGORITHM_NAMES)}"
        ) from None
