"""Consents a user gave to third-party clients: list and revoke them over the API (with the
user's own first-party access token) and from the CLI (``jotkit consents list|revoke``).

Revoking a consent also revokes the refresh tokens the client holds for the user, so the
client must ask again (through the consent page) to regain access.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from ..deps import BEARER_SECURITY, require_auth, service_dependency
from ..errors import ServiceError
from ..routes.models import ErrorBody, StatusResponse
from ..sessions import AuthService

__all__ = ["ConsentItem", "list_items", "revoke_consent", "router"]

router = APIRouter(
    prefix="/oauth/consents",
    tags=["oauth"],
    responses={code: {"model": ErrorBody} for code in (400, 401, 403, 404, 422)},
)
Claims = Annotated[dict[str, Any], Depends(require_auth)]
Service = Annotated[AuthService, Depends(service_dependency)]
CLIENT_ID = r"^[\x21-\x7e]{1,128}$"


class ConsentItem(BaseModel):
    """One remembered consent."""

    client_id: str
    client_name: str | None
    scopes: list[str]
    granted_at: float


async def list_items(svc: AuthService, user_id: str) -> list[ConsentItem]:
    """The user's consents with the clients' display names."""
    out = []
    for c in await svc.store.sso.list_consents(user_id):
        client = await svc.store.clients.get(c.client_id)
        out.append(
            ConsentItem(
                client_id=c.client_id,
                client_name=client.name if client else None,
                scopes=list(c.scopes),
                granted_at=c.granted_at,
            )
        )
    return out


async def revoke_consent(svc: AuthService, user_id: str, client_id: str) -> bool:
    """Forget the consent and revoke the client's refresh families for this user."""
    if not await svc.store.sso.revoke_consent(user_id, client_id):
        return False
    for family_id in await svc.store.sso.grants_of(user_id, client_id):
        await svc.revoke_family(family_id, "consent_revoked")
    svc.audit.event("consent_revoked", user_id=user_id, client_id=client_id)
    return True


@router.get(
    "", response_model=list[ConsentItem], openapi_extra=BEARER_SECURITY,
    summary="List the consents you gave",
)
async def consents(claims: Claims, svc: Service) -> list[ConsentItem]:
    """Third-party clients you allowed, with the scopes you granted."""
    return await list_items(svc, claims["sub"])


@router.delete(
    "/{client_id}", response_model=StatusResponse, openapi_extra=BEARER_SECURITY,
    summary="Revoke a consent",
)
async def revoke(
    client_id: Annotated[str, Path(pattern=CLIENT_ID)], claims: Claims, svc: Service
) -> StatusResponse:
    """Withdraw a consent; the client's refresh tokens for you are revoked too."""
    if not await revoke_consent(svc, claims["sub"], client_id):
        raise ServiceError("not_found", "No consent for this client.")
    return StatusResponse(status="revoked")
