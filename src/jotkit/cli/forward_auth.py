"""``jotkit forward-auth``: the bearer-token verifier behind a reverse proxy (docs/gateways.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import fail, handle_errors

__all__ = ["forward_auth", "register"]

_EXAMPLES = [
    "jotkit forward-auth --jwks-url https://auth.example/.well-known/jwks.json "
    "--issuer https://auth.example --audience orders --port 9091",
    "jotkit forward-auth --config forward-auth.toml --require-role staff "
    "--claim-header email=X-Auth-Email",
]


def forward_auth(
    jwks_url: Annotated[
        str | None, typer.Option("--jwks-url", help="The issuer's JWK set (https, or loopback).")
    ] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="Required iss.")] = None,
    audience: Annotated[str | None, typer.Option("--audience", help="Required aud.")] = None,
    require_scope: Annotated[
        list[str] | None,
        typer.Option("--require-scope", help="A scope every request needs (repeatable)."),
    ] = None,
    require_role: Annotated[
        list[str] | None,
        typer.Option("--require-role", help="A role; one of them is needed (repeatable)."),
    ] = None,
    claim_header: Annotated[
        list[str] | None,
        typer.Option("--claim-header", help="CLAIM=Header-Name: copy a claim (repeatable)."),
    ] = None,
    revocations: Annotated[
        str | None, typer.Option("--revocations", help="The issuer's revocation feed URL.")
    ] = None,
    revocations_client_id: Annotated[
        str | None,
        typer.Option("--revocations-client-id", help="OAuth client that reads the feed."),
    ] = None,
    revocations_client_secret: Annotated[
        str | None,
        typer.Option(
            "--revocations-client-secret", envvar="JOTKIT_REVOCATIONS_CLIENT_SECRET",
            help="Its secret (prefer the environment variable).", show_default=False,
        ),
    ] = None,
    revocations_fail_closed: Annotated[
        bool | None,
        typer.Option(
            "--revocations-fail-closed",
            help="Answer 503 while the feed is unreachable (default: accept, fail open).",
        ),
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            "--public-url",
            help="Origin clients call (https://api.example.com): DPoP proofs must name it; "
            "else X-Forwarded-Proto/-Host give it.",
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="TOML file: options and [[paths]] rules.")
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port.")] = 9091,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", help="Serve Prometheus metrics here.")
    ] = None,
    allow_insecure_http: Annotated[
        bool | None,
        typer.Option("--allow-insecure-http", help="Accept an http:// JWKS URL off loopback."),
    ] = None,
    decision_ttl: Annotated[
        float | None,
        typer.Option("--decision-ttl", help="Seconds an allow decision is reused (0.1)."),
    ] = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="debug logs every allowed request too.")
    ] = "info",
) -> None:
    """Answer a reverse proxy's auth subrequests: 200 + X-Auth-* headers, 401 or 403."""
    with handle_errors():
        import prometheus_client  # noqa: F401  (a missing extra is named before anything runs)
        import uvicorn  # noqa: F401

        from jotkit.edge import ForwardAuthConfigError, load_config, serve
        from jotkit.edge.forward_auth import build_verifier

        if log_level.lower() not in ("critical", "error", "warning", "info", "debug"):
            fail(f"--log-level {log_level!r}: use debug, info, warning or error")
        try:
            settings = load_config(
                config,
                jwks_url=jwks_url,
                issuer=issuer,
                audience=audience,
                require_scopes=require_scope or (),
                require_roles=require_role or (),
                claim_headers=claim_header or (),
                revocations=revocations,
                allow_insecure_http=allow_insecure_http,
                decision_ttl=decision_ttl,
                revocations_client_id=revocations_client_id,
                revocations_client_secret=revocations_client_secret,
                revocations_fail_open=None if revocations_fail_closed is None
                else not revocations_fail_closed,
                public_url=public_url,
            )
            build_verifier(settings).close()  # a bad URL or flag fails here, before binding
        except (ForwardAuthConfigError, ValueError) as exc:
            fail(str(exc))
        typer.echo(f"jotkit forward-auth on http://{host}:{port}/  (Ctrl-C to stop)", err=True)
        serve(settings, host=host, port=port, metrics_port=metrics_port, log_level=log_level)


def register(app: typer.Typer) -> None:
    """Add ``forward-auth`` to the ``jotkit`` Typer app."""
    epilog = "Examples:\n\n" + "\n\n".join(f"  $ {e}" for e in _EXAMPLES)
    app.command(name="forward-auth", epilog=epilog)(forward_auth)
