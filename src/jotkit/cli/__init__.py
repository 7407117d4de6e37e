"""The ``jotkit`` command line (extra ``jotkit[cli]``: Typer + Rich).

Token commands (decode, verify, sign, keygen, jwks, thumbprint, audit,
debugger) live in :mod:`jotkit.cli.commands`; the service commands (serve,
users, keys) are added by ``jotkit.server.cli.register`` when the server
extras are installed. Exit status: 0 valid/ok, 1 invalid token or failed
audit, 2 usage error. Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import importlib
import sys

import typer

__all__ = ["TOKEN_COMMANDS", "build_app", "main"]

_HELP = (
    "jotkit: inspect, verify, sign and audit JSON Web Tokens, locally.\n\n"
    "Tokens come from the argument or stdin and are never sent anywhere."
)


#: Commands defined in :mod:`jotkit.cli.commands`; running one of them skips
#: importing the (much heavier) service commands, so token tools start fast.
TOKEN_COMMANDS = frozenset(
    {"decode", "verify", "sign", "keygen", "jwks", "thumbprint", "audit", "debugger"}
)


def build_app(*, include_server: bool = True) -> typer.Typer:
    """Build the ``jotkit`` Typer app (with the service commands when installed)."""
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


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI, turning any unexpected error into one line."""
    try:
        args = sys.argv[1:] if argv is None else argv
        app = build_app(include_server=not (args and args[0] in TOKEN_COMMANDS))
        app(args=args, prog_name="jotkit")
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:  # last resort: never show a traceback
        message = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"error: {message}\n")
        raise SystemExit(1) from None
