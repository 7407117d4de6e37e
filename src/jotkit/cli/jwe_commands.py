"""The JWE commands of the ``jotkit`` CLI: ``encrypt`` and ``decrypt`` (RFC 7516), and what
``jotkit decode`` can show of an encrypted token."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

import jotkit
from jotkit import jwe
from jotkit.jwe_algorithms import ENCRYPTION_NAMES, KEY_MANAGEMENT_NAMES

from ._common import fail, handle_errors, load_key_file, load_secret, read_token

__all__ = ["describe_jwe", "is_jwe", "register"]

KeyOpt = Annotated[
    Path | None,
    typer.Option("--key", "-k", help="Key file: PEM, JWK or JWKS (bound to a JWE alg)."),
]
SecretEnvOpt = Annotated[
    str | None,
    typer.Option(
        "--secret-env", help="Environment variable holding the secret (dir, A*KW, PBES2 password)."
    ),
]
SecretFileOpt = Annotated[
    Path | None, typer.Option("--secret-file", help="File holding the secret or password.")
]

_EXAMPLES = {
    "encrypt": [
        "jotkit encrypt --key recipient.jwk --alg ECDH-ES+A256KW --in claims.json",
        "echo -n secret | jotkit encrypt --key rsa.pub.pem --alg RSA-OAEP-256 --enc A128GCM",
        "jotkit encrypt --secret-env PASSWORD --alg PBES2-HS256+A128KW --text hello",
    ],
    "decrypt": [
        "jotkit decrypt $JWE --key recipient.private.jwk --alg ECDH-ES+A256KW --enc A256GCM",
        "jotkit decrypt $JWE --secret-env CEK --alg dir --enc A256GCM --json",
    ],
}


def is_jwe(token: str) -> bool:
    """True for a JWE: five compact segments (RFC 7516 §7.1) or a JSON serialization with
    ``ciphertext`` (§7.2)."""
    text = token.lstrip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return False
        return isinstance(obj, dict) and "ciphertext" in obj
    return token.count(".") == 4


def _b64d(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def describe_jwe(token: str) -> dict[str, Any]:
    """What can be read of a JWE without its key: the protected header and the sizes.

    The header is NOT authenticated until the token decrypts.
    """
    text = token.strip()
    if text.startswith("{"):
        obj = json.loads(text)
        protected = json.loads(_b64d(obj["protected"])) if obj.get("protected") else {}
        recipients = obj.get("recipients") or [obj]
        return {
            "type": "JWE",
            "serialization": "json",
            "protected_header": protected,
            "unprotected_header": obj.get("unprotected", {}),
            "recipients": [r.get("header", {}) for r in recipients],
            "ciphertext_octets": len(_b64d(obj.get("ciphertext", ""))),
        }
    header_b64, ek, iv, ct, tag = text.split(".")
    try:
        header = json.loads(_b64d(header_b64))
    except ValueError as exc:
        raise jotkit.MalformedToken(f"the JWE header is not JSON: {exc}") from None
    return {
        "type": "JWE",
        "serialization": "compact",
        "protected_header": header,
        "encrypted_key_octets": len(_b64d(ek)),
        "iv_octets": len(_b64d(iv)),
        "ciphertext_octets": len(_b64d(ct)),
        "tag_octets": len(_b64d(tag)),
    }


def print_jwe_description(token: str, as_json: bool) -> None:
    """The ``jotkit decode`` view of a JWE: what it can and cannot show."""
    info = describe_jwe(token)
    info["encrypted"] = True
    info["can_show"] = "the protected header (unauthenticated until decryption) and segment sizes"
    info["cannot_show"] = "the payload: it is encrypted; use `jotkit decrypt` with the key"
    if as_json:
        typer.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    typer.echo("JWE (encrypted token, RFC 7516): the payload is encrypted and cannot be shown.")
    typer.echo("Decrypt it with: jotkit decrypt TOKEN --key FILE --alg ALG --enc ENC")
    typer.echo("Protected header (NOT authenticated until the token decrypts):")
    typer.echo(json.dumps(info["protected_header"], indent=2, ensure_ascii=False))
    for name in ("encrypted_key_octets", "iv_octets", "ciphertext_octets", "tag_octets"):
        if name in info:
            typer.echo(f"{name.replace('_', ' ')}: {info[name]}")


def _jwe_key(
    key: Path | None, secret_env: str | None, secret_file: Path | None, alg: str | None
) -> jotkit.Key | jotkit.KeySet:
    if (key is not None) == (secret_env is not None or secret_file is not None):
        fail("give exactly one key source: --key FILE, --secret-env VAR or --secret-file FILE")
    if alg is not None and alg not in KEY_MANAGEMENT_NAMES:
        fail(f"unknown JWE alg {alg!r}; one of: {', '.join(KEY_MANAGEMENT_NAMES)}")
    if key is not None:
        return load_key_file(key, alg=alg, token_alg=alg)
    if alg is None:
        fail("a secret needs --alg (dir, A128KW ... or PBES2-...)")
    secret = load_secret(secret_env, secret_file)
    assert secret is not None
    return jotkit.Key.from_secret(secret, alg)


def _one_key(resolved: jotkit.Key | jotkit.KeySet) -> jotkit.Key:
    if isinstance(resolved, jotkit.Key):
        return resolved
    keys = list(resolved)
    if len(keys) != 1:
        fail("the JWKS must hold exactly one key to encrypt to")
    return keys[0]


def encrypt(
    key: KeyOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_file: SecretFileOpt = None,
    alg: Annotated[
        str | None, typer.Option("--alg", "-a", help="Key management alg (default: the key's).")
    ] = None,
    enc: Annotated[str, typer.Option("--enc", "-e", help="Content encryption.")] = "A256GCM",
    text: Annotated[str | None, typer.Option("--text", help="The plaintext as text.")] = None,
    in_file: Annotated[
        Path | None, typer.Option("--in", help="Read the plaintext from a file.")
    ] = None,
    zip_: Annotated[
        bool, typer.Option("--zip", help="Compress first (zip DEF); off by default.")
    ] = False,
    cty: Annotated[str | None, typer.Option("--cty", help="cty header, e.g. JWT.")] = None,
    p2c: Annotated[int | None, typer.Option("--p2c", help="PBES2 iteration count.")] = None,
    json_form: Annotated[
        bool, typer.Option("--json", help="Output the JWE JSON serialization (flattened).")
    ] = False,
) -> None:
    """Encrypt a plaintext (from --text, --in or stdin) to a key as a JWE (RFC 7516)."""
    with handle_errors():
        if enc not in ENCRYPTION_NAMES:
            fail(f"unknown enc {enc!r}; one of: {', '.join(ENCRYPTION_NAMES)}")
        if text is not None and in_file is not None:
            fail("give --text or --in, not both")
        if text is not None:
            plaintext = text.encode("utf-8")
        elif in_file is not None:
            plaintext = in_file.read_bytes()
        else:
            if sys.stdin is None or sys.stdin.isatty():
                fail("no plaintext: pass --text, --in FILE or pipe it on stdin")
            plaintext = sys.stdin.buffer.read()
        recipient = _one_key(_jwe_key(key, secret_env, secret_file, alg))
        if not recipient.is_encryption_key:
            fail(f"the key is bound to {recipient.alg}, not a JWE algorithm; pass --alg")
        headers: dict[str, Any] = {}
        if cty:
            headers["cty"] = cty
        if p2c is not None:
            headers["p2c"] = p2c
        if json_form:
            out = jwe.encrypt_json(
                plaintext,
                recipient,
                enc=enc,
                protected={"cty": cty} if cty else None,
                recipient_headers=[{"p2c": p2c} if p2c is not None else None],
                zip="DEF" if zip_ else None,
            )
            typer.echo(json.dumps(out))
            return
        typer.echo(
            jwe.encrypt(
                plaintext, recipient, enc=enc, headers=headers or None, zip="DEF" if zip_ else None
            )
        )


def decrypt(
    token: Annotated[
        str | None,
        typer.Argument(
            help="The JWE; omit it or pass '-' to read it from stdin.", show_default=False
        ),
    ] = None,
    key: KeyOpt = None,
    secret_env: SecretEnvOpt = None,
    secret_file: SecretFileOpt = None,
    alg: Annotated[
        list[str] | None,
        typer.Option("--alg", "-a", help="Accepted key management alg(s) (repeatable)."),
    ] = None,
    enc: Annotated[
        list[str] | None, typer.Option("--enc", "-e", help="Accepted enc value(s) (repeatable).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Header, plaintext and key as JSON.")
    ] = False,
) -> None:
    """Decrypt a JWE (compact or JSON serialization) and print the plaintext (RFC 7516 §5.2)."""
    with handle_errors():
        tok = read_token(token)
        if not alg or not enc:
            fail("give the accepted algorithms: --alg ALG and --enc ENC (no defaults)")
        resolved = _jwe_key(key, secret_env, secret_file, alg[0] if len(alg) == 1 else None)
        result = jwe.decrypt_complete(tok, resolved, algorithms=alg, encryptions=enc)
        if as_json:
            try:
                shown: Any = result.plaintext.decode("utf-8")
                encoding = "utf-8"
            except UnicodeDecodeError:
                shown = base64.b64encode(result.plaintext).decode("ascii")
                encoding = "base64"
            typer.echo(
                json.dumps(
                    {
                        "decrypted": True,
                        "header": result.header,
                        "plaintext": shown,
                        "plaintext_encoding": encoding,
                        "kid": result.key.kid,
                        "recipient": result.recipient,
                    },
                    indent=2,
                    ensure_ascii=False,
                )
            )
            return
        sys.stdout.flush()
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            out.write(result.plaintext)
            out.flush()
        else:  # pragma: no cover - a text-only stream
            typer.echo(result.plaintext.decode("utf-8", "replace"), nl=False)


def register(app: typer.Typer) -> None:
    """Add ``encrypt`` and ``decrypt`` to the ``jotkit`` Typer app."""
    for fn in (encrypt, decrypt):
        lines = "\n\n".join(f"  $ {e}" for e in _EXAMPLES[fn.__name__])
        app.command(name=fn.__name__, epilog=f"Examples:\n\n{lines}")(fn)
