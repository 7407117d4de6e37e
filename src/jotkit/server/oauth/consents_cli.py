"""``jotkit consents list EMAIL`` and ``jotkit consents revoke EMAIL CLIENT_ID`` (Typer)."""

from __future__ import annotations

import typer

from ..cli import Config, DataDir, _run, _settings, _ts
from ..sessions import AuthService, normalize_email
from .consents import ConsentItem, list_items, revoke_consent

__all__ = ["register_cli"]


async def _user_id(svc: AuthService, email: str) -> str:
    try:
        user = await svc.store.users.get_by_email(normalize_email(email))
    except ValueError:
        user = None
    if user is None:
        typer.echo(f"error: no user {email}", err=True)
        raise typer.Exit(1)
    return user.id


def register_cli(app: typer.Typer) -> None:
    """Add the ``consents`` command group to ``app``."""
    group = typer.Typer(help="Consents users gave to OAuth clients.", no_args_is_help=True)
    app.add_typer(group, name="consents")

    @group.command("list")
    def consents_list(email: str, data_dir: DataDir = None, config: Config = None) -> None:
        """List the consents of a user: client id, name, scopes, when granted."""

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
