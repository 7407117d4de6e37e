"""Consents a user gave to third-party clients: list and revoke them over the API (with the
user's own first-party access token) and from the CLI (``jotkit consents list|revoke``).

Revoking a consent also revokes the refresh tokens the client holds for the user, so the
client must ask again (through the consent page) to regain access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from ..deps import BEARER_SECURITY, require_auth, service
from ..errors import ServiceError
from ..sessions import AuthService

if TYPE_CHECKING:
    import typer

__all__ = ["ConsentItem", "register_cli", "revoke_consent", "router"]

router = APIRouter(prefix="/oauth/consents", tags=["oauth"])
Claims = Annotated[dict[str, Any], Depends(require_auth)]
Service = Annotated[AuthService, Depends(service)]
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


@router.delete("/{client_id}", openapi_extra=BEARER_SECURITY, summary="Revoke a consent")
async def revoke(
    client_id: Annotated[str, Path(pattern=CLIENT_ID)], claims: Claims, svc: Service
) -> dict[str, str]:
    """Withdraw a consent; the client's refresh tokens for you are revoked too."""
    if not await revoke_consent(svc, claims["sub"], client_id):
        raise ServiceError("not_found", "No consent for this client.")
    return {"status": "revoked"}


def register_cli(app: typer.Typer) -> None:
    """Add ``jotkit consents list EMAIL`` and ``jotkit consents revoke EMAIL CLIENT_ID``."""
    import typer

    from ..cli import Config, DataDir, _run, _settings, _ts

    group = typer.Typer(help="Consents users gave to OAuth clients.", no_args_is_help=True)
    app.add_typer(group, name="consents")

    async def _user_id(svc: AuthService, email: str) -> str:
        from ..sessions import normalize_email

        try:
            user = await svc.store.users.get_by_email(normalize_email(email))
        except ValueError:
            user = None
        if user is None:
            typer.echo(f"error: no user {email}", err=True)
            raise typer.Exit(1)
        return user.id

    @group.command("list")
    def consents_list(email: str, data_dir: DataDir = None, config: Config = None) -> None:
        """List the consents of a user."""

        async def work(svc: AuthService) -> list[ConsentItem]:
            return await list_items(svc, await _user_id(svc, email))

        for item in _run(_settings(data_dir, config), work):
            name = item.client_name or "(removed client)"
            typer.echo(
                f"{item.client_id}  {name}  {' '.join(item.scopes)}  {_ts(item.granted_at)}"
            )

    @group.command("revoke")
    def consents_revoke(
        email: str, client_id: str, data_dir: DataDir = None, config: Config = None
    ) -> None:
        """Revoke a user's consent to a client (and the client's refresh tokens)."""

        async def work(svc: AuthService) -> bool:
            return await revoke_consent(svc, await _user_id(svc, email), client_id)

        if not _run(_settings(data_dir, config), work):
            typer.echo("error: no such consent", err=True)
            raise typer.Exit(1)
        typer.echo(f"revoked consent of {email} to {client_id}")
