"""jotkit: JSON Web Tokens done right.

Sign and verify JWS compact tokens and JWT claims (RFC 7515, 7517, 7518, 7519,
7638, 8037, 8725, 9864), and encrypt and decrypt JWE (RFC 7516, :mod:`jotkit.jwe`),
with keys that are each bound to one algorithm::

    import jotkit

    key = jotkit.Key.generate("ES256", kid="k1")
    token = jotkit.encode({"sub": "u1"}, key, expires_in="15m", issuer="https://auth.example.com")
    claims = jotkit.decode(token, key.public(), algorithms=["ES256"],
                           issuer="https://auth.example.com")

Every rejected token raises a :class:`jotkit.InvalidToken` subclass with a
stable ``code``; see :mod:`jotkit.errors` for the tree.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import dpop as dpop
from . import jwe as jwe
from .algorithms import ALGORITHM_NAMES as ALGORITHM_NAMES
from .algorithms import Algorithm as Algorithm
from .claims import ClaimsPolicy as ClaimsPolicy
from .claims import parse_timespan as parse_timespan
from .errors import DecryptionFailed as DecryptionFailed
from .errors import ExpiredToken as ExpiredToken
from .errors import ImmatureToken as ImmatureToken
from .errors import InvalidAudience as InvalidAudience
from .errors import InvalidClaim as InvalidClaim
from .errors import InvalidDPoPProof as InvalidDPoPProof
from .errors import InvalidIssuer as InvalidIssuer
from .errors import InvalidKey as InvalidKey
from .errors import InvalidSignature as InvalidSignature
from .errors import InvalidSubject as InvalidSubject
from .errors import InvalidToken as InvalidToken
from .errors import InvalidType as InvalidType
from .errors import JotkitError as JotkitError
from .errors import JWKSError as JWKSError
from .errors import KeyMismatch as KeyMismatch
from .errors import KeyNotFound as KeyNotFound
from .errors import MalformedToken as MalformedToken
from .errors import MissingClaim as MissingClaim
from .errors import RevokedToken as RevokedToken
from .errors import TokenTooOld as TokenTooOld
from .errors import UnsupportedAlgorithm as UnsupportedAlgorithm
from .errors import UseDPoPNonce as UseDPoPNonce
from .jws import sign as jws_sign
from .jws import verify as jws_verify
from .jwt import VerifiedToken as VerifiedToken
from .jwt import Verifier as Verifier
from .jwt import decode as decode
from .jwt import decode_complete as decode_complete
from .jwt import decode_unverified as decode_unverified
from .jwt import encode as encode
from .jwt import unsafe_encode_none as unsafe_encode_none
from .keys import Key as Key
from .keys import KeySet as KeySet

if TYPE_CHECKING:
    from .jwks_client import JWKSClient as JWKSClient

__version__ = "0.1.0"

__all__ = [
    "ALGORITHM_NAMES",
    "Algorithm",
    "ClaimsPolicy",
    "DecryptionFailed",
    "ExpiredToken",
    "ImmatureToken",
    "InvalidAudience",
    "InvalidClaim",
    "InvalidDPoPProof",
    "InvalidIssuer",
    "InvalidKey",
    "InvalidSignature",
    "InvalidSubject",
    "InvalidToken",
    "InvalidType",
    "JWKSClient",
    "JWKSError",
    "JotkitError",
    "Key",
    "KeyMismatch",
    "KeyNotFound",
    "KeySet",
    "MalformedToken",
    "MissingClaim",
    "RevokedToken",
    "TokenTooOld",
    "UnsupportedAlgorithm",
    "UseDPoPNonce",
    "VerifiedToken",
    "Verifier",
    "decode",
    "decode_complete",
    "decode_unverified",
    "encode",
    "jws_sign",
    "jws_verify",
    "parse_timespan",
    "unsafe_encode_none",
]


def __getattr__(name: str) -> Any:
    """Import the JWKS client on first use: it needs the ``jotkit[jwks]`` extra (httpx)."""
    if name == "JWKSClient":
        try:
            from .jwks_client import JWKSClient
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("jotkit.JWKSClient needs httpx: pip install 'jotkit[jwks]'") from exc
        return JWKSClient
    raise AttributeError(f"module 'jotkit' has no attribute {name!r}")
