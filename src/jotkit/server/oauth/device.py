"""The device authorization grant (RFC 8628): ``POST /oauth/device_authorization`` and the
hosted user-code page ``/oauth/device``. The token endpoint's side (polling) is
:func:`.grants.device_code`.

* The device authorization endpoint (§3.1-3.2) authenticates the client like the token
  endpoint (public clients send ``client_id``), checks the client is registered for the grant,
  the scopes and resources, and answers a ``device_code`` (256 random bits, only its SHA-256
  at rest), a ``user_code`` (eight characters of ``BCDFGHJKLMNPQRSTVWXZ``, shown
  ``XXXX-XXXX``: no vowels, no look-alikes, §6.1), the verification URIs, ``expires_in`` and
  ``interval``.
* The user-code page (§3.3) takes the code (CSRF-protected; wrong codes are counted per
  address and refused with 429 past ``JOTKIT_USER_CODE_LIMIT``, §5.1), signs the user in
  through the hosted login form if there is no SSO session, then asks "Allow <client>?" with
  the code shown again (§5.4: the user compares it with the device); the confirmation's CSRF
  token is bound to the SSO session and the user code.
"""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Request, Response

from ..deps import client_info, service
from ..errors import ServiceError
from ..sessions import AuthService
from ..store.base import DeviceCodeRecord
from ..store.sso import SsoSessionRecord
from ..throttle import ClientAuthThrottle
from . import sso
from .authorize import scope_items, sign_in
from .clients import DEVICE_CODE_GRANT, allowed_scopes, select_resources
from .codes import hash_code
from .grants import parse_scope
from .pages import form_fields, message_page, page_response, single_fields
from .routes import client_from_request, read_form

__all__ = [
    "DEVICE_AUTHORIZATION_PATH",
    "USER_CODE_ALPHABET",
    "VERIFICATION_PATH",
    "format_user_code",
    "new_user_code",
    "normalize_user_code",
    "router",
]

DEVICE_AUTHORIZATION_PATH = "/oauth/device_authorization"
VERIFICATION_PATH = "/oauth/device"
LOGIN_PATH = "/oauth/device/login"
CONFIRM_PATH = "/oauth/device/confirm"
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"  # RFC 8628 §6.1: 20^8 codes, about 34.5 bits
_USER_CODE = re.compile(f"[{USER_CODE_ALPHABET}]{{8}}")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM = "application/x-www-form-urlencoded"

router = APIRouter(tags=["oauth"])


def new_user_code() -> str:
    """Eight random characters of :data:`USER_CODE_ALPHABET` (stored form, no dash)."""
    return "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))


def format_user_code(code: str) -> str:
    """``XXXX-XXXX``, the form shown to the user (RFC 8628 §6.1)."""
    return f"{code[:4]}-{code[4:]}"


def normalize_user_code(text: str) -> str | None:
    """What the user typed as a stored code: case, dashes and spaces are ignored (§6.1);
    None when it cannot be a code."""
    code = re.sub(r"[\s-]", "", text[:40]).upper()
    return code if _USER_CODE.fullmatch(code) else None


