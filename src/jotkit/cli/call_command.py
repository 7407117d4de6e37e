"""``jotkit call``: one HTTP request to a protected API with an access token, as a bearer token
(RFC 6750 §2.1) or DPoP-bound with a proof made by :func:`jotkit.dpop.proof` (RFC 9449 §7).
A ``401`` with ``error="use_dpop_nonce"`` and a ``DPoP-Nonce`` header is retried once with
that nonce (§9). Needs httpx (``pip install 'jotkit[jwks]'``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

import jotkit
from jotkit.dpop import proof as make_proof

from ._common import EXIT_INVALID, EXIT_OK, fail, handle_errors, load_key_file

__all__ = ["EXAMPLES", "call", "register"]

EXAMPLES = [
    "jotkit call https://api.example/orders --token-env TOKEN --dpop-key client.private.jwk",
    "jotkit call https://api.example/orders -X POST --data '{\"n\": 1}' --token $TOKEN",
]


def _dpop_key(path: Path) -> jotkit.Key:
    loaded = load_key_file(path)
    if isinstance(loaded, jotkit.KeySet):
        keys = list(loaded)
        if len(keys) != 1:
            fail(f"{path}: give one key, not a key set of {len(keys)}")
        loaded = keys[0]
    if loaded.is_symmetric or not loaded.is_private:
        fail(f"{path}: a DPoP key is an asymmetric private key (jotkit keygen ES256)")
    return loaded


def call(
    url: Annotated[str, typer.Argument(help="The API URL.")],
    method: Annotated[str, typer.Option("--method", "-X", help="HTTP method.")] = "GET",
    token: Annotated[
        str | None, typer.Option("--token", help="The access token (visible in ps; prefer "
                                 "--token-env).")
    ] = None,
    token_env: Annotated[
        str | None, typer.Option("--token-env", help="Environment variable holding the token.")
    ] = None,
    dpop_key: Annotated[
        Path | None,
        typer.Option("--dpop-key", help="The client's private key (PEM or JWK): send the token "
                     "with the DPoP scheme and a proof (RFC 9449)."),
    ] = None,
    data: Annotated[str | None, typer.Option("--data", "-d", help="Request body.")] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="Extra header 'Name: value'.")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds.")] = 30.0,
) -> None:
    """Call an API with an access token (Bearer, or DPoP with --dpop-key); print the body.

    Exit status 0 for a 2xx answer, 1 otherwise (the status and any WWW-Authenticate
    challenge go to stderr)."""
    with handle_errors():
        try:
            import httpx
        except ImportError:
            fail("jotkit call needs httpx: pip install 'jotkit[jwks]'")
        if token_env is not None:
            token = os.environ.get(token_env)
            if not token:
                fail(f"${token_env} is not set")
        if not token:
            fail("give --token or --token-env")
        method = method.upper()
        extra: dict[str, str] = {}
        for item in header or []:
            name, sep, value = item.partition(":")
            if not sep or not name.strip():
                fail(f"--header {item!r}: expected 'Name: value'")
            extra[name.strip()] = value.strip()
        key = _dpop_key(dpop_key) if dpop_key is not None else None

        def send(client: httpx.Client, nonce: str | None) -> httpx.Response:
            headers = dict(extra)
            if key is None:
                headers["Authorization"] = f"Bearer {token}"
            else:
                headers["Authorization"] = f"DPoP {token}"
                try:
                    headers["DPoP"] = make_proof(key, method, url, token, nonce)
                except ValueError as exc:
                    fail(f"cannot make a DPoP proof for {url!r}: {exc}")
            return client.request(method, url, headers=headers, content=data)

        try:
            with httpx.Client(timeout=timeout, trust_env=False) as client:
                response = send(client, None)
                nonce = response.headers.get("dpop-nonce")
                challenge = response.headers.get("www-authenticate", "")
                if key is not None and response.status_code == 401 and nonce and (
                    'error="use_dpop_nonce"' in challenge
                ):
                    response = send(client, nonce)  # RFC 9449 §9: the server's nonce
        except httpx.HTTPError as exc:
            fail(f"request failed: {exc}", EXIT_INVALID)
        sys.stdout.write(response.text)
        if response.text and not response.text.endswith("\n"):
            sys.stdout.write("\n")
        ok = 200 <= response.status_code < 300
        if not ok:
            typer.echo(f"HTTP {response.status_code}", err=True)
            if "www-authenticate" in response.headers:
                typer.echo(f"WWW-Authenticate: {response.headers['www-authenticate']}", err=True)
        raise typer.Exit(EXIT_OK if ok else EXIT_INVALID)


def register(app: typer.Typer, epilog: str) -> None:
    """Add ``call`` to the ``jotkit`` Typer app."""
    app.command(name="call", epilog=epilog)(call)
