"""The authorization endpoint (RFC 6749 §3.1 and §4.1, OAuth 2.1 §4.1, OIDC Core §3.1.2) and
its hosted login and consent pages.

One request runs through small named steps, in this order:

1. :func:`parse_request`: one value per parameter (RFC 6749 §3.1), ``resource`` may repeat;
   :func:`check_request_uri` swaps a ``client_id`` + ``request_uri`` pair for the parameters
   the client pushed to ``/oauth/par`` (RFC 9126 §4: single use, unexpired, same client;
   nothing else of the query is used);
2. :func:`check_client` and :func:`check_redirect_uri`: an unknown client or a redirect URI
   that is not one of the client's registered strings (exact match, no prefix or wildcard;
   RFC 9700 §4.1.3) gets an error *page*, never a redirect (RFC 6749 §4.1.2.1); a client
   that must push its requests (RFC 9126 §6, or ``JOTKIT_REQUIRE_PAR``) and did not is sent
   ``invalid_request``;
3. :func:`check_request`: every other problem is sent to the redirect URI with ``error``,
   ``state`` and ``iss`` (RFC 9207): response type, PKCE (S256 only, RFC 7636 §4.3 / OAuth 2.1
   §4.1.1), scopes, prompt, max_age, resource (RFC 8707 §2), ``dpop_jkt`` (RFC 9449 §10: the
   code is bound to that key), unsupported request objects;
4. :func:`run`: the SSO session (``prompt=login``, ``max_age`` and an ``id_token_hint``
   naming another user force a new sign-in, OIDC Core §3.1.2.1; an invalid hint is
   ``invalid_request``; ``prompt=none`` answers ``login_required`` / ``consent_required``
   instead of a page),
   consent for third-party clients, then :func:`~.codes.issue_code` and the redirect.

The login and consent forms carry the original request (re-validated on every post) and a
CSRF token, so nothing of a half-done request is stored server-side. A pushed request carries
a MAC of itself and of a deadline (``pushed``, :data:`PUSHED_FORM_TTL` after its
``request_uri`` was spent), so it stays a pushed request across the forms, for a while only.

:mod:`.par` validates a pushed request with the same steps (:func:`validate`).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ..csrf import CsrfSigner
from ..deps import client_info
from ..errors import ServiceError
from ..sessions import AuthService
from ..store.sso import SsoSessionRecord
from . import sso
from .clients import ClientRecord, allowed_scopes, select_resources
from .codes import AuthorizationRequest, hash_code, issue_code
from .pages import form_fields, message_page, page_response, single_fields

__all__ = [
    "JKT",
    "REQUEST_URI_PREFIX",
    "AuthzError",
    "AuthzParams",
    "PageError",
    "check_request_uri",
    "check_rest",
    "parse_request",
    "router",
    "scope_items",
    "sign_in",
    "validate",
]

router = APIRouter(include_in_schema=False)

_SCOPE_TEXT = {
    "openid": "Confirm who you are (your account identifier)",
    "profile": "See your basic profile",
    "email": "See your email address",
    "offline_access": "Stay connected while you are away (refresh tokens)",
}
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256(verifier)), RFC 7636 §4.2
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")  # RFC 6749 §3.3 scope-token
JKT = re.compile(r"[A-Za-z0-9_-]{43}")  # BASE64URL(SHA-256 JWK thumbprint), RFC 9449 §10
_MAX_VALUE = 2048
_MAX_FIELDS = 40
_REPEATABLE = frozenset({"resource"})
REQUEST_URI_PREFIX = "urn:ietf:params:oauth:request_uri:"  # RFC 9126 §2.2
PUSHED_FORM_TTL = 600.0  # seconds the login / consent forms may carry a pushed request
LOGIN_PATH = "/oauth/authorize/login"
CONSENT_PATH = "/oauth/authorize/consent"


class AuthzError(Exception):
    """An error for the client: sent to its redirect URI (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class PageError(Exception):
    """An error shown to the user only: the client or its redirect URI is not trusted."""

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True, slots=True)
class AuthzParams:
    """A validated authorization request."""

    client: ClientRecord
    redirect_uri: str
    state: str | None
    scope: tuple[str, ...]
    code_challenge: str
    nonce: str | None
    prompt: frozenset[str]
    max_age: int | None
    login_hint: str | None
    resource: tuple[str, ...]
    raw: tuple[tuple[str, str], ...]  # what the forms carry back
    id_token_hint: str | None = None  # checked by :func:`run` (OIDC Core §3.1.2.1)
    pushed: bool = False  # came through /oauth/par (RFC 9126)
    pushed_until: float = 0.0  # until when the forms may carry it as pushed
    dpop_jkt: str | None = None  # RFC 9449 §10: the code is bound to this key

    def encoded(self) -> str:
        """The request as a query string (hidden form field)."""
        return urlencode(self.raw)