@router.post(
    DEVICE_AUTHORIZATION_PATH,
    summary="Device authorization endpoint (RFC 8628 §3.1)",
    response_class=Response,
    responses={200: {"description": "device_code, user_code, verification_uri (RFC 8628 §3.2)"}},
    openapi_extra={"requestBody": {"required": True, "content": {_FORM: {"schema": {
        "type": "object",
        "properties": {name: {"type": "string"} for name in (
            "client_id", "scope", "resource", "client_secret", "client_assertion_type",
            "client_assertion",
        )},
    }}}}},
)
async def device_authorization(request: Request) -> Response:
    """Start a device authorization: answer the codes the device shows and polls with."""
    svc = service(request)
    form, resources = await read_form(request)
    client = await client_from_request(request, form, DEVICE_AUTHORIZATION_PATH)
    if DEVICE_CODE_GRANT not in client.grant_types:
        raise ServiceError("unauthorized_client", "This client may not use the device grant.")
    requested = parse_scope(form.get("scope"))
    allowed = allowed_scopes(client)
    scope = requested if requested is not None else allowed
    refused = [s for s in scope if s not in allowed]
    if refused:
        raise ServiceError("invalid_scope", f"Scope not allowed for this client: {refused[0]}")
    try:
        select_resources(client, svc.settings.audience, resources)
    except ValueError as exc:
        raise ServiceError("invalid_target", str(exc)) from None
    now = svc.clock.now()
    s = svc.settings
    device_code = secrets.token_urlsafe(32)
    for _ in range(8):  # a user-code collision among live codes is rare: draw again
        user_code = new_user_code()
        record = DeviceCodeRecord(
            code_hash=hash_code(device_code), user_code=user_code, client_id=client.client_id,
            scope=tuple(scope), resource=tuple(dict.fromkeys(resources)), created_at=now,
            expires_at=now + s.device_code_ttl, interval=s.device_code_interval,
        )
        if await svc.store.devices.create(record):
            break
    else:
        raise ServiceError("temporarily_unavailable", "No free user code; try again.")
    shown = format_user_code(user_code)
    verification_uri = svc.issuer + VERIFICATION_PATH
    body = {
        "device_code": device_code,
        "user_code": shown,
        "verification_uri": verification_uri,
        "verification_uri_complete": f"{verification_uri}?{urlencode({'user_code': shown})}",
        "expires_in": int(s.device_code_ttl),
        "interval": int(s.device_code_interval),
    }
    svc.audit.event("device_authorization", client_id=client.client_id)
    return Response(
        json.dumps(body, separators=(",", ":")), media_type="application/json",
        headers=_NO_STORE,
    )


# -- the hosted user-code page ------------------------------------------------------------------
def _throttle(svc: AuthService) -> ClientAuthThrottle:
    s = svc.settings
    return ClientAuthThrottle(
        svc.store.rate_limits, limit=s.user_code_limit, window=s.user_code_window,
        kind="user-code", what="device codes",
    )


def _entry_page(
    request: Request, user_code: str = "", *, error: str | None = None, status: int = 200
) -> Response:
    svc: AuthService = request.app.state.service
    response = Response()
    binding = sso.binding_of(svc, request, response)
    page = page_response(
        request, "device.html", title="Connect a device", status=status, client_name=None,
        action=VERIFICATION_PATH, csrf_token=sso.login_csrf(request.app.state.sso_csrf, binding),
        user_code=user_code[:20], error=error,
    )
    _copy_cookies(response, page)
    return page


def _login_page(
    request: Request, device: DeviceCodeRecord, client_name: str, *,
    error: str | None = None, email: str | None = None, status: int = 200,
) -> Response:
    svc: AuthService = request.app.state.service
    response = Response()
    binding = sso.binding_of(svc, request, response)
    page = page_response(
        request, "login.html", title="Sign in", status=status, client_name=client_name,
        action=LOGIN_PATH, csrf_token=sso.login_csrf(request.app.state.sso_csrf, binding),
        authorization_request="", pushed="", user_code=format_user_code(device.user_code),
        email=email or "", error=error,
    )
    _copy_cookies(response, page)
    return page


async def _confirm_page(
    request: Request, svc: AuthService, device: DeviceCodeRecord, client_name: str,
    session: SsoSessionRecord, cookies: Response | None = None,
) -> Response:
    user = await svc.store.users.get(session.user_id)
    page = page_response(
        request, "device.html", title="Allow this device?", client_name=client_name,
        email=user.email if user else None, action=CONFIRM_PATH,
        csrf_token=sso.consent_csrf(request.app.state.sso_csrf, session.sid,
                                    "device:" + device.user_code),
        user_code=format_user_code(device.user_code), scopes=scope_items(device.scope),
        error=None,
    )
    _copy_cookies(cookies, page)
    return page


def _copy_cookies(source: Response | None, target: Response) -> None:
    if source is None:
        return
    target.raw_headers.extend(h for h in source.raw_headers if h[0] == b"set-cookie")


async def _form(request: Request) -> dict[str, str] | Response:
    """The page's form fields (single text values), or the entry page saying it is
    malformed (a file, a repeated field, too many fields)."""
    fields = single_fields(await form_fields(request, 12))
    if fields is None:
        return _entry_page(request, status=400, error="The form is malformed.")
    return fields


