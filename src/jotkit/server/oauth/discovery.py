"""Provider metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2 (one document served at
both well-known locations). Only what this server really supports is listed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jotkit.dpop import DEFAULT_ALGORITHMS

from .clients import ASSERTION_ALGS, GRANT_TYPES, id_token_algorithms

if TYPE_CHECKING:
    from ..sessions import AuthService

__all__ = ["provider_metadata"]


def provider_metadata(service: AuthService) -> dict[str, Any]:
    """The OAuth 2.1 / OpenID Connect members of the metadata document."""
    base = service.issuer
    now = service.clock.now()
    access_algs = list(service.keyring.algorithms(now))
    id_algs = list(id_token_algorithms(service.settings.signing_alg))  # what clients may register
    client_auth = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]
    return {
        "issuer": base,
        "authorization_endpoint": f"{base}/oauth/authorize",
        "token_endpoint": f"{base}/oauth/token",
        "userinfo_endpoint": f"{base}/oauth/userinfo",
        "end_session_endpoint": f"{base}/oauth/logout",
        "jwks_uri": f"{base}/.well-known/jwks.json",
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANT_TYPES),
        "pushed_authorization_request_endpoint": f"{base}/oauth/par",  # RFC 9126 §5
        "require_pushed_authorization_requests": service.settings.require_par,
        "device_authorization_endpoint": f"{base}/oauth/device_authorization",  # RFC 8628 §4
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_algs,
        "token_endpoint_auth_methods_supported": client_auth,
        "token_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid", "azp",
            "email", "email_verified", "updated_at", "act",
        ],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "require_request_uri_registration": False,
        "authorization_response_iss_parameter_supported": True,
        "revocation_endpoint": f"{base}/oauth/revoke",
        "revocation_endpoint_auth_methods_supported": client_auth,
        # RFC 8414 §2: required wherever private_key_jwt is listed
        "revocation_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "introspection_endpoint": f"{base}/oauth/introspect",
        "introspection_endpoint_auth_methods_supported": client_auth[:3],
        "introspection_endpoint_auth_signing_alg_values_supported": list(ASSERTION_ALGS),
        "access_token_signing_alg_values_supported": access_algs,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": False,
        "prompt_values_supported": ["none", "login", "consent"],
        "dpop_signing_alg_values_supported": list(DEFAULT_ALGORITHMS),  # RFC 9449 §5.1
    }
