"""DPoP at the provider (RFC 9449): the token endpoint's proof check (§5), proofs at its own
protected resource (``/oauth/userinfo``, §7), replay detection (§11.1) and server nonces (§8).

The stateless checks are :class:`jotkit.dpop.ProofVerifier`'s; this module adds what needs
the service: the target URI (the issuer's base URL + the request path, so a proxy in front
does not change it), the shared replay cache (``store.dpop``: SQL table, or Redis when
configured) and nonces: :class:`jotkit.dpop.HmacNonces` (the one implementation, shared with
resource servers) under a key derived from the CSRF key (``JOTKIT_CSRF_SECRET``, which
instances share): every instance accepts every instance's nonces without storing them, for
the window they were made in and the next one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from jotkit.dpop import DEFAULT_ALGORITHMS, HmacNonces, ProofVerifier, VerifiedProof
from jotkit.errors import InvalidDPoPProof, UseDPoPNonce

from ..errors import ServiceError

if TYPE_CHECKING:
    from starlette.requests import Request

    from ..sessions import AuthService
    from ..settings import Settings

__all__ = ["DpopGate", "token_type"]

_NONCE_LABEL = b"jotkit dpop nonce v1"
# (invalid proof, nonce needed) service error codes: token endpoint (§5) / resource (§7.1)
_CODES = {False: ("invalid_dpop_proof", "use_dpop_nonce"),
          True: ("dpop_invalid_proof", "dpop_use_nonce")}


def token_type(jkt: str | None) -> str:
    """``DPoP`` for a key-bound access token, else ``Bearer`` (RFC 9449 §5.1)."""
    return "Bearer" if jkt is None else "DPoP"


class DpopGate:
    """One per app (``app.state.dpop``): checks the ``DPoP`` header of a request."""

    def __init__(self, secret: bytes, settings: Settings) -> None:
        self.verifier = ProofVerifier(DEFAULT_ALGORITHMS, max_age=settings.dpop_max_age)
        self.require_nonce = settings.dpop_require_nonce
        self.window = settings.dpop_nonce_window
        # domain separation from CSRF tokens: the label
        self.nonces = HmacNonces(secret, window=self.window, label=_NONCE_LABEL)

    def nonce(self, now: float) -> str:
        """The current server nonce (RFC 9449 §8): ``<window>.<HMAC tag>``."""
        return self.nonces.current(now)

    def nonce_ok(self, value: str, now: float) -> bool:
        """True for a nonce of this window or the previous one, made under this key."""
        return self.nonces.valid(value, now)

    def response_headers(self, now: float) -> Mapping[str, str]:
        """``DPoP-Nonce`` for a successful answer when nonces are required (§8.2)."""
        return {"DPoP-Nonce": self.nonce(now)} if self.require_nonce else {}

    async def check(
        self,
        service: AuthService,
        request: Request,
        *,
        access_token: str | None = None,
        jkt: str | None = None,
        resource: bool = False,
    ) -> VerifiedProof | None:
        """Verify the request's ``DPoP`` header (RFC 9449 §4.3, §11.1); None when there is
        none. ``resource`` selects the §7.1 errors (401 + DPoP challenge) over §5's (400).
        With ``access_token`` and ``jkt`` the proof must be bound to both (``ath``, §6.1)."""
        values = request.headers.getlist("dpop")
        if not values:
            return None
        invalid, use_nonce = _CODES[resource]
        if len(values) > 1:
            raise ServiceError(invalid, "Send exactly one DPoP header (RFC 9449 §4.3).")
        now = service.clock.now()
        checker = (lambda n: self.nonce_ok(n, now)) if self.require_nonce else None
        try:
            proof = self.verifier.verify(
                values[0], method=request.method, url=service.issuer + request.url.path,
                now=now, access_token=access_token, nonce=checker, jkt=jkt,
            )
        except UseDPoPNonce as exc:
            raise ServiceError(use_nonce, exc.message,
                               headers={"DPoP-Nonce": self.nonce(now)}) from None
        except InvalidDPoPProof as exc:
            raise ServiceError(invalid, f"{exc.message} ({exc.code}).") from None
        if not await service.store.dpop.use_proof(proof.jkt, proof.jti, proof.expires_at, now):
            service.audit.event("dpop_replay", jkt=proof.jkt)
            raise ServiceError(invalid, "The DPoP proof was already used (dpop_replayed).")
        return proof
