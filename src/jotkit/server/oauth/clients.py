"""Registered OAuth clients: registration rules, secrets (RFC 6749 §2.3.1) and the
``ClientRecord`` the rest of the provider works with.

Secrets are 256 random bits (``secrets.token_urlsafe(32)``), shown once and stored as their
SHA-256 (a 256-bit random value needs no slow hash: nothing can be guessed), compared in
constant time. Public clients (``auth_method`` ``none``) have no secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..store.base import ClientRecord as ClientRecord

if TYPE_CHECKING:
    import jotkit
    from jotkit.jwks_client import JWKSClient

    from ..sessions import AuthService

__all__ = [
    "ASSERTION_TYPE",
    "AUTH_METHODS",
    "DEFAULT_SCOPES",
    "DEVICE_CODE_GRANT",
    "GRANT_TYPES",
    "ID_TOKEN_ALGS",
    "TOKEN_EXCHANGE",
    "ClientAuthError",
    "ClientCache",
    "ClientRecord",
    "allowed_scopes",
    "audiences",
    "authenticate",
    "check_redirect_uri",
    "check_resource",
    "hash_secret",
    "id_token_algorithms",
    "new_client",
    "new_secret",
    "secret_matches",
    "select_resources",
]

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"  # RFC 8628 §3.4
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # RFC 8693 §2.1
GRANT_TYPES = (
    "authorization_code", "refresh_token", "client_credentials", DEVICE_CODE_GRANT,
    TOKEN_EXCHANGE,
)
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")
ID_TOKEN_ALGS = ("RS256", "ES256", "EdDSA")
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})
_SCOPE_CHARS = frozenset(chr(c) for c in range(0x21, 0x7F)) - {'"', "\\"}


def new_secret() -> str:
    """A new client secret: 256 random bits, base64url (43 characters)."""
    return secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: ``sha256:`` + hex digest."""
    return "sha256:" + hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def secret_matches(client: ClientRecord, secret: str) -> bool:
    """Compare a presented secret with the stored hash in constant time (RFC 6749 §2.3.1)."""
    stored = client.secret_hash or "sha256:" + "0" * 64
    ok = hmac.compare_digest(hash_secret(secret).encode(), stored.encode())
    return ok and client.secret_hash is not None


def allowed_scopes(client: ClientRecord) -> tuple[str, ...]:
    """The scopes a client may be granted (empty registration: the OpenID scopes)."""
    return client.scopes or DEFAULT_SCOPES


def id_token_algorithms(signing_alg: str) -> tuple[str, ...]:
    """The algorithms a server whose access-token algorithm is ``signing_alg``
    (``JOTKIT_SIGNING_ALG``) can sign ID tokens with: RS256 from its own key ring (OpenID
    Connect Core §3.1.3.7 default), plus ``signing_alg`` when it is one of
    :data:`ID_TOKEN_ALGS`. Discovery lists exactly these (OpenID Connect Discovery 1.0 §3
    ``id_token_signing_alg_values_supported``); ``jotkit clients add`` accepts only these."""
    return tuple(sorted({ID_TOKEN_ALGS[0]} | ({signing_alg} & set(ID_TOKEN_ALGS))))


def check_redirect_uri(uri: str) -> str:
    """Validate a redirect URI at registration (RFC 6749 §3.1.2, OAuth 2.1 §2.3.1,
    RFC 8252 §7): absolute, no fragment, no userinfo; ``https``, ``http`` only on a loopback
    host, or a private-use scheme with a dot (``com.example.app:/cb``). Return it unchanged:
    it is matched later by exact string comparison."""
    if not uri or len(uri) > 2000 or any(c.isspace() or ord(c) < 0x20 for c in uri):
        raise ValueError(f"invalid redirect URI {uri!r}")
    parts = urlsplit(uri)
    if not parts.scheme or parts.fragment or "#" in uri:
        raise ValueError(f"redirect URI must be absolute and have no fragment: {uri!r}")
    if parts.scheme in ("https", "http"):
        if not parts.hostname or "@" in parts.netloc:
            raise ValueError(f"redirect URI needs a host and no userinfo: {uri!r}")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK:
            raise ValueError(f"http redirect URIs are only allowed on loopback hosts: {uri!r}")
        return uri
    if "." not in parts.scheme:
        raise ValueError(f"a private-use scheme must contain a dot (RFC 8252 §7.1): {uri!r}")
    return uri


