"""The ONE table mapping service error codes to HTTP statuses, wire errors and
``WWW-Authenticate`` challenges (RFC 6750 §3, RFC 6749 §5.2, RFC 7009 §2.2.1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.responses import JSONResponse

if TYPE_CHECKING:
    from fastapi.exceptions import RequestValidationError

__all__ = ["ERRORS", "ErrorSpec", "ServiceError", "describe_validation", "error_response"]

REALM = "jotkit"


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    """How one error code is rendered."""

    status: int
    error: str  # the ``error`` member of the JSON body (OAuth-style)
    challenge: str | None = None  # "bearer": RFC 6750 challenge with error=; "bearer-bare": no
    # error attribute (no credentials were sent); "basic": client authentication; "dpop": an
    # RFC 9449 §7.1 challenge with algs= and error=
    default_description: str = ""


_TOKEN = ErrorSpec(401, "invalid_token", "bearer", "The access token is invalid.")

ERRORS: dict[str, ErrorSpec] = {
    # request shape
    "invalid_request": ErrorSpec(400, "invalid_request", None, "The request is invalid."),
    "invalid_json": ErrorSpec(400, "invalid_request", None, "The body is not valid JSON."),
    "validation_error": ErrorSpec(422, "invalid_request", None, "The request failed validation."),
    "payload_too_large": ErrorSpec(413, "payload_too_large", None, "The body is too large."),
    "header_too_large": ErrorSpec(
        431, "invalid_request", None, "The request line and headers are too large."
    ),
    "unsupported_media_type": ErrorSpec(
        415, "unsupported_media_type", None, "Unsupported Content-Type."
    ),
    "not_found": ErrorSpec(404, "not_found", None, "Not found."),
    "method_not_allowed": ErrorSpec(405, "method_not_allowed", None, "Method not allowed."),
    # authentication of the caller
    "missing_token": ErrorSpec(401, "invalid_request", "bearer-bare", "Authentication required."),
    "invalid_credentials": ErrorSpec(
        401, "invalid_credentials", "bearer-bare", "Invalid email or password."
    ),
    "invalid_client": ErrorSpec(401, "invalid_client", "basic", "Client authentication failed."),
    "insufficient_scope": ErrorSpec(
        403, "insufficient_scope", "bearer", "The token lacks the required scope."
    ),
    "csrf_failed": ErrorSpec(403, "csrf_failed", None, "Missing or wrong CSRF token."),
    "rate_limited": ErrorSpec(429, "rate_limited", None, "Too many attempts; retry later."),
    # refresh tokens (RFC 6749 §5.2)
    "invalid_grant": ErrorSpec(400, "invalid_grant", None, "The refresh token is invalid."),
    "refresh_retry": ErrorSpec(
        409,
        "invalid_grant",
        None,
        "This refresh token was just rotated by the same client; use the newer token.",
    ),
    # token endpoint (RFC 6749 §5.2, RFC 8707 §2)
    "unsupported_grant_type": ErrorSpec(
        400, "unsupported_grant_type", None, "This grant type is not supported."
    ),
    "unauthorized_client": ErrorSpec(
        400, "unauthorized_client", None, "This client may not use this grant type."
    ),
    "invalid_scope": ErrorSpec(400, "invalid_scope", None, "The requested scope is invalid."),
    "invalid_target": ErrorSpec(400, "invalid_target", None, "The resource is not allowed."),
    "unsupported_token_type": ErrorSpec(
        400, "unsupported_token_type", None, "Unsupported token_type_hint."
    ),
    # pushed authorization requests (RFC 9126 §2.3) and the device grant (RFC 8628 §3.5)
    "unsupported_response_type": ErrorSpec(
        400, "unsupported_response_type", None, "Only response_type=code is supported."
    ),
    "request_not_supported": ErrorSpec(
        400, "request_not_supported", None, "Request objects are not supported."
    ),
    "invalid_request_uri": ErrorSpec(
        400, "invalid_request_uri", None, "The request_uri is invalid or expired."
    ),
    "authorization_pending": ErrorSpec(
        400, "authorization_pending", None, "The user has not yet approved the device."
    ),
    "slow_down": ErrorSpec(400, "slow_down", None, "Polling too fast: wait 5 s longer."),
    "access_denied": ErrorSpec(400, "access_denied", None, "The user denied the request."),
    "expired_token": ErrorSpec(400, "expired_token", None, "The device_code has expired."),
    # access-token rejections: jotkit error codes (reason is the code)
    "malformed": _TOKEN,
    "token_too_large": _TOKEN,
    "alg_not_allowed": _TOKEN,
    "alg_none": _TOKEN,
    "unknown_crit": _TOKEN,
    "key_not_found": _TOKEN,
    "kid_missing": _TOKEN,
    "kid_ambiguous": _TOKEN,
    "key_mismatch": _TOKEN,
    "bad_signature": _TOKEN,
    "invalid_typ": _TOKEN,
    "invalid_claim": _TOKEN,
    "missing_claim": _TOKEN,
    "expired": _TOKEN,
    "not_yet_valid": _TOKEN,
    "iat_in_future": _TOKEN,
    "too_old": _TOKEN,
    "invalid_issuer": _TOKEN,
    "invalid_audience": _TOKEN,
    "invalid_subject": _TOKEN,
    "revoked": _TOKEN,
    "wrong_client": _TOKEN,  # an OAuth client's token at the first-party account API
    "invalid_token": _TOKEN,
    # DPoP (RFC 9449): at the token endpoint a 400 (§5); at a protected resource a 401 with a
    # DPoP challenge (§7.1); the nonce errors carry a DPoP-Nonce header (§8, §9)
    "invalid_dpop_proof": ErrorSpec(400, "invalid_dpop_proof", None, "The DPoP proof is invalid."),
    "use_dpop_nonce": ErrorSpec(
        400, "use_dpop_nonce", None, "Retry with the nonce of the DPoP-Nonce header."
    ),
    "dpop_invalid_proof": ErrorSpec(
        401, "invalid_dpop_proof", "dpop", "The DPoP proof is invalid."
    ),
    "dpop_use_nonce": ErrorSpec(
        401, "use_dpop_nonce", "dpop", "Retry with the nonce of the DPoP-Nonce header."
    ),
    "dpop_invalid_token": ErrorSpec(401, "invalid_token", "dpop", "The access token is invalid."),
    # last line of defence
    "server_error": ErrorSpec(500, "server_error", None, "Internal error."),
    # a backend (database, Redis) is unreachable: retry (RFC 6749 §4.1.2.1 error code)
    "temporarily_unavailable": ErrorSpec(
        503, "temporarily_unavailable", None, "The service is temporarily unavailable."
    ),
}


class ServiceError(Exception):
    """Raised by routes and services; rendered through :data:`ERRORS`."""

    def __init__(
        self,
        code: str,
        description: str | None = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        spec = ERRORS.get(code, ERRORS["server_error"])
        super().__init__(description or spec.default_description)
        self.code = code if code in ERRORS else "server_error"
        self.spec = spec
        self.description = description or spec.default_description
        self.headers = dict(headers or {})


def _quote(text: str) -> str:
    # RFC 6750 §3: error_description is restricted to %x20-21 / %x23-5B / %x5D-7E
    return "".join(c for c in text if 0x20 <= ord(c) <= 0x7E and c not in '"\\')


def error_response(exc: ServiceError) -> JSONResponse:
    """The JSON body ``{"error", "error_description"[, "reason"]}`` and its headers."""
    spec = exc.spec
    body: dict[str, str] = {"error": spec.error, "error_description": exc.description}
    if spec.error == "invalid_token" or exc.code != spec.error:
        body["reason"] = exc.code
    headers = dict(exc.headers)
    if spec.challenge == "bearer":
        headers["WWW-Authenticate"] = (
            f'Bearer realm="{REALM}", error="{spec.error}", '
            f'error_description="{_quote(exc.description)}"'
        )
    elif spec.challenge == "dpop":
        from jotkit.dpop import DEFAULT_ALGORITHMS

        headers["WWW-Authenticate"] = (
            f'DPoP algs="{" ".join(DEFAULT_ALGORITHMS)}", error="{spec.error}", '
            f'error_description="{_quote(exc.description)}"'
        )
    elif spec.challenge == "bearer-bare":
        headers["WWW-Authenticate"] = f'Bearer realm="{REALM}"'
    elif spec.challenge == "basic":
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    headers.setdefault("Cache-Control", "no-store")
    return JSONResponse(body, status_code=spec.status, headers=headers)


def describe_validation(exc: RequestValidationError) -> tuple[str, str]:
    """``(code, description)`` for a request that failed validation: ``invalid_json`` for
    unparsable JSON, else ``validation_error`` naming up to five fields."""
    parts: list[str] = []
    code = "validation_error"
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        if err.get("type") == "json_invalid":
            code = "invalid_json"
            parts.append(f"body is not valid JSON ({err.get('ctx', {}).get('error', 'syntax')})")
            continue
        if err.get("type") == "string_pattern_mismatch" and "\\x00" in str(
            err.get("ctx", {}).get("pattern", "")
        ):
            parts.append(f"{loc}: must not contain NUL characters")
            continue
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return code, "; ".join(parts) or "The request is invalid."
