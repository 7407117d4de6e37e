"""The one error tree of jotkit.

Untrusted input (a token, a JWK set fetched from the network) fails with a
subclass of :class:`JotkitError`; caller misuse (a wrong argument type, an
unknown algorithm name in your own code) raises ``TypeError``/``ValueError``.
Every error carries a stable machine ``code`` that services map to HTTP
statuses and log lines; the message is for humans and may change.

::

    JotkitError                       code
    ├── InvalidToken                  (root for every token failure)
    │   ├── MalformedToken            malformed, token_too_large, invalid_epk,
    │   │                             p2c_out_of_range, plaintext_too_large
    │   ├── UnsupportedAlgorithm      alg_not_allowed, alg_none, unknown_crit,
    │   │                             enc_not_allowed, zip_not_allowed
    │   ├── KeyNotFound               key_not_found, kid_missing
    │   ├── KeyMismatch               key_mismatch
    │   ├── InvalidSignature          bad_signature
    │   ├── DecryptionFailed          decryption_failed   (JWE, RFC 7516 §5.2)
    │   ├── InvalidType               invalid_typ
    │   ├── InvalidClaim              invalid_claim
    │   │   ├── MissingClaim          missing_claim
    │   │   ├── ExpiredToken          expired
    │   │   ├── ImmatureToken         not_yet_valid, iat_in_future
    │   │   ├── TokenTooOld           too_old
    │   │   ├── InvalidIssuer         invalid_issuer
    │   │   ├── InvalidAudience       invalid_audience
    │   │   └── InvalidSubject        invalid_subject
    │   ├── RevokedToken              revoked
    │   └── InvalidDPoPProof          invalid_dpop_proof, dpop_* (RFC 9449 §4.3, jotkit.dpop)
    │       └── UseDPoPNonce          use_dpop_nonce      (RFC 9449 §8, §9)
    ├── InvalidKey                    invalid_key, weak_key   (also a ValueError)
    └── JWKSError                     jwks_fetch_failed, jwks_invalid
"""

from __future__ import annotations

__all__ = [
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
    "JWKSError",
    "JotkitError",
    "KeyMismatch",
    "KeyNotFound",
    "MalformedToken",
    "MissingClaim",
    "RevokedToken",
    "TokenTooOld",
    "UnsupportedAlgorithm",
    "UseDPoPNonce",
]


class JotkitError(Exception):
    """Root of every jotkit error; ``code`` is stable, the message is not."""

    code: str = "jotkit_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        """The human-readable message."""
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidToken(JotkitError):
    """A token was rejected. Catch this to handle every token failure."""

    code = "invalid_token"


class MalformedToken(InvalidToken):
    """The token is not a well-formed JWS compact serialization (RFC 7515 §7.1)."""

    code = "malformed"


class UnsupportedAlgorithm(InvalidToken):
    """The ``alg`` is not allowed, is ``none``, or ``crit`` names an unknown extension."""

    code = "alg_not_allowed"


class KeyNotFound(InvalidToken):
    """No key matches the token's ``kid``/``alg`` (RFC 7515 §4.1.4)."""

    code = "key_not_found"


class KeyMismatch(InvalidToken):
    """The selected key is bound to another algorithm (RFC 8725 §3.1)."""

    code = "key_mismatch"


class InvalidSignature(InvalidToken):
    """The signature does not verify (RFC 7515 §5.2)."""

    code = "bad_signature"


class DecryptionFailed(InvalidToken):
    """A JWE does not decrypt: wrong key, altered token, or bad padding (RFC 7516 §5.2).

    Every way the content encryption key or the authentication tag can fail
    gives this one class and code, so that the error is no padding or key
    oracle (RFC 7516 §11.4-11.5).
    """

    code = "decryption_failed"


class InvalidType(InvalidToken):
    """The ``typ`` header is not the expected one (RFC 8725 §3.11)."""

    code = "invalid_typ"


class InvalidClaim(InvalidToken):
    """A claim has the wrong type or value (RFC 7519 §4.1); ``claim`` names it."""

    code = "invalid_claim"

    def __init__(self, message: str, *, claim: str | None = None, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.claim = claim


class MissingClaim(InvalidClaim):
    """A required claim is absent."""

    code = "missing_claim"


class ExpiredToken(InvalidClaim):
    """``exp`` is in the past (RFC 7519 §4.1.4); ``expired_at`` is its value."""

    code = "expired"

    def __init__(self, message: str, *, expired_at: float, claim: str = "exp") -> None:
        super().__init__(message, claim=claim)
        self.expired_at = expired_at


class ImmatureToken(InvalidClaim):
    """``nbf`` is in the future (RFC 7519 §4.1.5), or ``iat`` is in the future."""

    code = "not_yet_valid"


class TokenTooOld(InvalidClaim):
    """``iat`` is older than the caller's ``max_age``."""

    code = "too_old"


class InvalidIssuer(InvalidClaim):
    """``iss`` does not match (RFC 7519 §4.1.1)."""

    code = "invalid_issuer"


class InvalidAudience(InvalidClaim):
    """``aud`` does not contain the expected audience (RFC 7519 §4.1.3)."""

    code = "invalid_audience"


class InvalidSubject(InvalidClaim):
    """``sub`` does not match (RFC 7519 §4.1.2)."""

    code = "invalid_subject"


class RevokedToken(InvalidToken):
    """The token was revoked (deny-listed ``jti``, or issued before a logout-all)."""

    code = "revoked"


class InvalidDPoPProof(InvalidToken):
    """A DPoP proof JWT is rejected (RFC 9449 §4.3); ``code`` says which check failed:
    ``dpop_malformed``, ``dpop_invalid_typ``, ``dpop_alg_not_allowed``, ``dpop_invalid_jwk``,
    ``dpop_bad_signature``, ``dpop_invalid_claim``, ``dpop_htm_mismatch``,
    ``dpop_htu_mismatch``, ``dpop_iat_out_of_window``, ``dpop_ath_mismatch``,
    ``dpop_key_mismatch`` (the proof's key is not the token's ``cnf.jkt``), ``dpop_replayed``."""

    code = "invalid_dpop_proof"


class UseDPoPNonce(InvalidDPoPProof):
    """The proof lacks the server's current nonce, or carries a stale one (RFC 9449 §8, §9):
    the client retries with the nonce of the ``DPoP-Nonce`` response header."""

    code = "use_dpop_nonce"


class InvalidKey(JotkitError, ValueError):
    """Key material is unusable: wrong type, too weak, or malformed (RFC 7517, RFC 7518)."""

    code = "invalid_key"


class JWKSError(JotkitError):
    """A remote JWK set could not be fetched or parsed."""

    code = "jwks_fetch_failed"