def check_resource(uri: str) -> str:
    """A resource indicator must be an absolute URI without a fragment (RFC 8707 §2)."""
    parts = urlsplit(uri)
    if (
        not parts.scheme
        or not (parts.netloc or parts.path)
        or "#" in uri
        or len(uri) > 2000
        or any(c.isspace() or ord(c) < 0x20 for c in uri)
    ):
        raise ValueError(f"a resource must be an absolute URI without fragment: {uri!r}")
    return uri


def audiences(client: ClientRecord, default: str) -> tuple[str, ...]:
    """What ``client`` may put in ``aud`` (RFC 8707): its default audience (else
    ``JOTKIT_AUDIENCE``) and its registered resources."""
    return (client.default_audience or default, *client.resources)


def select_resources(
    client: ClientRecord, default: str, requested: Sequence[str], granted: Sequence[str] = ()
) -> tuple[str, ...]:
    """The ``aud`` of an access token (RFC 8707 §2): the requested resources, each of
    which the client may ask for and, when a grant named resources, within them (§2.2);
    nothing requested: the grant's resources, else the client's default audience. Raise
    ``ValueError`` (``invalid_target``) otherwise."""
    allowed = set(audiences(client, default))
    if granted:
        allowed &= set(granted)
    for uri in requested:
        if uri not in allowed:
            raise ValueError(f"resource {uri!r} is not allowed for this client")
    if requested:
        return tuple(dict.fromkeys(requested))
    return tuple(granted) or (client.default_audience or default,)


def _check_scope(scope: str) -> str:
    if not scope or any(c not in _SCOPE_CHARS for c in scope):  # RFC 6749 §3.3 scope-token
        raise ValueError(f"invalid scope {scope!r}")
    return scope


def _check_jwks(jwks: dict[str, Any]) -> dict[str, Any]:
    import jotkit

    keyset = jotkit.KeySet.from_jwks(json.dumps(jwks), allow_private=True)  # to refuse them
    if any(k.is_private for k in keyset):
        raise ValueError("the client's JWKS must hold public keys only")
    return jwks


def _new_client_id() -> str:
    """144 random bits, base64url; never starting with ``-``, which a command line would take
    for an option (``jotkit clients show -abc...``)."""
    while True:
        client_id = secrets.token_urlsafe(18)
        if not client_id.startswith("-"):
            return client_id


