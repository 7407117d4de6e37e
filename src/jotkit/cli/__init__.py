"""The ``jotkit`` command line (extra ``jotkit[cli]``: Typer + Rich).

Token commands (decode, verify, sign, keygen, jwks, thumbprint, audit,
debugger) live in :mod:`jotkit.cli.commands`; the service commands (serve,
users, keys) are added by ``jotkit.server.cli.register`` when the server
extras are installed. Exit status: 0 valid/ok, 1 invalid token or failed
audit, 2 usage error (a missing extra included). Errors are one line on stderr, never a
traceback. This module imports no third-party package at import time, so ``main`` can tell a
core-only install which extra to add.
"""

from __future__ import annotations

import importlib
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import typer

__all__ = ["SERVICE_COMMANDS", "TOKEN_COMMANDS", "build_app", "main"]

_HELP = (
    "jotkit: inspect, verify, sign and audit JSON Web Tokens, locally.\n\n"
    "Tokens come from the argument or stdin and are never sent anywhere (but `jotkit call`\n"
    "sends one to the URL you give it)."
)


#: Commands defined in :mod:`jotkit.cli.commands` (and ``forward-auth``); running one of them
#: skips importing the (much heavier) service commands, so token tools start fast.
TOKEN_COMMANDS = frozenset(
    {"decode", "verify", "sign", "keygen", "jwks", "thumbprint", "audit", "debugger",
     "forward-auth", "call", "login", "token", "logout"}
)

#: Commands added by :mod:`jotkit.server.cli`; they need the ``jotkit[server]`` extra.
SERVICE_COMMANDS = frozenset({"serve", "users", "keys", "db"})

#: The extra that brings each third-party top-level module the CLI may import.
_EXTRA_OF_MODULE = {
    "typer": "cli",
    "rich": "cli",
    "click": "cli",
    "httpx": "cli",
    "fastapi": "server",
    "starlette": "server",
    "pydantic": "server",
    "uvicorn": "server",
    "sqlalchemy": "server",
    "alembic": "server",
    "aiosqlite": "server",
    "argon2": "server",
    "prometheus_client": "server",
    "httptools": "server",
    "multipart": "server",
    "redis": "redis",
    "asyncpg": "postgres",
}

#: What ``jotkit forward-auth`` imports beyond the CLI (the ``forward-auth`` extra).
_FORWARD_AUTH_MODULES = frozenset({"uvicorn", "prometheus_client", "httpx", "httptools"})


def _missing_extra(exc: ModuleNotFoundError, args: list[str]) -> str | None:
    """The one-line message for a missing optional dependency, or None for other modules."""
    top = (exc.name or "").partition(".")[0]
    extra = _EXTRA_OF_MODULE.get(top)
    if extra is None:
        return None
    if args and args[0] == "forward-auth" and top in _FORWARD_AUTH_MODULES:
        return "error: `jotkit forward-auth` needs the [forward-auth] extra: " \
            "pip install 'jotkit[forward-auth]'"
    if extra == "cli":
        what = "the jotkit command"
    elif extra == "redis":
        what = "JOTKIT_REDIS_URL (Redis)"
    elif extra == "postgres":
        what = "a PostgreSQL JOTKIT_DATABASE_URL"
    elif args and args[0] in SERVICE_COMMANDS:
        what = f"`jotkit {args[0]}`"
    else:
        what = "this command"
    return f"error: {what} needs the [{extra}] extra: pip install 'jotkit[{extra}]'"


def build_app(*, include_server: bool = True) -> typer.Typer:
    """Build the ``jotkit`` Typer app (with the service commands when installed)."""
    import typer

    from . import commands

    app = typer.Typer(
        name="jotkit",
        help=_HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    commands.register(app)
    if not include_server:
        return app
    try:
        server_cli = importlib.import_module("jotkit.server.cli")
    except ImportError:  # server extras missing: the token commands still work
        server_cli = None
    if server_cli is not None:
        server_cli.register(app)
    return app


def _stop_quietly(_signum: int, _frame: FrameType | None) -> NoReturn:
    """SIGINT handler of ``jotkit serve`` until uvicorn installs its own: Ctrl-C is how a
    foreground server is stopped, a normal end (status 0, as after uvicorn's shutdown)."""
    raise SystemExit(0)


def _fail(message: str, status: int) -> SystemExit:
    sys.stderr.write(message + "\n")
    return SystemExit(status)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning any unexpected error into one line.

    A missing optional dependency names the extra to install and exits with status 2."""
    args = sys.argv[1:] if argv is None else argv
    python_sigint = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if argv is None and args and args[0] == "serve" and python_sigint:
        signal.signal(signal.SIGINT, _stop_quietly)  # Ctrl-C while starting: not an error
    try:
        if args and args[0] in SERVICE_COMMANDS:  # say which extra is missing, not "no command"
            importlib.import_module("jotkit.server.cli")
        app = build_app(include_server=not (args and args[0] in TOKEN_COMMANDS))
        app(args=args, prog_name="jotkit")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        raise _fail("interrupted", 130) from None
    except ModuleNotFoundError as exc:
        message = _missing_extra(exc, args)
        if message is not None:
            raise _fail(message, 2) from None
        raise _fail(f"error: {' '.join(str(exc).split())}", 1) from None
    except Exception as exc:  # last resort: never show a traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise _fail(f"error: {message}", 1) from None
