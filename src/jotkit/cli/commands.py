"""The token commands of the ``jotkit`` CLI: decode, verify, sign, keygen, jwks, thumbprint,
audit and debugger."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

import jotkit

from ._common import (
    EXIT_INVALID,
    EXIT_OK,
    fail,
    handle_errors,
    human_delta,
    iso,
    keyset_from_jwks,
    load_key_file,
    load_secret,
    parse_now,
    read_token,
)

__all__ = ["register"]

TokenArg = Annotated[
    str | None,
    typer.Argument(
        help="The token; omit it or pass '-' to read it from stdin.", show_default=False
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable JSON output.")]
NowOpt = Annotated[
    float | None, typer.Option("--now", hidden=True, help="Pretend the time is this epoch.")
]
KeyOpt = Annotated[
    Path | None,
    typer.Option(
        "--key", "-k", help="Key file: PEM (private/public/certificate), JWK or JWKS.", exists=False
    ),
]
SecretEnvOpt = Annotated[
    str | None,
    typer.Option("--secret-env", help="Name of an environment variable holding the HMAC secret."),
]
SecretFileOpt = Annotated[
    Path | None, typer.Option("--secret-file", help="File holding the HMAC secret.")
]
AlgOpt = Annotated[
    list[str] | None,
    typer.Option("--alg", "-a", help="Algorithm(s) to accept / bind the key to (repeatable)."),
]

_TIME_CLAIMS = ("exp", "nbf", "iat", "auth_time")
_SEVERITIES = ("critical", "high", "medium", "low", "info")


def _console() -> Console:
    # Rich only emits colour on a terminal and honours NO_COLOR; soft_wrap keeps
    # long tokens and JSON lines intact for copy and paste.
    return Console(soft_wrap=True, highlight=False)


def _dump(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def _times(payload: dict[str, Any], now: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name in _TIME_CLAIMS:
        value = payload.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                float(value)
            except OverflowError:  # a 309+ digit integer is no time: shown in the payload only
                continue
            out[name] = {
                "epoch": value,
                "iso": iso(value),
                "relative": human_delta(name, value, now),
            }
    return out


def _signature_text(token: str) -> str:
    return token.rpartition(".")[2]


def _print_json_block(console: Console, title: str, style: str, obj: Any) -> None:
    console.print(f"[bold {style}]{title}[/]")
    console.print_json(data=obj, indent=2, highlight=console.is_terminal)


def decode(token: TokenArg = None, as_json: JsonOpt = False, now: NowOpt = None) -> None:
    """Show a token's header and payload WITHOUT verifying it (RFC 7519 §7.2).

    For a JWE (RFC 7516) only the protected header and the sizes can be shown.
    """
    with handle_errors():
        tok = read_token(token)
        from .jwe_commands import is_jwe, print_jwe_description

        if is_jwe(tok):
            print_jwe_description(tok, as_json)
            return
        header, payload = jotkit.decode_unverified(tok)
        t = parse_now(now)
        times = _times(payload, t)
        if as_json:
            _dump(
                {
                    "verified": False,
                    "header": header,
                    "payload": payload,
                    "signature": _signature_text(tok),
                    "times": times,
                }
            )
            return
        c = _console()
        c.print(
            "[bold black on yellow] UNVERIFIED [/] the signature was NOT checked; "
            "use [bold]jotkit verify[/] before trusting these claims."
        )
        _print_json_block(c, "Header", "red", header)
        _print_json_block(c, "Payload", "magenta", payload)
        if times:
            table = Table(title=None, show_header=True, header_style="bold")
            for col in ("claim", "value", "date (UTC)", "relative"):
                table.add_column(col)
            for name, info in times.items():
                table.add_row(name, str(info["epoch"]), info["iso"], info["relative"])
            c.print(table)
        sig = _signature_text(tok)
        c.print(f"[bold blue]Signature[/] {sig if sig else '(empty)'}")


def _resolve_key(
    *,
    key: Path | None,
    jwks_url: str | None,
    secret_env: str | None,
    secret_file: Path | None,
    algs: list[str] | None,
    token_alg: str | None,
) -> tuple[jotkit.Key | jotkit.KeySet, list[str]]:
    sources = [x is not None for x in (key, jwks_url)] + [
        secret_env is not None or secret_file is not None
    ]
    if sum(sources) != 1:
        fail(
            "give exactly one key source: --key FILE, --jwks-url URL, --secret-env or --secret-file"
        )
    one_alg = algs[0] if algs and len(algs) == 1 else None
    resolved: jotkit.Key | jotkit.KeySet
    if key is not None:
        resolved = load_key_file(key, alg=one_alg, token_alg=token_alg)
    elif jwks_url is not None:
        resolved = _fetch_jwks(jwks_url, algs, token_alg)
    else:
        secret = load_secret(secret_env, secret_file)
        assert secret is not None
        alg = one_alg or (token_alg if token_alg in ("HS256", "HS384", "HS512") else "HS256")
        resolved = jotkit.Key.from_secret(secret, alg)
    if algs:
        return resolved, list(algs)
    if isinstance(resolved, jotkit.KeySet):
        return resolved, sorted({k.alg for k in resolved})
    return resolved, [resolved.alg]


def _fetch_jwks(url: str, algs: list[str] | None, token_alg: str | None) -> jotkit.KeySet:
    import httpx

    if not url.startswith(("https://", "http://")):
        fail("--jwks-url must be an http(s) URL")
    try:
        resp = httpx.get(url, timeout=10.0, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        fail(f"cannot fetch the JWKS: {exc}")
    if resp.status_code != 200:
        fail(f"cannot fetch the JWKS: HTTP {resp.status_code}")
    return keyset_from_jwks(resp.content, algs, token_alg, url)


def verify(
    token: TokenArg = None,
    key: KeyOpt = None,
    jwks_url: Annotated[
        str | None, typer.Option("--jwks-url", help="Fetch the keys from this JWKS URL.")
    ] = None,
    secret_env: SecretEnvOpt = None,
    secret_file: SecretFileOpt = None,
    alg: AlgOpt = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="Required iss.")] = None,
    audience: Annotated[
        list[str] | None, typer.Option("--audience", help="Accepted aud (repeatable).")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="Required sub.")] = None,
    typ: Annotated[
        str | None, typer.Option("--typ", help="Required typ header, e.g. at+jwt.")
    ] = None,
    leeway: Annotated[float, typer.Option("--leeway", help="Clock skew in seconds.")] = 0,
    require: Annotated[
        list[str] | None,
        typer.Option("--require", help="Claims that must be present (default exp)."),
    ] = None,
    as_json: JsonOpt = False,
    now: NowOpt = None,
) -> None:
    """Verify the signature and claims. Exit 0 if valid, 1 if invalid, 2 on usage errors."""
    with handle_errors():
        tok = read_token(token)
        header, _ = jotkit.decode_unverified(tok)
        token_alg = header.get("alg") if isinstance(header.get("alg"), str) else None
        resolved, algorithms = _resolve_key(
            key=key,
            jwks_url=jwks_url,
            secret_env=secret_env,
            secret_file=secret_file,
            algs=alg,
            token_alg=token_alg,
        )
        aud: str | list[str] | None = audience if audience else None
        try:
            vt = jotkit.decode_complete(
                tok,
                resolved,
                algorithms=algorithms,
                issuer=issuer,
                audience=aud,
                subject=subject,
                typ=typ,
                leeway=leeway,
                require=tuple(require) if require is not None else ("exp",),
                now=parse_now(now),
            )
        except jotkit.InvalidToken as exc:
            if as_json:
                _dump({"valid": False, "code": exc.code, "message": exc.message})
            else:
                typer.echo(f"INVALID: {exc.code}: {' '.join(exc.message.split())}", err=True)
            raise typer.Exit(EXIT_INVALID) from None
        if as_json:
            _dump(
                {
                    "valid": True,
                    "header": vt.header,
                    "claims": vt.claims,
                    "kid": vt.key.kid,
                    "alg": vt.key.alg,
                }
            )
            return
        c = _console()
        kid = f", kid {vt.key.kid}" if vt.key.kid else ""
        c.print(f"[bold green]VALID[/] signature and claims ({vt.key.alg}{kid})")
        _print_json_block(c, "Claims", "magenta", vt.claims)


def _parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            fail(f"{what} must look like name=value, got {item!r}")
        try:
            out[name] = json.loads(raw)
        except ValueError:
            out[name] = raw
    return out


def sign(
    key: KeyOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_file: SecretFileOpt = None,
    alg: Annotated[
        str | None, typer.Option("--alg", "-a", help="Algorithm (implied by most keys).")
    ] = None,
    claims: Annotated[
        str | None,
        typer.Option("--claims", help="Claims as a JSON object, @file, or '-' for stdin."),
    ] = None,
    claim: Annotated[
        list[str] | None, typer.Option("--claim", "-c", help="One claim, name=value (repeatable).")
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", help="Extra header, name=value (repeatable).")
    ] = None,
    expires_in: Annotated[
        str, typer.Option("--expires-in", help="Lifetime such as 15m, 1h, 900; 'none' for no exp.")
    ] = "15m",
    not_before: Annotated[
        str | None, typer.Option("--not-before", help="nbf offset from now, e.g. 30s.")
    ] = None,
    issuer: Annotated[str | None, typer.Option("--issuer", help="iss claim.")] = None,
    audience: Annotated[
        list[str] | None, typer.Option("--audience", help="aud claim (repeatable).")
    ] = None,
    subject: Annotated[str | None, typer.Option("--subject", help="sub claim.")] = None,
    jti: Annotated[bool, typer.Option("--jti", help="Add a random jti.")] = False,
    kid: Annotated[
        str | None, typer.Option("--kid", help="kid header (default: the key's).")
    ] = None,
    now: NowOpt = None,
) -> None:
    """Sign a JWT (RFC 7519) from JSON claims and --claim pairs with a key from a file."""
    with handle_errors():
        body: dict[str, Any] = {}
        if claims is not None:
            if claims == "-":
                text = typer.get_text_stream("stdin").read()
            elif claims.startswith("@"):
                text = Path(claims[1:]).read_text("utf-8")
            else:
                text = claims
            try:
                loaded = json.loads(text)
            except ValueError as exc:
                fail(f"--claims is not valid JSON: {exc}")
            if not isinstance(loaded, dict):
                fail("--claims must be a JSON object")
            body.update(loaded)
        body.update(_parse_kv(claim, "--claim"))
        if key is None and secret_env is None and secret_file is None:
            fail("give a key: --key FILE, --secret-env VAR or --secret-file FILE")
        resolved, _ = _resolve_key(
            key=key,
            jwks_url=None,
            secret_env=secret_env,
            secret_file=secret_file,
            algs=[alg] if alg else None,
            token_alg=alg,
        )
        if isinstance(resolved, jotkit.KeySet):
            keys = [k for k in resolved if k.is_private or k.is_symmetric]
            if len(keys) != 1:
                fail("the JWKS must hold exactly one private key to sign with")
            resolved = keys[0]
        if not (resolved.is_private or resolved.is_symmetric):
            fail("signing needs a private key, this file holds a public key")
        if kid is not None:
            resolved = resolved.with_kid(kid)
        elif resolved.kid is None and not resolved.is_symmetric:
            resolved = resolved.with_thumbprint_kid()  # same kid as keygen and jwks give
        exp = None if expires_in.lower() in ("none", "never", "0") else expires_in
        nbf: Any = jotkit.parse_timespan(not_before) if not_before else None
        t = parse_now(now)
        token = jotkit.encode(
            body,
            resolved,
            expires_in=exp,
            not_before=nbf,
            issuer=issuer,
            audience=(audience[0] if len(audience) == 1 else list(audience)) if audience else None,
            subject=subject,
            jti=jti,
            headers=_parse_kv(header, "--header") or None,
            now=t,
        )
        typer.echo(token)


def _write(path: Path, data: bytes, private: bool) -> None:
    if path.exists():
        fail(f"{path} exists; refusing to overwrite")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def keygen(
    alg: Annotated[str, typer.Argument(help="Algorithm: HS256..HS512, RS*, PS*, ES*, EdDSA.")],
    size: Annotated[int | None, typer.Option("--size", help="RSA modulus bits (>= 2048).")] = None,
    crv: Annotated[str | None, typer.Option("--crv", help="EdDSA curve: Ed25519 or Ed448.")] = None,
    kid: Annotated[
        str | None, typer.Option("--kid", help="kid (default: the RFC 7638 thumbprint).")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="pem or jwk.")] = "pem",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write PREFIX.private.{pem,jwk} and PREFIX.public.*"),
    ] = None,
) -> None:
    """Generate a key for an algorithm, with a kid (RFC 7517, RFC 7638)."""
    with handle_errors():
        if fmt not in ("pem", "jwk"):
            fail("--format must be pem or jwk")
        k = jotkit.Key.generate(alg, size=size, crv=crv)
        k = k.with_kid(kid) if kid else k.with_thumbprint_kid()
        if k.is_symmetric and fmt == "pem":
            fail("HMAC secrets have no PEM form; use --format jwk")
        if fmt == "pem":
            priv, pub = k.to_pem(private=True), k.public().to_pem()
            ext = "pem"
        else:
            priv = json.dumps(k.to_jwk(private=True), indent=2).encode() + b"\n"
            pub = b"" if k.is_symmetric else json.dumps(k.to_jwk(), indent=2).encode() + b"\n"
            ext = "jwk"
        if out is not None:
            _write(Path(f"{out}.private.{ext}"), priv, private=True)
            if pub:
                _write(Path(f"{out}.public.{ext}"), pub, private=False)
            typer.echo(
                f"kid {k.kid}: wrote {out}.private.{ext}"
                + (f" and {out}.public.{ext}" if pub else ""),
                err=True,
            )
            return
        if fmt == "pem":
            typer.echo((priv + pub).decode(), nl=False)
        else:
            doc: dict[str, Any] = {"private": k.to_jwk(private=True)}
            if not k.is_symmetric:
                doc["public"] = k.to_jwk()
            _dump(doc)


def jwks(
    files: Annotated[
        list[Path], typer.Argument(help="Key files (PEM or JWK); private keys are made public.")
    ],
    alg: Annotated[
        str | None, typer.Option("--alg", "-a", help="Algorithm for RSA PEM keys.")
    ] = None,
) -> None:
    """Build a JWK Set (RFC 7517 §5) of public keys; kids default to thumbprints."""
    with handle_errors():
        keys: list[jotkit.Key] = []
        for path in files:
            loaded = load_key_file(path, alg=alg)
            for k in loaded if isinstance(loaded, jotkit.KeySet) else [loaded]:
                if k.is_symmetric:
                    fail(f"{path}: an HMAC secret must never go into a JWKS")
                pub = k.public()
                keys.append(pub if pub.kid else pub.with_thumbprint_kid())
        _dump(jotkit.KeySet(keys).to_jwks())


def thumbprint(
    file: Annotated[Path, typer.Argument(help="Key file (PEM, JWK or JWKS).")],
    uri: Annotated[bool, typer.Option("--uri", help="Print the RFC 9278 URI form.")] = False,
) -> None:
    """Print the RFC 7638 JWK thumbprint (SHA-256, base64url) of a key."""
    with handle_errors():
        loaded = load_key_file(file, token_alg="RS256")
        keys = list(loaded) if isinstance(loaded, jotkit.KeySet) else [loaded]
        for k in keys:
            value = k.thumbprint_uri() if uri else k.thumbprint()
            typer.echo(f"{value}  {k.kid}" if len(keys) > 1 else value)


def audit(
    token: TokenArg = None,
    key: KeyOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_file: SecretFileOpt = None,
    alg: Annotated[
        list[str] | None, typer.Option("--alg", "-a", help="Expected algorithm(s) (repeatable).")
    ] = None,
    fail_on: Annotated[
        str,
        typer.Option(
            "--fail-on",
            help="Exit 1 on findings this severe: critical, high, medium, low, info or never.",
        ),
    ] = "high",
    as_json: JsonOpt = False,
    now: NowOpt = None,
) -> None:
    """Audit a token for security problems (RFC 8725); nothing is sent anywhere."""
    from jotkit.audit import audit as run_audit

    with handle_errors():
        if fail_on not in (*_SEVERITIES, "never"):
            fail("--fail-on must be critical, high, medium, low, info or never")
        tok = read_token(token)
        secret = load_secret(secret_env, secret_file)
        resolved: jotkit.Key | jotkit.KeySet | None = None
        if key is not None:
            token_alg: Any = None
            try:
                token_alg = jotkit.decode_unverified(tok)[0].get("alg")
            except jotkit.InvalidToken:
                token_alg = None
            resolved = load_key_file(
                key,
                alg=alg[0] if alg and len(alg) == 1 else None,
                token_alg=token_alg if isinstance(token_alg, str) else None,
            )
        findings = run_audit(
            tok, key=resolved, secret=secret, expected_algorithms=alg, now=parse_now(now)
        )
        limit = _SEVERITIES.index(fail_on) if fail_on != "never" else -1
        failed = any(_SEVERITIES.index(f.severity) <= limit for f in findings)
        if as_json:
            _dump({"findings": [f.to_dict() for f in findings], "failed": failed})
        else:
            c = _console()
            if not findings:
                c.print("[bold green]No findings.[/]")
            styles = {
                "critical": "bold magenta",
                "high": "bold red",
                "medium": "yellow",
                "low": "cyan",
                "info": "dim",
            }
            for f in findings:
                detail = f" ({f.detail})" if f.detail else ""
                c.print(
                    f"[{styles[f.severity]}]{f.severity.upper():8}[/] [bold]{f.code}[/]: "
                    f"{f.title}{detail}"
                )
                c.print(f"         why: {f.why}")
                c.print(f"         fix: {f.fix}")
        raise typer.Exit(EXIT_INVALID if failed else EXIT_OK)


def debugger(
    host: Annotated[str, typer.Option("--host", help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="Port.")] = 8765,
) -> None:
    """Serve the web debugger page locally; tokens never leave the browser."""
    with handle_errors():
        from jotkit.debugger import serve

        try:
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            fail("the debugger needs the server extras: pip install 'jotkit[server]'")
        typer.echo(f"jotkit debugger on http://{host}:{port}/  (Ctrl-C to stop)", err=True)
        serve(host=host, port=port)


_EXAMPLES: dict[str, list[str]] = {
    "decode": ["jotkit decode eyJhbGciOi...", "echo $TOKEN | jotkit decode --json"],
    "verify": [
        "jotkit verify $TOKEN --key public.pem --issuer https://auth.example",
        "jotkit verify $TOKEN --jwks-url https://auth.example/.well-known/jwks.json --audience api",
        "JWT_SECRET=... jotkit verify $TOKEN --secret-env JWT_SECRET",
    ],
    "sign": [
        "jotkit sign --key es256.private.pem --claim sub=alice --claim admin=true --expires-in 15m",
        'jotkit sign --secret-file secret.txt --claims \'{"sub": "bob"}\'',
    ],
    "keygen": ["jotkit keygen ES256 --out mykey", "jotkit keygen RS256 --size 3072 --format jwk"],
    "jwks": ["jotkit jwks mykey.public.pem other.public.jwk > jwks.json"],
    "thumbprint": ["jotkit thumbprint mykey.public.pem", "jotkit thumbprint key.jwk --uri"],
    "audit": ["jotkit audit $TOKEN", "jotkit audit $TOKEN --alg ES256 --fail-on medium --json"],
    "debugger": ["jotkit debugger --port 8765   # then open http://127.0.0.1:8765/"],
}


def examples_epilog(name: str) -> str:
    """The ``Examples`` section of a command's ``--help``."""
    lines = "\n\n".join(f"  $ {e}" for e in _EXAMPLES[name])
    return f"Examples:\n\n{lines}"


def register(app: typer.Typer) -> None:
    """Add the token commands to the ``jotkit`` Typer app."""
    for fn in (decode, verify, sign, keygen, jwks, thumbprint, audit, debugger):
        app.command(name=fn.__name__, epilog=examples_epilog(fn.__name__))(fn)
    from .jwe_commands import register as register_jwe

    register_jwe(app)  # encrypt, decrypt (RFC 7516)
    from .call_command import EXAMPLES as call_examples
    from .call_command import register as register_call

    register_call(app, "Examples:\n\n" + "\n\n".join(f"  $ {e}" for e in call_examples))
    from .forward_auth import register as register_forward_auth

    register_forward_auth(app)  # forward-auth (docs/gateways.md)
    from .login import register as register_login

    register_login(app)  # login, token, logout (RFC 8628 device grant; docs/oauth.md)