def new_client(
    name: str,
    *,
    now: float,
    redirect_uris: Sequence[str] = (),
    post_logout_redirect_uris: Sequence[str] = (),
    public: bool = False,
    grant_types: Sequence[str] = (),
    scopes: Sequence[str] = (),
    first_party: bool = False,
    backchannel_logout_uri: str | None = None,
    auth_method: str | None = None,
    jwks_uri: str | None = None,
    jwks: dict[str, Any] | None = None,
    id_token_signed_response_alg: str = "RS256",  # noqa: S107 (an algorithm name)
    default_audience: str | None = None,
    resources: Sequence[str] = (),
    dpop_bound: bool = False,
    require_par: bool = False,
    exchange_audiences: Sequence[str] = (),
    exchange_scopes: Sequence[str] = (),
    exchange_actors: Sequence[str] = (),
) -> tuple[ClientRecord, str | None]:
    """Build a client registration (``jotkit clients add``) and its secret (None for public
    and ``private_key_jwt`` clients). Raise ``ValueError`` with a readable message when the
    metadata is inconsistent (RFC 7591 §2 semantics)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise ValueError("the client name must have 1 to 200 characters")
    method = "none" if public else (auth_method or "client_secret_basic")
    if public and auth_method not in (None, "none"):
        raise ValueError("--public means --auth-method none")
    if method not in AUTH_METHODS:
        raise ValueError(f"unknown auth method {method!r}; one of {', '.join(AUTH_METHODS)}")
    uris = tuple(check_redirect_uri(u) for u in redirect_uris)
    logout_uris = tuple(check_redirect_uri(u) for u in post_logout_redirect_uris)
    grants = tuple(dict.fromkeys(grant_types)) or (
        ("authorization_code", "refresh_token") if uris else ()
    )
    if not grants:
        raise ValueError(
            "give --redirect-uri (code flow), --grant client_credentials or --grant "
            + DEVICE_CODE_GRANT
        )
    for grant in grants:
        if grant not in GRANT_TYPES:
            raise ValueError(f"unknown grant {grant!r}; one of {', '.join(GRANT_TYPES)}")
    if "authorization_code" in grants and not uris:
        raise ValueError("the authorization_code grant needs at least one --redirect-uri")
    if "refresh_token" in grants and not {"authorization_code", DEVICE_CODE_GRANT} & set(grants):
        raise ValueError("the refresh_token grant comes with authorization_code or device_code")
    if require_par and "authorization_code" not in grants:
        raise ValueError("--require-par needs the authorization_code grant (RFC 9126)")
    if method == "none" and "client_credentials" in grants:
        raise ValueError("a public client cannot use client_credentials (no credentials)")
    if method == "private_key_jwt":
        if (jwks is None) == (jwks_uri is None):
            raise ValueError("private_key_jwt needs exactly one of --jwks-uri or --jwks")
    elif jwks is not None or jwks_uri is not None:
        raise ValueError("--jwks/--jwks-uri only go with --auth-method private_key_jwt")
    if jwks_uri is not None and urlsplit(jwks_uri).scheme != "https":
        parts = urlsplit(jwks_uri)
        if not (parts.scheme == "http" and parts.hostname in _LOOPBACK):
            raise ValueError("--jwks-uri must be https (http only on loopback)")
    if jwks is not None:
        _check_jwks(jwks)
    if backchannel_logout_uri is not None:
        parts = urlsplit(backchannel_logout_uri)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
            raise ValueError("--backchannel-logout-uri must be an absolute http(s) URL")
    ex_audiences, ex_scopes, ex_actors = _exchange_policy(
        grants, method, exchange_audiences, exchange_scopes, exchange_actors)
    if id_token_signed_response_alg not in ID_TOKEN_ALGS:
        raise ValueError(f"id_token_signed_response_alg must be one of {ID_TOKEN_ALGS}")
    secret = new_secret() if method in ("client_secret_basic", "client_secret_post") else None
    record = ClientRecord(
        client_id=_new_client_id(),
        name=name,
        secret_hash=None if secret is None else hash_secret(secret),
        auth_method=method,
        redirect_uris=uris,
        post_logout_redirect_uris=logout_uris,
        grant_types=grants,
        scopes=tuple(dict.fromkeys(_check_scope(s) for s in scopes)),
        first_party=first_party,
        backchannel_logout_uri=backchannel_logout_uri,
        jwks_uri=jwks_uri,
        jwks=jwks,
        id_token_signed_response_alg=id_token_signed_response_alg,
        default_audience=default_audience,
        created_at=now,
        resources=tuple(dict.fromkeys(check_resource(r) for r in resources)),
        dpop_bound_access_tokens=dpop_bound,
        require_par=require_par,
        exchange_audiences=ex_audiences,
        exchange_scopes=ex_scopes,
        exchange_actors=ex_actors,
    )
    return record, secret


def _exchange_policy(
    grants: Sequence[str],
    method: str,
    audiences: Sequence[str],
    scopes: Sequence[str],
    actors: Sequence[str],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The token-exchange policy of a registration (RFC 8693 §2.1, §5) as (audiences,
    scopes, actors): only with the grant, only for a confidential client, and at least one
    audience to exchange for."""
    if TOKEN_EXCHANGE not in grants:
        if audiences or scopes or actors:
            raise ValueError(f"--exchange-* options need --grant {TOKEN_EXCHANGE}")
        return (), (), ()
    if method == "none":
        raise ValueError("a public client cannot use token exchange (no credentials)")
    if not audiences:
        raise ValueError("token exchange needs at least one --exchange-audience")
    for aud in audiences:
        if not aud or len(aud) > 2000 or any(c.isspace() or ord(c) < 0x20 for c in aud):
            raise ValueError(f"invalid exchange audience {aud!r}")
    for actor in actors:
        if not actor or len(actor) > 64:
            raise ValueError(f"invalid exchange actor {actor!r} (a client_id)")
    return (
        tuple(dict.fromkeys(audiences)),
        tuple(dict.fromkeys(_check_scope(s) for s in scopes)),
        tuple(dict.fromkeys(actors)),
    )


