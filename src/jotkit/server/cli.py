"""``jotkit serve``, ``jotkit users``, ``jotkit keys`` and ``jotkit db`` (Typer).

The top-level CLI calls :func:`register` on its Typer app.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

import jotkit

from .audit_log import configure_logging
from .settings import Settings, SettingsError

if TYPE_CHECKING:  # the service stack is imported when a command runs, not for --help
    from .sessions import AuthService

__all__ = ["register"]

T = TypeVar("T")


def _settings(
    data_dir: Path | None = None, config: Path | None = None, **overrides: Any
) -> Settings:
    try:
        settings = Settings.from_env(toml_path=config)
        changes = {k: v for k, v in overrides.items() if v is not None}
        if data_dir is not None:
            changes["data_dir"] = data_dir
        return settings.replace(**changes) if changes else settings
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(settings: Settings, work: Callable[[AuthService], Awaitable[T]]) -> T:
    from .audit_log import AuditLog
    from .clock import SystemClock
    from .metrics import Metrics
    from .sessions import AuthService
    from .store.factory import build_store

    async def main() -> T:
        metrics = Metrics()
        clock = SystemClock()
        svc = AuthService(
            settings,
            build_store(settings, clock.now),
            clock,
            metrics,
            AuditLog(clock, metrics),
        )
        try:
            await svc.store.start()
            return await work(svc)
        finally:
            await svc.store.close()
            svc.close()

    return asyncio.run(main())


def _ts(value: float | None) -> str:
    if value is None:
        return "-"
    if value == float("inf"):
        return "never"
    return dt.datetime.fromtimestamp(value, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default $JOTKIT_DATA_DIR or ./.jotkit)."),
]
Config = Annotated[Path | None, typer.Option("--config", help="TOML settings file.")]


_EXAMPLES: dict[str, tuple[str, ...]] = {
    "serve": (
        "jotkit serve --demo   # http://127.0.0.1:8000, prints a demo user and curl lines",
        "JOTKIT_DATA_DIR=/var/lib/jotkit JOTKIT_ISSUER=https://auth.example jotkit serve",
    ),
    "users add": (
        "jotkit users add alice@example.com --role admin   # prompts for the password",
        "printf '%s' \"$PASSWORD\" | jotkit users add bob@example.com",
    ),
    "users disable": ("jotkit users disable alice@example.com",),
    "users list": ("jotkit users list",),
    "keys rotate": ("jotkit keys rotate", "jotkit keys rotate --alg EdDSA --delay 600"),
    "keys list": ("jotkit keys list",),
    "keys revoke": (
        "jotkit keys revoke -- KID   # a leaked key ('--': a kid may start with '-')",
    ),
    "db upgrade": ("JOTKIT_DATABASE_URL=postgresql://app@db/jotkit jotkit db upgrade",),
    "db copy": (
        "jotkit db copy --from sqlite:///.jotkit/jotkit.db --to postgresql://jotkit@db/jotkit",
    ),
}


def _epilog(command: str) -> str:
    lines = "\n\n".join(f"  $ {example}" for example in _EXAMPLES[command])
    return f"Examples:\n\n{lines}"


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``users``, ``keys``, ``db`` and ``clients`` commands to a Typer app."""

    @app.command("serve", epilog=_epilog("serve"))
    def serve(
        host: Annotated[str | None, typer.Option(help="Bind address.")] = None,
        port: Annotated[int | None, typer.Option(help="Port.")] = None,
        demo: Annotated[
            bool | None, typer.Option("--demo/--no-demo", help="Create and print a demo user.")
        ] = None,
        workers: Annotated[
            int | None,
            typer.Option(
                "--workers",
                min=1,
                help="Worker processes sharing the port and the database "
                "(default $JOTKIT_WORKERS or 1).",
            ),
        ] = None,
        data_dir: DataDir = None,
        config: Config = None,
    ) -> None:
        """Run the auth service (uvicorn; one worker process unless --workers says more)."""
        import uvicorn

        from .app import create_app
        from .demo import with_demo_client
        from .store.factory import require_shared_issuer

        settings = _settings(data_dir, config, host=host, port=port, demo=demo, workers=workers)
        try:
            require_shared_issuer(settings)
        except SettingsError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if settings.demo:
            settings = with_demo_client(settings)  # its secret goes to a 0600 file, not stdout
        settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        configure_logging(settings.log_level)
        if settings.workers > 1:
            from .workers import serve_workers

            serve_workers(settings)
            return
        from .serving import uvicorn_options

        uvicorn.run(create_app(settings), **uvicorn_options(settings, workers=1))

    users = typer.Typer(help="Manage users.", no_args_is_help=True)
    keys = typer.Typer(help="Manage the signing-key ring.", no_args_is_help=True)
    db = typer.Typer(help="Database maintenance.", no_args_is_help=True)
    app.add_typer(users, name="users")
    app.add_typer(keys, name="keys")
    app.add_typer(db, name="db")
    from .oauth.cli import register_clients

    register_clients(app)

    @db.command("copy", epilog=_epilog("db copy"))
    def db_copy(
        source: Annotated[
            str,
            typer.Option("--from", help="Source database URL, e.g. sqlite:///.jotkit/jotkit.db"),
        ],
        target: Annotated[
            str, typer.Option("--to", help="Target database URL, e.g. postgresql://user@host/db")
        ],
    ) -> None:
        """Copy every user, session, revocation and key to another (empty) database."""
        import sqlalchemy as sa

        from .store.copy import CopyError, copy_database

        def show(name: str, n: int) -> None:
            typer.echo(f"  {name:18} {n:>8} rows")

        typer.echo("copying ...")
        try:
            report = asyncio.run(copy_database(source, target, progress=show))
        except (CopyError, ValueError, sa.exc.ArgumentError) as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except (sa.exc.DBAPIError, OSError) as exc:
            typer.echo(f"error: database unavailable: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"copied {report.total} rows; verified row counts and primary keys")

    @users.command("add", epilog=_epilog("users add"))
    def users_add(
        email: str,
        role: Annotated[list[str] | None, typer.Option("--role", help="Role (repeatable).")] = None,
        data_dir: DataDir = None,
        config: Config = None,
    ) -> None:
        """Create a user; the password is prompted, or read from stdin when piped."""
        from .store.base import UserExists

        settings = _settings(data_dir, config)
        if sys.stdin.isatty():
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        else:
            password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            typer.echo("error: the password must not be empty", err=True)
            raise typer.Exit(2)

        async def work(svc: AuthService) -> str:
            user = await svc.add_user(email, password, roles=role or ["user"])
            return user.id

        try:
            user_id = _run(settings, work)
        except UserExists:
            typer.echo(f"error: a user with email {email} already exists", err=True)
            raise typer.Exit(1) from None
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"created user {email.strip().lower()} (id {user_id})")

    @users.command("disable", epilog=_epilog("users disable"))
    def users_disable(email: str, data_dir: DataDir = None, config: Config = None) -> None:
        """Disable a user: login is refused and every session and token is revoked."""
        settings = _settings(data_dir, config)
        try:
            user = _run(settings, lambda svc: svc.disable_user(email))
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        if user is None:
            typer.echo(f"error: no user {email}", err=True)
            raise typer.Exit(1)
        typer.echo(f"disabled {user.email}; all sessions revoked")

    @users.command("list", epilog=_epilog("users list"))
    def users_list(data_dir: DataDir = None, config: Config = None) -> None:
        """List users."""
        settings = _settings(data_dir, config)
        for user in _run(settings, lambda svc: svc.store.users.list()):
            state = "disabled" if user.disabled else "active"
            typer.echo(f"{user.id}  {user.email}  {','.join(user.roles)}  {state}")

    @keys.command("rotate", epilog=_epilog("keys rotate"))
    def keys_rotate(
        alg: Annotated[
            str | None, typer.Option(help="Algorithm (default JOTKIT_SIGNING_ALG).")
        ] = None,
        delay: Annotated[
            float | None,
            typer.Option(help="Seconds before the new key signs (default key_publish_delay)."),
        ] = None,
        data_dir: DataDir = None,
        config: Config = None,
    ) -> None:
        """Add a signing key: published now, signing after the delay; old keys stay
        published until every token they signed has expired."""
        settings = _settings(data_dir, config)
        algorithm = alg or settings.signing_alg
        wait = settings.key_publish_delay if delay is None else delay

        async def work(svc: AuthService) -> Any:
            from .sessions import ID_TOKEN_ALG

            ring = svc.id_keyring if algorithm == ID_TOKEN_ALG else svc.keyring  # docs/oauth.md
            await ring.load()
            return await ring.rotate(algorithm, svc.clock.now(), max(0.0, wait))

        try:
            record = _run(settings, work)
        except (ValueError, jotkit.JotkitError) as exc:
            typer.echo(f"error: cannot rotate: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"new key {record.kid} ({record.alg}) signs from {_ts(record.activate_at)}")

    @keys.command("revoke", epilog=_epilog("keys revoke"))
    def keys_revoke(
        kid: Annotated[str, typer.Argument(help="The kid to withdraw (see `jotkit keys list`).")],
        alg: Annotated[
            str | None,
            typer.Option(help="Algorithm of the replacement key (default: the revoked key's)."),
        ] = None,
        data_dir: DataDir = None,
        config: Config = None,
    ) -> None:
        """Withdraw a signing key at once (e.g. its private key leaked): it leaves the JWKS and
        every token it signed is refused by every instance. If it is the key signing now, a
        replacement is created in the same transaction and signs at once (there is no
        publish delay: relying parties fetch the JWKS again on the unknown kid)."""
        settings = _settings(data_dir, config)

        async def work(svc: AuthService) -> Any:
            now = svc.clock.now()
            ring = svc.keyring
            if svc.id_keyring is not svc.keyring:  # an RS256 ID-token key (docs/oauth.md)?
                await svc.id_keyring.load()
                if any(st.kid == kid for st in svc.id_keyring.statuses(now)):
                    ring = svc.id_keyring
            return await ring.revoke(kid, now, alg)

        try:
            done = _run(settings, work)
        except LookupError as exc:
            typer.echo(f"error: cannot revoke: {exc.args[0]}", err=True)
            raise typer.Exit(1) from None
        except (ValueError, jotkit.JotkitError) as exc:
            typer.echo(f"error: cannot revoke: {exc}", err=True)
            raise typer.Exit(1) from None
        typer.echo(f"revoked key {done.kid}: removed from the JWKS, its tokens are refused")
        if done.replacement is not None:
            new = done.replacement
            typer.echo(f"new key {new.kid} ({new.alg}) signs from now on")

    @keys.command("list", epilog=_epilog("keys list"))
    def keys_list(data_dir: DataDir = None, config: Config = None) -> None:
        """List keys with their state (pending, active, retiring, expired)."""
        settings = _settings(data_dir, config)

        async def work(svc: AuthService) -> Any:
            rings = [svc.keyring] if svc.id_keyring is svc.keyring else [
                svc.keyring, svc.id_keyring]  # access tokens, then RS256 ID tokens
            out = []
            for ring in rings:
                await ring.load()
                out += ring.statuses(svc.clock.now())
            return out

        for st in _run(settings, work):
            until = _ts(st.published_until) if st.published_until else "further notice"
            shown = f"revoked at {until}" if st.state == "revoked" else f"published until {until}"
            typer.echo(
                f"{st.kid}  {st.alg}  {st.state:8}  activates {_ts(st.activate_at)}  {shown}"
            )

    @db.command("upgrade", epilog=_epilog("db upgrade"))
    def db_upgrade(data_dir: DataDir = None, config: Config = None) -> None:
        """Apply the Alembic migrations up to the latest revision."""
        settings = _settings(data_dir, config)

        async def work(_svc: AuthService) -> None:
            return None

        _run(settings, work)
        from sqlalchemy.engine import make_url

        shown = make_url(settings.effective_database_url).render_as_string(hide_password=True)
        typer.echo(f"database at {shown} is up to date")

    from .oauth.consents_cli import register_cli as register_consents

    register_consents(app)
