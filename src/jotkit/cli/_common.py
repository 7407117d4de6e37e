"""Shared helpers of the ``jotkit`` CLI: input, key loading, time formatting, errors."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import typer

import jotkit

__all__ = [
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_USAGE",
    "CliError",
    "fail",
    "handle_errors",
    "human_delta",
    "iso",
    "keyset_from_jwks",
    "load_key_file",
    "load_secret",
    "read_token",
]

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2

_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512", "secp256k1": "ES256K"}


@dataclass(frozen=True)
class CliError(Exception):
    """A failure to report as one line on stderr with an exit status."""

    message: str
    exit_code: int = EXIT_USAGE


def fail(message: str, exit_code: int = EXIT_USAGE) -> NoReturn:
    """Abort the command with one error line and ``exit_code``."""
    raise CliError(message, exit_code)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


@contextlib.contextmanager
def handle_errors() -> Iterator[None]:
    """Turn expected failures into one stderr line and the right exit status.

    Token failures exit 1; bad keys, files and arguments exit 2 (usage).
    """
    try:
        yield
    except CliError as exc:
        typer.echo(f"error: {_one_line(exc.message)}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except jotkit.InvalidToken as exc:
        typer.echo(f"error: {exc.code}: {_one_line(exc.message)}", err=True)
        raise typer.Exit(EXIT_INVALID) from None
    except (jotkit.InvalidKey, jotkit.JWKSError) as exc:
        typer.echo(f"error: {exc.code}: {_one_line(exc.message)}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except OSError as exc:
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        typer.echo(f"error: cannot read{where}: {exc.strerror or exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (ValueError, TypeError) as exc:
        typer.echo(f"error: {_one_line(str(exc))}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def read_token(token: str | None) -> str:
    """The token from the argument, or from stdin when it is missing or ``-``.

    Surrounding whitespace and a leading ``Bearer`` are dropped.
    """
    if token is None or token == "-":
        if sys.stdin is None or sys.stdin.isatty():
            fail("no token: pass it as an argument or pipe it on stdin")
        token = sys.stdin.read()
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        fail("the token is empty")
    return token


def parse_now(now: float | None) -> float:
    """The current time, or the injected ``--now`` (epoch seconds)."""
    return time.time() if now is None else now


def iso(epoch: float) -> str:
    """ISO 8601 UTC date for an epoch time (RFC 3339)."""
    try:
        return datetime.fromtimestamp(epoch, tz=UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return "out of range"


def span(seconds: float) -> str:
    """A coarse human duration: ``42 s``, ``14 min``, ``3 h``, ``12 d``."""
    s = abs(seconds)
    if s < 60:
        return f"{int(s)} s"
    if s < 3570:
        return f"{round(s / 60)} min"
    if s < 2 * 86400:
        return f"{round(s / 3600)} h"
    return f"{round(s / 86400)} d"


def human_delta(claim: str, epoch: float, now: float) -> str:
    """Relative wording for a time claim, e.g. ``expires in 14 min``, ``expired 3 h ago``."""
    delta = epoch - now
    ahead = delta > 0
    words = {
        "exp": ("expires in {}", "expired {} ago"),
        "nbf": ("valid in {}", "valid since {} ago"),
        "iat": ("issued in {} (in the future!)", "issued {} ago"),
    }.get(claim, ("in {}", "{} ago"))
    return (words[0] if ahead else words[1]).format(span(delta))


def load_secret(secret_env: str | None, secret_file: Path | None) -> bytes | None:
    """An HMAC secret from an environment variable or a file (never the command line)."""
    if secret_env is not None and secret_file is not None:
        fail("give either --secret-env or --secret-file, not both")
    if secret_env is not None:
        value = os.environ.get(secret_env)
        if value is None:
            fail(f"environment variable {secret_env} is not set")
        return value.encode("utf-8")
    if secret_file is not None:
        data = secret_file.read_bytes()
        return data.rstrip(b"\r\n")
    return None


def _pem_alg(data: bytes, alg: str | None, token_alg: str | None) -> str:
    """The algorithm for a PEM key: ``--alg``, else implied by the key, else the token's."""
    if alg:
        return alg
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    material: Any = None
    loaders: list[Any] = [
        lambda d: serialization.load_pem_public_key(d),
        lambda d: serialization.load_pem_private_key(d, password=None),
        lambda d: x509.load_pem_x509_certificate(d).public_key(),
    ]
    for loader in loaders:
        try:
            material = loader(data)
            break
        except (ValueError, TypeError, UnsupportedAlgorithm):
            continue
    if material is None:
        fail("cannot read the PEM key (encrypted or unsupported?)")
    if isinstance(material, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        name = material.curve.name
        if name not in _EC_ALGS:
            fail(f"unsupported EC curve {name}")
        return _EC_ALGS[name]
    if isinstance(
        material,
        ed25519.Ed25519PublicKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PublicKey
        | ed448.Ed448PrivateKey,
    ):
        return "EdDSA"
    if isinstance(material, rsa.RSAPublicKey | rsa.RSAPrivateKey):
        if token_alg in _RSA_ALGS:
            return token_alg
        fail("an RSA key can serve several algorithms: pass --alg (RS256, PS256, ...)")
    fail("unsupported PEM key type")


def keyset_from_jwks(
    data: Any,
    algs: list[str] | None,
    token_alg: str | None,
    where: str,
    *,
    own_file: bool = False,
) -> jotkit.KeySet:
    """A key set from JWKS data (RFC 7517 §5).

    With explicit ``algs`` only keys for them are kept. Otherwise keys carry their own
    ``alg`` (or the one their curve implies); when none of them is for the token's
    ``alg``, keys without ``alg`` (typically RSA) are bound to it instead. Symmetric and
    private keys count only with ``own_file`` (a local file of the user's, never a URL).
    """
    trust = {"allow_symmetric": own_file, "allow_private": own_file}
    ks = jotkit.KeySet.from_jwks(data, algorithms=algs, **trust)
    if algs is None and token_alg and not any(k.alg == token_alg for k in ks):
        bound = jotkit.KeySet.from_jwks(data, algorithms=[token_alg], **trust)
        if len(bound):
            ks = bound
    if len(ks) == 0:
        fail(f"{where}: no usable key in the JWKS ({'; '.join(ks.skipped) or 'empty'})")
    return ks


def load_key_file(
    path: Path, *, alg: str | None = None, token_alg: str | None = None, kid: str | None = None
) -> jotkit.Key | jotkit.KeySet:
    """A key from a PEM (private, public or certificate), JWK or JWKS file.

    ``alg`` binds the key to one algorithm (RFC 8725 §3.1); without it the JWK's
    ``alg``, the curve, or (for RSA) the token's ``alg`` is used.
    """
    data = path.read_bytes()
    text = data.lstrip()
    if text.startswith(b"{"):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            fail(f"{path}: not valid JSON: {exc}")
        if isinstance(obj, dict) and "keys" in obj:
            return keyset_from_jwks(
                obj, [alg] if alg else None, token_alg, str(path), own_file=True
            )
        if not isinstance(obj, dict):
            fail(f"{path}: a JWK must be a JSON object")
        if "kty" not in obj and isinstance(obj.get("private"), dict):
            obj = obj["private"]  # the {"private", "public"} document of `keygen --format jwk`
        jwk_alg = obj.get("alg")
        chosen = alg or (jwk_alg if isinstance(jwk_alg, str) else None)
        if chosen is None and obj.get("kty") in ("RSA", "oct") and token_alg:
            chosen = token_alg
        key = jotkit.Key.from_jwk(obj, alg=chosen)
        return key.with_kid(kid) if kid else key
    if b"-----BEGIN" in data:
        chosen = _pem_alg(data, alg, token_alg)
        return jotkit.Key.from_pem(data, chosen, kid=kid)
    fail(f"{path}: not a PEM, JWK or JWKS file")
