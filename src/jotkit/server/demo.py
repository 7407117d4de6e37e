"""Demo mode (``jotkit serve --demo``): the demo introspection client and the start-up banner.

The banner shows what a first-time user needs to try the service: the demo user's
credentials (the README's tour logs in with them), the URLs and a curl sequence. It shows no
client secret: the demo introspection client's secret is written to a file readable only by
its owner (``<data dir>/demo-client-secret``, mode 0600), and the banner says where.
"""

from __future__ import annotations

import os
import secrets
import shlex
from pathlib import Path

from .settings import Settings

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_CLIENT_SECRET_FILE",
    "DEMO_EMAIL",
    "demo_banner",
    "with_demo_client",
]

DEMO_EMAIL = "demo@example.com"
DEMO_CLIENT_ID = "demo-rs"
DEMO_CLIENT_SECRET_FILE = "demo-client-secret"


def _secret_path(settings: Settings) -> Path:
    return (settings.data_dir / DEMO_CLIENT_SECRET_FILE).resolve()


def with_demo_client(settings: Settings) -> Settings:
    """``settings`` with a fresh demo introspection client (RFC 7662 §2.1 client credentials)
    unless clients are configured. Its secret is written to ``<data dir>/demo-client-secret``
    with mode 0600 (replaced atomically: an old secret never lingers with looser modes)."""
    if settings.introspection_clients:
        return settings
    secret = secrets.token_urlsafe(24)
    path = _secret_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret)
    os.replace(tmp, path)
    return settings.replace(introspection_clients=((DEMO_CLIENT_ID, secret),))


def _introspection_lines(settings: Settings, base: str) -> tuple[str, str]:
    """The banner's introspection line and curl command; never a secret."""
    ids = [client_id for client_id, _secret in settings.introspection_clients]
    if not ids:
        return "(no clients configured)", ""
    path = _secret_path(settings)
    if DEMO_CLIENT_ID in ids and path.exists():
        secret = f"$(cat {shlex.quote(str(path))})"
        command = (
            f'  curl -s -u "{DEMO_CLIENT_ID}:{secret}" -d "token=$ACCESS" {base}/oauth/introspect\n'
        )
        return f"client {DEMO_CLIENT_ID}, secret in {path} (mode 0600)", command
    return f"client(s) {', '.join(ids)}; secrets as configured (JOTKIT_INTROSPECTION_CLIENTS)", ""


def demo_banner(settings: Settings, password: str) -> str:
    """The text demo mode prints: credentials, URLs and a curl sequence (no client secret)."""
    base = settings.effective_issuer
    clients, introspect = _introspection_lines(settings, base)
    return f"""
jotkit auth service (demo mode) on {base}
  demo user      : {DEMO_EMAIL}
  demo password  : {password}
  API docs       : {base}/docs
  JWKS           : {base}/.well-known/jwks.json
  token debugger : {base}/debugger/
  metadata       : {base}/.well-known/openid-configuration
  introspection  : {clients}
Try it (in another terminal; the README's "Quick start (auth service)" goes further):
  PASSWORD='{password}'
  TOKENS=$(curl -s -X POST {base}/auth/login -H 'Content-Type: application/json' \\
      -d "{{\\"email\\":\\"{DEMO_EMAIL}\\",\\"password\\":\\"$PASSWORD\\"}}")
  field() {{ python3 -c "import json,sys;print(json.load(sys.stdin)['$1'])"; }}
  ACCESS=$(echo "$TOKENS" | field access_token)
  REFRESH=$(echo "$TOKENS" | field refresh_token)
  curl -s {base}/auth/me -H "Authorization: Bearer $ACCESS"
{introspect}  curl -s -X POST {base}/auth/refresh -H 'Content-Type: application/json' \\
      -d "{{\\"refresh_token\\":\\"$REFRESH\\"}}"
  curl -s -X POST {base}/auth/logout -H "Authorization: Bearer $ACCESS"
"""