def describe(client: ClientRecord) -> dict[str, Any]:
    """A client's registration as JSON-ready metadata (RFC 7591 §2 names; no secret)."""
    return {
        "client_id": client.client_id,
        "client_name": client.name,
        "token_endpoint_auth_method": client.auth_method,
        "redirect_uris": list(client.redirect_uris),
        "post_logout_redirect_uris": list(client.post_logout_redirect_uris),
        "grant_types": list(client.grant_types),
        "scope": " ".join(allowed_scopes(client)),
        "first_party": client.first_party,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "jwks_uri": client.jwks_uri,
        "jwks": client.jwks,
        "id_token_signed_response_alg": client.id_token_signed_response_alg,
        "default_audience": client.default_audience,
        "resources": list(client.resources),
        "dpop_bound_access_tokens": client.dpop_bound_access_tokens,  # RFC 9449 §5.2
        "require_pushed_authorization_requests": client.require_par,
        "exchange_audiences": list(client.exchange_audiences),
        "exchange_scopes": list(client.exchange_scopes),
        "exchange_actors": list(client.exchange_actors),
        "created_at": int(client.created_at),
    }


def with_secret_hash(client: ClientRecord, secret_hash: str) -> ClientRecord:
    """A copy of ``client`` with another secret hash."""
    return replace(client, secret_hash=secret_hash)


# -- client authentication (RFC 6749 §2.3, RFC 7523 §2.2 / §3, OpenID Connect Core §9) ---------

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
                  "ES512", "EdDSA")
MAX_ASSERTION_LIFETIME = 3600.0  # seconds an assertion may live (exp - now); jti kept so long
_DUMMY = ClientRecord(
    "", "", None, "client_secret_basic", (), (), (), (), False, None, None, None, "RS256", None, 0.0
)  # compared against when the client is unknown (same work, never matches)


class ClientCache:
    """Client registrations read through a short-lived in-process cache (the token endpoint's
    hot path). A change by ``jotkit clients`` (another process) is seen within ``ttl``
    seconds, like a revocation without Redis (``JOTKIT_REVOCATION_SYNC_INTERVAL``)."""

    def __init__(self, ttl: float, size: int = 4096) -> None:
        self._ttl = ttl
        self._size = size
        self._entries: dict[str, tuple[float, ClientRecord | None]] = {}

    async def get(self, service: AuthService, client_id: str) -> ClientRecord | None:
        """The client (or None), from the cache when read less than ``ttl`` seconds ago."""
        now = time.monotonic()
        hit = self._entries.get(client_id)
        if hit is not None and now - hit[0] < self._ttl:
            return hit[1]
        record = await service.store.clients.get(client_id)
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[client_id] = (now, record)
        return record


class ClientAuthError(Exception):
    """Client authentication failed (RFC 6749 §5.2 ``invalid_client``); ``description`` is
    safe to show, ``reason`` goes to the audit log."""

    def __init__(self, description: str, reason: str) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason


async def authenticate(
    service: AuthService,
    *,
    basic: tuple[str, str] | None,
    form: Mapping[str, str],
    endpoints: Sequence[str],
    jwks_clients: dict[str, JWKSClient] | None = None,
    cache: ClientCache | None = None,
) -> ClientRecord:
    """Authenticate the client of a token-endpoint request with its registered method.

    ``basic`` is the decoded ``Authorization: Basic`` pair (or None), ``form`` the body
    parameters, ``endpoints`` the values a client assertion's ``aud`` may carry (the token
    endpoint URL and the issuer, RFC 7523 §3 item 3). Exactly one method may be used (RFC 6749
    §2.3). Raise :class:`ClientAuthError`."""
    used = [
        name
        for name, present in (
            ("client_secret_basic", basic is not None),
            ("client_secret_post", "client_secret" in form),
            ("private_key_jwt", "client_assertion" in form or "client_assertion_type" in form),
        )
        if present
    ]
    if len(used) > 1:
        raise ClientAuthError("Use exactly one client authentication method.", "several_methods")
    method = used[0] if used else "none"
    if method == "private_key_jwt":
        return await _assertion(service, form, endpoints, jwks_clients, cache)
    if basic is not None:
        client_id, secret = basic
        if "client_id" in form and form["client_id"] != client_id:
            raise ClientAuthError("client_id differs from the authenticated client.", "mismatch")
    else:
        client_id = form.get("client_id", "")
        secret = form.get("client_secret", "")
    if not client_id:
        raise ClientAuthError("Client authentication is required.", "no_client")
    client = await _lookup(service, client_id, cache) if len(client_id) <= 64 else None
    if method == "none":
        if client is None or client.auth_method != "none":
            raise ClientAuthError("This client must authenticate.", "unauthenticated")
        return client
    ok = secret_matches(client or _DUMMY, secret)  # the same work for unknown clients
    if client is None or not ok:
        raise ClientAuthError("Client authentication failed.", "bad_secret")
    if client.auth_method != method:
        raise ClientAuthError(
            f"This client is registered for {client.auth_method}.", "wrong_method"
        )
    return client