async def _pending(
    request: Request, svc: AuthService, text: str
) -> tuple[DeviceCodeRecord, str] | Response:
    """The pending device code the user typed, and its client's name; a wrong code counts
    against the address (429 past the limit, RFC 8628 §5.1) and shows the entry form."""
    ip, now = client_info(request).ip, svc.clock.now()
    throttle = _throttle(svc)
    try:
        await throttle.check(ip, now)
    except ServiceError as exc:
        page = _entry_page(request, text, status=429,
                           error="Too many wrong codes. Wait a moment before you try again.")
        page.headers.update({k: v for k, v in exc.headers.items() if k == "Retry-After"})
        return page
    code = normalize_user_code(text)
    device = await svc.store.devices.pending(code, now) if code is not None else None
    client = await svc.store.clients.get(device.client_id) if device is not None else None
    if device is None or client is None:
        await throttle.failed(ip, now)
        svc.audit.event("user_code_refused", ip=ip)
        return _entry_page(request, text, status=400,
                           error="This code is not valid or has expired. Check your device.")
    return device, client.name


@router.get(VERIFICATION_PATH, include_in_schema=False)
async def device_page(request: Request) -> Response:
    """The verification URI (RFC 8628 §3.3); ``?user_code=`` (the complete URI, §3.3.1) only
    fills the form in: the user still confirms it."""
    return _entry_page(request, request.query_params.get("user_code", ""))


@router.post(VERIFICATION_PATH, include_in_schema=False)
async def device_submit(request: Request) -> Response:
    """The user code form: then the login form or the confirmation."""
    svc: AuthService = request.app.state.service
    form = await _form(request)
    if isinstance(form, Response):
        return form
    if not sso.login_csrf_valid(request.app.state.sso_csrf, request,
                                form.get("csrf_token", ""), svc):
        return _entry_page(request, form.get("user_code", ""), status=403,
                           error="This form expired or was not sent by this site. Try again.")
    found = await _pending(request, svc, form.get("user_code", ""))
    if isinstance(found, Response):
        return found
    device, client_name = found
    session = await sso.current_session(svc, request)
    if session is None:
        return _login_page(request, device, client_name)
    return await _confirm_page(request, svc, device, client_name, session)


@router.post(LOGIN_PATH, include_in_schema=False)
async def device_login(request: Request) -> Response:
    """The hosted login form for a device code (:func:`.authorize.sign_in`)."""
    svc: AuthService = request.app.state.service
    form = await _form(request)
    if isinstance(form, Response):
        return form
    found = await _pending(request, svc, form.get("user_code", ""))
    if isinstance(found, Response):
        return found
    device, client_name = found

    def again(error: str, email: str | None = None, status: int = 200) -> Response:
        return _login_page(request, device, client_name, error=error, email=email,
                           status=status)

    signed_in = await sign_in(request, svc, form, again, client_id=device.client_id)
    if isinstance(signed_in, Response):
        return signed_in
    session, cookies = signed_in
    return await _confirm_page(request, svc, device, client_name, session, cookies)


@router.post(CONFIRM_PATH, include_in_schema=False)
async def device_confirm(request: Request) -> Response:
    """Allow or deny the device (RFC 8628 §3.3): the code is decided once."""
    svc: AuthService = request.app.state.service
    form = await _form(request)
    if isinstance(form, Response):
        return form
    session = await sso.current_session(svc, request)
    code = normalize_user_code(form.get("user_code", ""))
    if session is None or code is None or not sso.consent_csrf_valid(
        request.app.state.sso_csrf, form.get("csrf_token", ""), session.sid, "device:" + code
    ):
        svc.audit.event("sso_csrf_failed", form="device")
        return message_page(request, "Cannot continue",
                            "This form was not sent by this site or has expired.", status=403)
    approve = form.get("decision") == "allow"
    decided = await svc.store.devices.decide(
        code, svc.clock.now(), approve=approve, user_id=session.user_id, sid=session.sid,
        auth_time=session.auth_time,
    )
    if not decided:
        return message_page(request, "Cannot continue",
                            "This code has expired or was already used.", status=400)
    svc.audit.event("device_approved" if approve else "device_denied",
                    user_id=session.user_id, session_id=session.sid)
    if approve:
        return message_page(request, "Device connected",
                            "You can return to your device: it is now signed in.")
    return message_page(request, "Device not connected",
                        "You denied access. You can close this page.")