# -- steps ------------------------------------------------------------------------------------
def parse_request(pairs: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Group the parameters; a repeated parameter (other than ``resource``), an over-long
    value or a NUL byte is refused (RFC 6749 §3.1)."""
    if len(pairs) > _MAX_FIELDS:
        raise PageError("The request has too many parameters.")
    params: dict[str, list[str]] = {}
    for name, value in pairs:
        if len(value) > _MAX_VALUE or "\x00" in value or "\x00" in name:
            raise PageError(f"The parameter {name[:40]!r} is too long or malformed.")
        params.setdefault(name, []).append(value)
    return params


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1 and name not in _REPEATABLE:
        raise AuthzError("invalid_request", f"The {name} parameter is repeated.")
    return values[0] or None


async def check_client(svc: AuthService, params: dict[str, list[str]]) -> ClientRecord:
    """The registered client named by ``client_id`` (else an error page)."""
    values = params.get("client_id") or []
    if len(values) != 1 or not values[0]:
        raise PageError("The request does not name exactly one client (client_id).")
    client = await svc.store.clients.get(values[0])
    if client is None:
        raise PageError("The application that sent you here is not registered.")
    return client


def check_redirect_uri(client: ClientRecord, params: dict[str, list[str]]) -> str:
    """The ``redirect_uri``, which must equal one registered string exactly (RFC 9700
    §4.1.3; OIDC Core §3.1.2.1 makes it required)."""
    values = params.get("redirect_uri") or []
    if len(values) != 1 or values[0] not in client.redirect_uris:
        raise PageError(
            "The redirect address of this request is not registered for the application."
        )
    return values[0]


async def check_request_uri(
    svc: AuthService, params: dict[str, list[str]]
) -> dict[str, list[str]]:
    """RFC 9126 §4: ``client_id`` + ``request_uri`` name a pushed request, spent here once
    (:meth:`~..store.base.ParStore.consume`); its parameters replace the query's, which are
    ignored. A replayed, expired, unknown or foreign ``request_uri`` gets an error page (the
    redirect URI is in the pushed request, so there is none to trust)."""
    client = await check_client(svc, params)
    values = params.get("request_uri") or []
    if len(values) != 1 or not values[0].startswith(REQUEST_URI_PREFIX):
        raise PageError("The request_uri parameter is malformed.")
    record = await svc.store.par.consume(hash_code(values[0]), client.client_id,
                                         svc.clock.now())
    if record is None:
        svc.audit.event("par_request_uri_refused", client_id=client.client_id)
        raise PageError("The request_uri is unknown, expired, already used or not this "
                        "application's.")
    return parse_request(record.params)


async def validate(
    svc: AuthService, params: dict[str, list[str]], *, pushed: bool
) -> AuthzParams:
    """Steps 2 and 3 (:func:`check_client`, :func:`check_redirect_uri`,
    :func:`check_rest`). Raise :class:`PageError` or :class:`AuthzError`. ``/oauth/par``
    validates pushed requests with this very function."""
    client = await check_client(svc, params)
    return check_rest(svc, client, check_redirect_uri(client, params), params, pushed=pushed)


def check_rest(
    svc: AuthService, client: ClientRecord, redirect_uri: str, params: dict[str, list[str]],
    *, pushed: bool,
) -> AuthzParams:
    """Step 3: the PAR requirement (RFC 9126 §6 ``require_pushed_authorization_requests``
    per client, or ``JOTKIT_REQUIRE_PAR``; checked unless ``pushed``), then
    :func:`check_request`, then the ``resource`` values against the client's audiences
    (RFC 8707 §2 ``invalid_target``)."""
    if not pushed and (client.require_par or svc.settings.require_par):
        raise AuthzError(
            "invalid_request",
            "This client must push its authorization request first (RFC 9126, /oauth/par).",
        )
    req = check_request(client, redirect_uri, params)
    try:  # RFC 8707 §2: refused here, not after the code is spent (as at the device endpoint)
        select_resources(client, svc.settings.audience, req.resource)
    except ValueError as exc:
        raise AuthzError("invalid_target", str(exc)) from None
    return dataclasses.replace(req, pushed=pushed)


def check_request(
    client: ClientRecord, redirect_uri: str, params: dict[str, list[str]]
) -> AuthzParams:
    """Validate everything else; problems become :class:`AuthzError` (sent to the client)."""
    if "request" in params:
        raise AuthzError("request_not_supported", "Request objects are not supported.")
    if "request_uri" in params:
        raise AuthzError("request_uri_not_supported", "request_uri is not supported.")
    response_type = _one(params, "response_type")
    if response_type != "code":
        raise AuthzError("unsupported_response_type", "Only response_type=code is supported.")
    if "authorization_code" not in client.grant_types:
        raise AuthzError("unauthorized_client", "The client may not use the code flow.")
    mode = _one(params, "response_mode")
    if mode not in (None, "query"):
        raise AuthzError("invalid_request", "Only response_mode=query is supported.")
    challenge = _one(params, "code_challenge")
    method = _one(params, "code_challenge_method")
    if challenge is None:
        raise AuthzError("invalid_request", "PKCE is required: send code_challenge (S256).")
    if method != "S256":
        raise AuthzError(
            "invalid_request", "code_challenge_method must be S256 (plain is not supported)."
        )
    if not _CHALLENGE.fullmatch(challenge):
        raise AuthzError("invalid_request", "code_challenge is not a base64url SHA-256 value.")
    scope_text = _one(params, "scope") or ""
    scope = tuple(dict.fromkeys(scope_text.split(" "))) if scope_text else ()
    scope = tuple(s for s in scope if s)
    if not scope or not all(_SCOPE_TOKEN.fullmatch(s) for s in scope):
        raise AuthzError("invalid_scope", "The scope parameter is missing or malformed.")
    refused = [s for s in scope if s not in allowed_scopes(client)]
    if refused:
        raise AuthzError("invalid_scope", f"Scope not allowed for this client: {refused[0]}.")
    prompt_text = _one(params, "prompt") or ""
    prompt = frozenset(p for p in prompt_text.split(" ") if p)
    if not prompt <= {"none", "login", "consent"}:
        raise AuthzError("invalid_request", "prompt may be none, login and/or consent.")
    if "none" in prompt and len(prompt) > 1:
        raise AuthzError("invalid_request", "prompt=none cannot be combined with other values.")
    max_age_text = _one(params, "max_age")
    max_age = None
    if max_age_text is not None:
        if not max_age_text.isascii() or not max_age_text.isdigit() or len(max_age_text) > 10:
            raise AuthzError("invalid_request", "max_age must be a non-negative integer.")
        max_age = int(max_age_text)
    resources = tuple(params.get("resource") or ())
    for uri in resources:
        parts = urlsplit(uri)
        if not parts.scheme or not parts.netloc or parts.fragment or "#" in uri:
            raise AuthzError(
                "invalid_target", "resource must be an absolute URI without a fragment."
            )
    dpop_jkt = _one(params, "dpop_jkt")
    if dpop_jkt is not None and not JKT.fullmatch(dpop_jkt):
        raise AuthzError("invalid_request", "dpop_jkt is not a base64url SHA-256 JWK "
                         "thumbprint (RFC 9449 §10).")
    raw = tuple((k, v) for k, values in params.items() for v in values)
    return AuthzParams(
        client=client,
        redirect_uri=redirect_uri,
        state=_one(params, "state"),
        scope=scope,
        code_challenge=challenge,
        nonce=_one(params, "nonce"),
        prompt=prompt,
        max_age=max_age,
        login_hint=_one(params, "login_hint"),
        resource=resources,
        raw=raw,
        id_token_hint=_one(params, "id_token_hint"),
        dpop_jkt=dpop_jkt,
    )


def redirect_to_client(redirect_uri: str, values: dict[str, str | None]) -> RedirectResponse:
    """303 to ``redirect_uri`` with ``values`` added to its query (RFC 6749 §4.1.2; the
    registered query is kept, §3.1.2)."""
    parts = urlsplit(redirect_uri)
    extra = urlencode([(k, v) for k, v in values.items() if v is not None])
    query = f"{parts.query}&{extra}" if parts.query else extra
    target = urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
    return RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})


def error_redirect(svc: AuthService, req: AuthzParams | None, redirect_uri: str,
                   state: str | None, exc: AuthzError) -> RedirectResponse:
    """The error response with ``state`` and ``iss`` (RFC 6749 §4.1.2.1, RFC 9207 §2)."""
    return redirect_to_client(
        redirect_uri,
        {
            "error": exc.error,
            "error_description": exc.description,
            "state": req.state if req is not None else state,
            "iss": svc.issuer,
        },
    )


# -- the pipeline -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Progress:
    fresh_session: SsoSessionRecord | None = None  # signed in by this very request
    consented: bool = False


def _signer(request: Request) -> CsrfSigner:
    signer: CsrfSigner = request.app.state.sso_csrf
    return signer


_PUSHED = "oauth-par\x00"  # CSRF-signer context of the MAC a pushed request carries


def _pushed_mac(request: Request, req: AuthzParams) -> str:
    """The ``pushed`` form field: ``deadline~MAC`` over the deadline and the carried request
    ("" when not pushed)."""
    if not req.pushed:
        return ""
    until = str(int(req.pushed_until))
    return until + "~" + _signer(request).issue(
        _PUSHED + until + "\x00" + hash_code(req.encoded())
    )


def _pushed_until(request: Request, svc: AuthService, field: str, text: str) -> float | None:
    """The deadline of a valid, unexpired ``pushed`` field for the carried ``text``."""
    until, _, mac = field.partition("~")
    if not (until.isascii() and until.isdigit() and len(until) <= 12):
        return None
    if int(until) <= svc.clock.now():
        return None
    if not _signer(request).valid(mac, _PUSHED + until + "\x00" + hash_code(text)):
        return None
    return float(until)


async def _validated(
    svc: AuthService, pairs: Sequence[tuple[str, str]], *, pushed_until: float | None = None
) -> AuthzParams:
    params = parse_request(pairs)
    if "request_uri" in params and pushed_until is None:
        params = await check_request_uri(svc, params)
        pushed_until = svc.clock.now() + PUSHED_FORM_TTL
    client = await check_client(svc, params)
    redirect_uri = check_redirect_uri(client, params)
    try:
        req = check_rest(svc, client, redirect_uri, params, pushed=pushed_until is not None)
        return dataclasses.replace(req, pushed_until=pushed_until or 0.0)
    except AuthzError as exc:
        states = params.get("state") or []
        state = states[0] if len(states) == 1 else None
        raise _Redirect(error_redirect(svc, None, redirect_uri, state, exc)) from None


class _Redirect(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__("redirect")
        self.response = response


def _login_page(
    request: Request,
    svc: AuthService,
    req: AuthzParams,
    *,
    error: str | None = None,
    email: str | None = None,
    status: int = 200,
) -> Response:
    response = Response()
    binding = sso.binding_of(svc, request, response)
    page = page_response(
        request,
        "login.html",
        title="Sign in",
        status=status,
        form_targets=[req.redirect_uri],
        client_name=req.client.name,
        action=LOGIN_PATH,
        csrf_token=sso.login_csrf(_signer(request), binding),
        authorization_request=req.encoded(),
        pushed=_pushed_mac(request, req),
        email=email if email is not None else (req.login_hint or ""),
        error=error,
    )
    for name, value in response.raw_headers:
        if name == b"set-cookie":
            page.raw_headers.append((name, value))
    return page


async def _consent_page(
    request: Request, svc: AuthService, req: AuthzParams, session: SsoSessionRecord,
    set_cookies: Response | None = None,
) -> Response:
    user = await svc.store.users.get(session.user_id)
    page = page_response(
        request,
        "consent.html",
        title="Allow access?",
        form_targets=[req.redirect_uri],
        client_name=req.client.name,
        email=user.email if user else None,
        action=CONSENT_PATH,
        csrf_token=sso.consent_csrf(_signer(request), session.sid, req.client.client_id),
        authorization_request=req.encoded(),
        pushed=_pushed_mac(request, req),
        scopes=scope_items(req.scope),
    )
    _copy_cookies(set_cookies, page)
    return page


def scope_items(scope: Sequence[str]) -> list[dict[str, str]]:
    """What a consent page lists: each scope with its description."""
    return [
        {"name": s, "description": _SCOPE_TEXT.get(s, "Use the API scope " + s)} for s in scope
    ]


def _copy_cookies(source: Response | None, target: Response) -> None:
    if source is None:
        return
    for name, value in source.raw_headers:
        if name == b"set-cookie":
            target.raw_headers.append((name, value))


async def run(
    request: Request, svc: AuthService, req: AuthzParams, progress: _Progress,
    cookies: Response | None = None,
) -> Response:
    """Steps 4 and 5: session, consent, code."""
    now = svc.clock.now()
    hinted = None
    if req.id_token_hint is not None:  # OIDC Core §3.1.2.1: the user the client expects
        from .logout import id_token_hint_claims

        claims = await id_token_hint_claims(svc, req.id_token_hint,
                                            client_id=req.client.client_id)
        if claims is None:
            return error_redirect(
                svc, req, req.redirect_uri, None,
                AuthzError("invalid_request", "id_token_hint is not an ID token this server "
                           "issued to this client."),
            )
        hinted = claims["sub"]
    session = progress.fresh_session or await sso.current_session(svc, request)
    if progress.fresh_session is None:
        stale = session is not None and req.max_age is not None and (
            now - session.auth_time > req.max_age  # OIDC Core §3.1.2.1 max_age
        )
        other_user = session is not None and hinted is not None and session.user_id != hinted
        if session is None or "login" in req.prompt or stale or other_user:
            if "none" in req.prompt:
                return error_redirect(
                    svc, req, req.redirect_uri, None,
                    AuthzError("login_required", "The user is not signed in."
                               if not other_user else
                               "The signed-in user is not the one id_token_hint names."),
                )
            return _login_page(request, svc, req)
    elif hinted is not None and progress.fresh_session.user_id != hinted:
        return error_redirect(  # signed in by this request, as another user (§3.1.2.1)
            svc, req, req.redirect_uri, None,
            AuthzError("login_required", "The signed-in user is not the one id_token_hint "
                       "names."),
        )
    assert session is not None
    user = await svc.store.users.get(session.user_id)
    if user is None or user.disabled:
        return error_redirect(
            svc, req, req.redirect_uri, None,
            AuthzError("access_denied", "The account is not available."),
        )
    if not req.client.first_party and not progress.consented:
        covered = await sso.consent_covers(svc, user.id, req.client.client_id, req.scope)
        if "consent" in req.prompt or not covered:
            if "none" in req.prompt:
                return error_redirect(
                    svc, req, req.redirect_uri, None,
                    AuthzError("consent_required", "The user has not granted these scopes."),
                )
            return await _consent_page(request, svc, req, session, cookies)
    code = await issue_code(
        svc,
        AuthorizationRequest(
            client_id=req.client.client_id,
            user_id=user.id,
            redirect_uri=req.redirect_uri,
            code_challenge=req.code_challenge,
            scope=req.scope,
            nonce=req.nonce,
            auth_time=session.auth_time,
            sid=session.sid,
            resource=req.resource,
            dpop_jkt=req.dpop_jkt,
        ),
    )
    await svc.store.sso.add_participant(session.sid, req.client.client_id, now)
    svc.audit.event(
        "authorization_code", user_id=user.id, session_id=session.sid,
        client_id=req.client.client_id,
    )
    response = redirect_to_client(
        req.redirect_uri, {"code": code, "state": req.state, "iss": svc.issuer}
    )
    _copy_cookies(cookies, response)
    return response


def _error_page(request: Request, exc: PageError) -> Response:
    return message_page(
        request, "Cannot continue", exc.description, status=400,
        detail="You were not sent back to the application, because it could not be verified.",
    )


async def _form_pairs(request: Request) -> list[tuple[str, str]]:
    pairs = await form_fields(request, _MAX_FIELDS + 8)
    if pairs is None:
        raise PageError("The form is malformed.")
    return pairs


async def _start(request: Request, pairs: Sequence[tuple[str, str]]) -> Response:
    svc: AuthService = request.app.state.service
    try:
        req = await _validated(svc, pairs)
    except PageError as exc:
        return _error_page(request, exc)
    except _Redirect as redirect:
        return redirect.response
    return await run(request, svc, req, _Progress())


@router.get("/oauth/authorize")
async def authorize_get(request: Request) -> Response:
    """The authorization endpoint, GET (RFC 6749 §3.1)."""
    return await _start(request, request.query_params.multi_items())


@router.post("/oauth/authorize")
async def authorize_post(request: Request) -> Response:
    """The authorization endpoint, form POST (OIDC Core §3.1.2.1)."""
    try:
        pairs = await _form_pairs(request)
    except PageError as exc:
        return _error_page(request, exc)
    return await _start(request, pairs)


async def _carried(request: Request, svc: AuthService, form: dict[str, str]) -> AuthzParams:
    text = form.get("authorization_request", "")
    if len(text) > 16384:
        raise PageError("The sign-in form is malformed.")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text),
                          max_num_fields=_MAX_FIELDS)
    except ValueError:
        raise PageError("The sign-in form is malformed.") from None
    until = _pushed_until(request, svc, form.get("pushed", ""), text)
    return await _validated(svc, pairs, pushed_until=until)


def _single(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    fields = single_fields(pairs)
    if fields is None:
        raise PageError("The form has a repeated field.")
    return fields


@router.post(LOGIN_PATH)
async def login_submit(request: Request) -> Response:
    """The hosted login form: CSRF-checked, throttled like ``/auth/login``."""
    svc: AuthService = request.app.state.service
    try:
        form = _single(await _form_pairs(request))
        req = await _carried(request, svc, form)
    except PageError as exc:
        return _error_page(request, exc)
    except _Redirect as redirect:
        return redirect.response

    def again(error: str, email: str | None = None, status: int = 200) -> Response:
        return _login_page(request, svc, req, error=error, email=email, status=status)

    signed_in = await sign_in(request, svc, form, again, client_id=req.client.client_id)
    if isinstance(signed_in, Response):
        return signed_in
    session, cookies = signed_in
    return await run(request, svc, req, _Progress(fresh_session=session), cookies)


async def sign_in(
    request: Request,
    svc: AuthService,
    form: dict[str, str],
    login_page: Callable[[str, str | None, int], Response],
    *,
    client_id: str,
) -> tuple[SsoSessionRecord, Response] | Response:
    """The hosted login form's post, shared by every page that signs a user in: CSRF bound
    to the browser, the password checked (throttled like ``/auth/login``), then the SSO
    session opened or re-authenticated. Returns the session and a response holding its
    cookies, or the login page again (``login_page(error, email, status)``)."""
    if not sso.login_csrf_valid(_signer(request), request, form.get("csrf_token", ""), svc):
        svc.audit.event("sso_csrf_failed", form="login", client_id=client_id)
        return login_page(
            "Your sign-in form expired or was not sent by this site. Please try again.",
            None, 403,
        )
    email = form.get("email", "")[:320]
    password = form.get("password", "")[:1024]
    if not email or not password:
        return login_page("Enter your email address and password.", email, 400)
    try:
        user = await svc.check_password(email, password, client_info(request))
    except ServiceError as exc:
        if exc.code == "invalid_credentials":
            return login_page("The email address or password is not correct.", email, 401)
        if exc.spec.status in (429, 503):  # throttled; or shed (a login flood), or an outage
            page = login_page(
                "Too many attempts. Wait a moment before you try again."
                if exc.spec.status == 429
                else "Signing in is busy right now. Please try again in a moment.",
                email,
                exc.spec.status,
            )
            page.headers.update({k: v for k, v in exc.headers.items() if k == "Retry-After"})
            return page
        raise
    cookies = Response()
    previous = await sso.current_session(svc, request)
    if previous is not None and previous.user_id == user.id:  # re-authentication
        now = svc.clock.now()
        await svc.store.sso.reauthenticated(previous.sid, now)
        session = dataclasses.replace(previous, auth_time=now)
        svc.audit.event("sso_reauthenticated", user_id=user.id, session_id=session.sid)
    else:
        if previous is not None:  # another user signs in: this browser's session ends
            from .logout import end_sso_session

            await end_sso_session(svc, previous.sid, reason="replaced")
        session = await sso.open_session(svc, user, cookies)
    return session, cookies


@router.post(CONSENT_PATH)
async def consent_submit(request: Request) -> Response:
    """The consent form: CSRF token bound to the SSO session and client (consent CSRF)."""
    svc: AuthService = request.app.state.service
    try:
        form = _single(await _form_pairs(request))
        req = await _carried(request, svc, form)
    except PageError as exc:
        return _error_page(request, exc)
    except _Redirect as redirect:
        return redirect.response
    session = await sso.current_session(svc, request)
    if session is None:
        return _login_page(request, svc, req)
    if not sso.consent_csrf_valid(
        _signer(request), form.get("csrf_token", ""), session.sid, req.client.client_id
    ):
        svc.audit.event("sso_csrf_failed", form="consent", client_id=req.client.client_id)
        return message_page(
            request, "Cannot continue",
            "This consent form was not sent by this site or has expired.", status=403,
        )
    if form.get("decision") != "allow":
        svc.audit.event("consent_denied", user_id=session.user_id,
                        client_id=req.client.client_id)
        return error_redirect(
            svc, req, req.redirect_uri, None,
            AuthzError("access_denied", "The user denied the request."),
        )
    await svc.store.sso.grant_consent(
        session.user_id, req.client.client_id, req.scope, svc.clock.now()
    )
    svc.audit.event("consent_granted", user_id=session.user_id, client_id=req.client.client_id)
    return await run(request, svc, req, _Progress(fresh_session=session, consented=True))

