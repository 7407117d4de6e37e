"""``jotkit clients add|list|show|remove|rotate-secret``: register OAuth clients (issue 11).

The secret of a confidential client is printed once (with ``--json`` as ``client_secret``)
and stored only as its hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..cli import Config, DataDir, _run, _settings

if TYPE_CHECKING:
    from ..sessions import AuthService

__all__ = ["register_clients"]

_EXAMPLES = {
    "add": (
        "jotkit clients add 'Web app' --redirect-uri https://app.example/callback --json",
        "jotkit clients add SPA --public --redirect-uri http://127.0.0.1:5173/cb",
        "jotkit clients add billing --grant client_credentials --scope invoices:read",
        "jotkit clients add CLI --public --grant urn:ietf:params:oauth:grant-type:device_code "
        "--grant refresh_token",
        "jotkit clients add orders-api --audience https://orders.example --grant "
        "urn:ietf:params:oauth:grant-type:token-exchange --exchange-audience "
        "https://billing.example --exchange-scope invoices:read",
    ),
    "list": ("jotkit clients list",),
    "show": ("jotkit clients show CLIENT_ID --json",),
    "remove": ("jotkit clients remove CLIENT_ID",),
    "rotate-secret": ("jotkit clients rotate-secret CLIENT_ID --json",),
}


Json = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _epilog(command: str) -> str:
    lines = "\n\n".join(f"  $ {example}" for example in _EXAMPLES[command])
    return f"Examples:\n\n{lines}"


def register_clients(app: typer.Typer) -> None:
    """Add the ``clients`` command group to a Typer app."""
    clients = typer.Typer(help="Manage OAuth / OpenID Connect clients.", no_args_is_help=True)
    app.add_typer(clients, name="clients")

    @clients.command("add", epilog=_epilog("add"))
    def clients_add(
        name: Annotated[str, typer.Argument(help="A display name (shown on consent pages).")],
        redirect_uri: Annotated[
            list[str] | None, typer.Option("--redirect-uri", help="Exact redirect URI.")
        ] = None,
        post_logout_redirect_uri: Annotated[
            list[str] | None,
            typer.Option("--post-logout-redirect-uri", help="Exact post-logout URI."),
        ] = None,
        public: Annotated[
            bool, typer.Option("--public", help="No secret (--auth-method none).")
        ] = False,
        grant: Annotated[
            list[str] | None,
            typer.Option(
                "--grant",
                help="authorization_code | refresh_token | client_credentials | "
                "urn:ietf:params:oauth:grant-type:device_code, "
                "urn:ietf:params:oauth:grant-type:token-exchange (repeatable; default with "
                "redirect URIs: authorization_code refresh_token).",
            ),
        ] = None,
        scope: Annotated[
            list[str] | None,
            typer.Option("--scope", help="Allowed scope (default: openid profile email "
                         "offline_access)."),
        ] = None,
        first_party: Annotated[
            bool, typer.Option("--first-party", help="Skip the consent page.")
        ] = False,
        backchannel_logout_uri: Annotated[
            str | None, typer.Option("--backchannel-logout-uri", help="Back-channel logout URL.")
        ] = None,
        auth_method: Annotated[
            str | None,
            typer.Option(
                "--auth-method",
                help="client_secret_basic (default) | client_secret_post | private_key_jwt "
                "| none.",
            ),
        ] = None,
        jwks_uri: Annotated[
            str | None, typer.Option("--jwks-uri", help="private_key_jwt: the client's JWKS URL.")
        ] = None,
        jwks: Annotated[
            Path | None, typer.Option("--jwks", help="private_key_jwt: a JWKS file.")
        ] = None,
        audience: Annotated[
            str | None,
            typer.Option("--audience", help="Default access-token aud (default JOTKIT_AUDIENCE)."),
        ] = None,
        resource: Annotated[
            list[str] | None,
            typer.Option("--resource", help="A resource (RFC 8707 aud) it may ask for."),
        ] = None,
        exchange_audience: Annotated[
            list[str] | None,
            typer.Option("--exchange-audience",
                         help="Token exchange: an audience it may exchange tokens for."),
        ] = None,
        exchange_scope: Annotated[
            list[str] | None,
            typer.Option("--exchange-scope", help="Token exchange: a scope exchanged tokens "
                         "may carry (default: the subject token's)."),
        ] = None,
        exchange_actor: Annotated[
            list[str] | None,
            typer.Option("--exchange-actor", help="Token exchange: another client whose "
                         "token it may present as actor_token."),
        ] = None,
        id_token_alg: Annotated[
            str,
            typer.Option("--id-token-alg", help="ID token algorithm: RS256, or "
                         "JOTKIT_SIGNING_ALG when it is ES256 or EdDSA."),
        ] = "RS256",  # noqa: S107 (an algorithm name, not a password)
        dpop_bound: Annotated[
            bool,
            typer.Option("--dpop-bound", help="Require DPoP proofs at the token endpoint "
                         "(RFC 9449 §5.2 dpop_bound_access_tokens)."),
        ] = False,
        require_par: Annotated[
            bool,
            typer.Option("--require-par", help="Only pushed authorization requests (RFC 9126)."),
        ] = False,
        as_json: Json = False,
        data_dir: DataDir = None,
        config: Config = None,
    ) -> None:
        """Register a client; a confidential client's secret is printed once."""
        from .clients import ID_TOKEN_ALGS, id_token_algorithms, new_client

        settings = _settings(data_dir, config)
        jwks_doc: dict[str, Any] | None = None
        if jwks is not None:
            try:
                loaded = json.loads(jwks.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                typer.echo(f"error: cannot read {jwks}: {exc}", err=True)
                raise typer.Exit(2) from None
            if not isinstance(loaded, dict):
                typer.echo("error: --jwks must hold a JWK Set object", err=True)
                raise typer.Exit(2)
            jwks_doc = loaded

        async def work(svc: AuthService) -> tuple[Any, str | None]:
            served = id_token_algorithms(svc.settings.signing_alg)
            if id_token_alg not in served:  # else its code exchanges would fail
                raise ValueError(
                    f"--id-token-alg {id_token_alg}: this server signs ID tokens with "
                    f"{' or '.join(served)} (RS256, or JOTKIT_SIGNING_ALG="
                    f"{svc.settings.signing_alg} when it is one of {', '.join(ID_TOKEN_ALGS)})"
                )
            record, secret = new_client(
                name,
                now=svc.clock.now(),
                redirect_uris=redirect_uri or (),
                post_logout_redirect_uris=post_logout_redirect_uri or (),
                public=public,
                grant_types=grant or (),
                scopes=scope or (),
                first_party=first_party,
                backchannel_logout_uri=backchannel_logout_uri,
                auth_method=auth_method,
                jwks_uri=jwks_uri,
                jwks=jwks_doc,
                id_token_signed_response_alg=id_token_alg,
                default_audience=audience,
                resources=resource or (),
                dpop_bound=dpop_bound,
                require_par=require_par,
                exchange_audiences=exchange_audience or (),
                exchange_scopes=exchange_scope or (),
                exchange_actors=exchange_actor or (),
            )
            await svc.store.clients.create(record)
            return record, secret

        try:
            record, secret = _run(settings, work)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        _print(record, secret, as_json)

    @clients.command("list", epilog=_epilog("list"))
    def clients_list(
        as_json: Json = False, data_dir: DataDir = None, config: Config = None
    ) -> None:
        """List registered clients."""
        from .clients import describe

        records = _run(_settings(data_dir, config), lambda svc: svc.store.clients.list())
        if as_json:
            typer.echo(json.dumps([describe(r) for r in records], indent=2))
            return
        for r in records:
            kind = "public" if r.auth_method == "none" else r.auth_method
            party = "first-party" if r.first_party else "third-party"
            typer.echo(f"{r.client_id}  {r.name}  {kind}  {party}  {','.join(r.grant_types)}")

    @clients.command("show", epilog=_epilog("show"))
    def clients_show(
        client_id: str, as_json: Json = False, data_dir: DataDir = None, config: Config = None
    ) -> None:
        """Show one client's registration (never its secret)."""
        record = _run(_settings(data_dir, config), lambda svc: svc.store.clients.get(client_id))
        if record is None:
            typer.echo(f"error: no client {client_id}", err=True)
            raise typer.Exit(1)
        _print(record, None, as_json)

    @clients.command("remove", epilog=_epilog("remove"))
    def clients_remove(client_id: str, data_dir: DataDir = None, config: Config = None) -> None:
        """Delete a client: its tokens and codes stop working (the client can no longer
        authenticate; its refresh tokens are refused)."""
        done = _run(_settings(data_dir, config), lambda svc: svc.store.clients.delete(client_id))
        if not done:
            typer.echo(f"error: no client {client_id}", err=True)
            raise typer.Exit(1)
        typer.echo(f"removed client {client_id}")

    @clients.command("rotate-secret", epilog=_epilog("rotate-secret"))
    def clients_rotate_secret(
        client_id: str, as_json: Json = False, data_dir: DataDir = None, config: Config = None
    ) -> None:
        """Give a confidential client a new secret (printed once); the old one stops working."""
        from .clients import hash_secret, new_secret

        secret = new_secret()

        async def work(svc: AuthService) -> Any:
            if not await svc.store.clients.set_secret(client_id, hash_secret(secret)):
                return None
            return await svc.store.clients.get(client_id)

        record = _run(_settings(data_dir, config), work)
        if record is None:
            typer.echo(f"error: no confidential client {client_id}", err=True)
            raise typer.Exit(1)
        _print(record, secret, as_json)


def _print(record: Any, secret: str | None, as_json: bool) -> None:
    from .clients import describe

    data = describe(record)
    if secret is not None:
        data["client_secret"] = secret
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if value in (None, [], ""):
            continue
        shown = " ".join(value) if isinstance(value, list) else value
        typer.echo(f"{key:30} {shown}")
    if secret is not None:
        typer.echo("The secret is shown only this once; store it now.", err=True)
