"""Django REST framework: an authentication class and scope/role permissions.

::

    # settings.py
    JOTKIT = {"JWKS_URL": "https://auth.example.com/.well-known/jwks.json",
              "ISSUER": "https://auth.example.com", "AUDIENCE": "orders"}
    REST_FRAMEWORK = {
        "DEFAULT_AUTHENTICATION_CLASSES": ["jotkit.integrations.django.drf.JotkitAuthentication"],
        "EXCEPTION_HANDLER": "jotkit.integrations.django.drf.exception_handler",
    }

    # views.py
    from jotkit.integrations.django.drf import HasRoles, HasScopes

    class Orders(APIView):
        permission_classes = [HasScopes("orders:read")]

        def get(self, request):
            return Response({"sub": request.auth["sub"]})

``request.auth`` holds the verified claims and ``request.user`` a :class:`TokenUser`.
An invalid token is raised as :class:`BearerAPIException`, which DRF's own exception
handler already answers with the shared status, ``WWW-Authenticate`` challenge (RFC 6750
§3) and JSON body. Set ``EXCEPTION_HANDLER`` to :func:`exception_handler` to answer the
permission refusals the same way and to add ``Cache-Control: no-store``, as the other
adapters do.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Self

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import APIException, NotAuthenticated, PermissionDenied
from rest_framework.permissions import BasePermission, OperationHolderMixin

if TYPE_CHECKING:  # rest_framework.views imports DEFAULT_AUTHENTICATION_CLASSES: no cycle
    from rest_framework.request import Request
    from rest_framework.response import Response

from jotkit.integrations._verifier import BearerError, Claims, TokenVerifier, check_grants
from jotkit.integrations.django._core import authenticate_or_none, get_claims
from jotkit.integrations.django._settings import get_verifier

__all__ = [
    "BearerAPIException",
    "HasRoles",
    "HasScopes",
    "HasToken",
    "JotkitAuthentication",
    "TokenUser",
    "exception_handler",
]


_DENIED = "_jotkit_denied"


def _missing() -> BearerError:
    return BearerError(401, None, "A bearer access token is required", reason="missing_token")


class BearerAPIException(APIException):
    """A :class:`BearerError` raised through DRF (status, challenge, JSON body preserved)."""

    def __init__(self, error: BearerError, realm: str | None) -> None:
        """Carry ``error``; DRF's handler sends ``detail`` (the body dict) as the response."""
        super().__init__(detail=error.body())
        self.status_code = error.status
        self.bearer_error = error
        self.realm = realm
        # read by DRF's default exception handler
        self.auth_header = error.www_authenticate(realm)
        self.wait = error.retry_after


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, answering jotkit refusals exactly as the other adapters (RFC 6750 §3).

    Adds the headers of :meth:`BearerError.headers` (``Cache-Control: no-store``), and
    renders a :class:`HasToken` refusal (raised by DRF as ``NotAuthenticated`` or
    ``PermissionDenied``) with its 401/403 status, challenge and body.
    """
    if isinstance(exc, NotAuthenticated | PermissionDenied):
        request = context.get("request")
        denied = getattr(getattr(request, "_request", None), _DENIED, None)
        if isinstance(denied, BearerAPIException):
            exc = denied
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, BearerAPIException):
        for name, value in exc.bearer_error.headers(exc.realm).items():
            response[name] = value
    return response


class TokenUser:
    """The subject of a verified access token, as DRF's ``request.user`` (no database).

    ``pk``/``id``/``username`` are the ``sub`` claim (RFC 7519 §4.1.2); ``claims`` are
    the verified claims. Subclass :class:`JotkitAuthentication` and override
    :meth:`~JotkitAuthentication.get_user` to load a model user instead.
    """

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, claims: Claims) -> None:
        """Wrap verified claims."""
        self.claims = claims

    @property
    def pk(self) -> str:
        """The ``sub`` claim."""
        return str(self.claims.get("sub", ""))

    id = pk
    username = pk

    def get_username(self) -> str:
        """The ``sub`` claim."""
        return self.pk

    def __str__(self) -> str:
        return f"TokenUser {self.pk}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TokenUser) and other.pk == self.pk

    def __hash__(self) -> int:
        return hash(self.pk)


class JotkitAuthentication(BaseAuthentication):
    """DRF authentication through the shared :class:`TokenVerifier` (RFC 6750 §2.1).

    Returns None for a request without a bearer token (other authenticators, or
    ``AllowAny``, then decide); a token that is sent must be valid (401/400 otherwise).
    The verifier comes from ``settings.JOTKIT`` unless a subclass sets ``verifier``.
    """

    verifier: TokenVerifier | None = None

    def get_verifier(self) -> TokenVerifier:
        """The class's ``verifier``, else the one of ``settings.JOTKIT``."""
        return self.verifier if self.verifier is not None else get_verifier()

    def get_user(self, claims: Claims) -> Any:
        """The ``request.user`` for verified claims: a :class:`TokenUser` by default."""
        return TokenUser(claims)

    def authenticate(self, request: Request) -> tuple[Any, Claims] | None:
        """Verify the bearer token; ``(user, claims)`` or None when none was sent."""
        verifier = self.get_verifier()
        django_request = request._request
        # JotkitMiddleware already verified it with the settings' verifier
        claims = get_claims(django_request) if self.verifier is None else None
        if claims is None:
            try:  # bearer, cookie or DPoP (RFC 9449 §7) credentials
                claims = authenticate_or_none(verifier, django_request, required=False)
            except BearerError as exc:
                raise BearerAPIException(exc, verifier.realm) from None
            if claims is None:
                return None  # no credentials at all (RFC 6750 §3.1)
        return self.get_user(claims), claims

    def authenticate_header(self, request: Request) -> str:
        """The challenge for a request without credentials (RFC 6750 §3: ``Bearer``)."""
        realm = self.get_verifier().realm
        challenge = BearerError(401, None, "").www_authenticate(realm)
        assert challenge is not None
        return challenge