async def _assertion(
    service: AuthService,
    form: Mapping[str, str],
    endpoints: Sequence[str],
    jwks_clients: dict[str, JWKSClient] | None,
    cache: ClientCache | None,
) -> ClientRecord:
    """``private_key_jwt`` (RFC 7523 §2.2, §3; OpenID Connect Core §9)."""
    import jotkit

    if form.get("client_assertion_type") != ASSERTION_TYPE:
        raise ClientAuthError(f"client_assertion_type must be {ASSERTION_TYPE}.", "bad_type")
    assertion = form.get("client_assertion", "")
    try:
        _header, unverified = jotkit.decode_unverified(assertion)
    except jotkit.InvalidToken:
        raise ClientAuthError("The client assertion is malformed.", "malformed") from None
    client_id = unverified.get("iss")
    if not isinstance(client_id, str) or not client_id or len(client_id) > 64:
        raise ClientAuthError("The client assertion has no valid iss.", "no_iss")
    if "client_id" in form and form["client_id"] != client_id:
        raise ClientAuthError("client_id differs from the assertion's iss.", "mismatch")
    client = await _lookup(service, client_id, cache)
    if client is None or client.auth_method != "private_key_jwt":
        raise ClientAuthError("Client authentication failed.", "unknown_client")
    now = service.clock.now()
    try:
        keys = await _client_keys(client, jwks_clients)
        claims = jotkit.Verifier(
            keys,
            algorithms=ASSERTION_ALGS,
            issuer=client_id,
            subject=client_id,
            audience=list(endpoints),
            require=("exp", "jti", "iss", "sub", "aud"),
        ).decode(assertion, now=now)
    except jotkit.JotkitError as exc:
        raise ClientAuthError("The client assertion is invalid.", str(exc)[:80]) from None
    jti, exp = claims["jti"], claims["exp"]
    if not isinstance(jti, str) or not 0 < len(jti) <= 255:
        raise ClientAuthError("The client assertion's jti must be a string.", "bad_jti")
    if not isinstance(exp, int | float) or exp - now > MAX_ASSERTION_LIFETIME:
        raise ClientAuthError("The client assertion lives too long (max 1 hour).", "long")
    if not await service.store.assertions.use(client_id, jti, float(exp), now):
        raise ClientAuthError("The client assertion was used before (jti).", "replay")
    return client


async def _lookup(
    service: AuthService, client_id: str, cache: ClientCache | None
) -> ClientRecord | None:
    if cache is None:
        return await service.store.clients.get(client_id)
    return await cache.get(service, client_id)


async def _client_keys(
    client: ClientRecord, jwks_clients: dict[str, JWKSClient] | None
) -> jotkit.KeySet:
    import jotkit
    from jotkit.jwks_client import JWKSClient

    if client.jwks is not None:
        return jotkit.KeySet.from_jwks(json.dumps(client.jwks))
    assert client.jwks_uri is not None
    cache = jwks_clients if jwks_clients is not None else {}
    remote = cache.get(client.jwks_uri)
    if remote is None:
        host = urlsplit(client.jwks_uri).hostname
        remote = JWKSClient(client.jwks_uri, allow_insecure_http=host in _LOOPBACK)
        if len(cache) < 1024:
            cache[client.jwks_uri] = remote
    return await remote.aget_key_set()