class HasToken(OperationHolderMixin, BasePermission):
    """Require a verified jotkit token with ``scopes`` (all) and ``roles`` (any one).

    An instance goes straight into ``permission_classes`` (DRF calls each entry; calling
    an instance gives a fresh copy for the request) and composes with ``&``, ``|`` and
    ``~`` like DRF's own permissions. A refusal is answered by DRF's ``permission_denied``;
    :func:`exception_handler` turns it into the shared RFC 6750 answer: 401 without a
    jotkit token (§3.1, no error code), 403 ``insufficient_scope`` without the grants.
    """

    message: Any = None
    code: str | None = None

    def __init__(self, *, scopes: Iterable[str] = (), roles: Iterable[str] = ()) -> None:
        """Keep the requirements."""
        self.scopes = tuple(scopes)
        self.roles = tuple(roles)

    def __call__(self) -> Self:
        """A fresh copy for one request (``message`` is per request)."""
        return type(self)(scopes=self.scopes, roles=self.roles)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(scopes={self.scopes!r}, roles={self.roles!r})"

    def has_permission(self, request: Request, view: Any) -> bool:
        """True when ``request.auth`` holds jotkit claims granting the requirements."""
        authenticator = request.successful_authenticator
        claims = request.auth
        if not isinstance(authenticator, JotkitAuthentication) or not isinstance(claims, dict):
            return self._deny(request, _missing(), get_verifier().realm)
        try:
            check_grants(claims, self.scopes, self.roles)
        except BearerError as exc:
            return self._deny(request, exc, authenticator.get_verifier().realm)
        return True

    def _deny(self, request: Request, error: BearerError, realm: str | None) -> bool:
        # DRF raises PermissionDenied(detail=message) / NotAuthenticated from this;
        # exception_handler finds the precise error on the request
        self.message = error.body()
        self.code = error.reason
        setattr(request._request, _DENIED, BearerAPIException(error, realm))
        return False


def HasScopes(*scopes: str) -> HasToken:
    """A permission requiring every one of ``scopes`` (``scope``/``scp`` claims, RFC 8693 §4.2)."""
    return HasToken(scopes=scopes)


def HasRoles(*roles: str) -> HasToken:
    """A permission requiring at least one of ``roles`` (``roles`` claim, RFC 9068 §7.2.1.1)."""
    return HasToken(roles=roles)
