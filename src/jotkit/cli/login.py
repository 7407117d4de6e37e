"""``jotkit login`` / ``jotkit token`` / ``jotkit logout``: the CLI signs itself in to a
jotkit (or any RFC 8628) authorization server with the device authorization grant.

``login`` reads the server metadata (RFC 8414 §3, the ``issuer`` must match, §3.3), asks the
device authorization endpoint for codes (RFC 8628 §3.1), prints the verification URI and the
user code, polls the token endpoint (§3.4: every ``interval`` seconds, 5 s more after each
``slow_down``, §3.5) and keeps the tokens in a file only its owner may read (mode 0600, in a
0700 directory): ``--token-file``, else ``$JOTKIT_TOKEN_FILE``, else
``$XDG_CONFIG_HOME/jotkit/tokens.json`` (``~/.config/jotkit/tokens.json``). ``token`` prints
a valid access token, refreshing it first when it expires within 60 s (RFC 6749 §6).
``logout`` revokes the refresh and access tokens at the revocation endpoint when the server
has one (RFC 7009 §2.1, as a public client) and removes the file.

The decisions (where the file is, what a poll answer means, whether to refresh) are plain
functions; the HTTP calls sit in :class:`_Http`, a thin httpx shell.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer

from ._common import EXIT_INVALID, fail, handle_errors

if TYPE_CHECKING:
    import httpx

__all__ = [
    "DEVICE_CODE_GRANT",
    "Poll",
    "needs_refresh",
    "poll_interval",
    "poll_outcome",
    "read_session",
    "register",
    "require_https",
    "session_from_tokens",
    "token_file",
    "write_private",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
SLOW_DOWN_STEP = 5  # RFC 8628 §3.5
DEFAULT_INTERVAL = 5  # RFC 8628 §3.2: when the server gives none
#: Bounds on the polling interval a server may ask for: 0 would poll in a tight loop, a huge
#: value would stall the CLI past the code's lifetime.
MIN_INTERVAL, MAX_INTERVAL = 1, 300
DEFAULT_LIFETIME, MAX_LIFETIME = 600.0, 3600.0  # seconds a device code is polled for
REFRESH_MARGIN = 60.0  # refresh an access token that expires within this many seconds
_TIMEOUT = 30.0

TokenFile = Annotated[
    Path | None,
    typer.Option("--token-file", help="Where the tokens are kept (default: "
                 "$JOTKIT_TOKEN_FILE, else $XDG_CONFIG_HOME/jotkit/tokens.json)."),
]


# -- decisions (no I/O) ---------------------------------------------------------------------------
def token_file(explicit: Path | None, env: Mapping[str, str]) -> Path:
    """The token file: ``explicit``, ``$JOTKIT_TOKEN_FILE``, ``$XDG_CONFIG_HOME/jotkit/
    tokens.json`` (an absolute XDG path only, per the XDG base directory spec), else
    ``~/.config/jotkit/tokens.json``."""
    if explicit is not None:
        return explicit
    if env.get("JOTKIT_TOKEN_FILE"):
        return Path(env["JOTKIT_TOKEN_FILE"])
    xdg = env.get("XDG_CONFIG_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".config"
    return base / "jotkit" / "tokens.json"


def require_https(url: Any, what: str) -> str:
    """``url`` when it is an https URL, or http on a loopback host (RFC 8414 §2 wants an
    https issuer; RFC 8252 §8.3 allows loopback): the CLI sends codes and tokens there."""
    if not isinstance(url, str):
        fail(f"the {what} is not a URL", EXIT_INVALID)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        fail(f"the {what} {url!r} is not a URL", EXIT_INVALID)
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and _is_loopback(host):
        return url
    fail(f"the {what} {url!r} is not https: tokens would cross the network in clear",
         EXIT_INVALID)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def poll_interval(value: Any) -> int:
    """The polling interval (RFC 8628 §3.2): 5 s when absent or not a number, and kept
    within [1, 300] s so a server answering 0 cannot make the CLI poll in a tight loop."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return DEFAULT_INTERVAL
    return int(min(max(value, MIN_INTERVAL), MAX_INTERVAL))


def code_lifetime(value: Any) -> float:
    """How long to poll for (RFC 8628 §3.2 ``expires_in``): 600 s when absent or not a
    positive number, at most an hour."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return DEFAULT_LIFETIME
    return float(min(value, MAX_LIFETIME))


@dataclass(frozen=True, slots=True)
class Poll:
    """What to do after one poll: ``tokens`` when done, else wait ``interval`` seconds."""

    tokens: dict[str, Any] | None
    interval: int


def poll_outcome(status: int, body: Any, interval: int) -> Poll:
    """Interpret one token-endpoint answer to a device-code poll (RFC 8628 §3.5); raise
    :class:`~._common.CliError` for ``access_denied``, ``expired_token`` and other errors."""
    if not isinstance(body, dict):
        fail(f"the token endpoint answered HTTP {status} without a JSON object", EXIT_INVALID)
    if status == 200:
        if not isinstance(body.get("access_token"), str):
            fail("the token response has no access_token", EXIT_INVALID)
        return Poll(body, interval)
    error = body.get("error")
    if error == "authorization_pending":
        return Poll(None, interval)
    if error == "slow_down":
        return Poll(None, min(interval + SLOW_DOWN_STEP, MAX_INTERVAL))
    if error == "access_denied":
        fail("the sign-in was denied", EXIT_INVALID)
    if error == "expired_token":
        fail("the code expired before it was approved; run `jotkit login` again", EXIT_INVALID)
    description = body.get("error_description") or ""
    fail(f"the token endpoint answered {error or status}: {description}".strip(), EXIT_INVALID)


def session_from_tokens(
    tokens: Mapping[str, Any], metadata: Mapping[str, Any], client_id: str, now: float,
    previous: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What the token file holds: the tokens (a refresh response without a new refresh
    token keeps the previous one, RFC 6749 §6), their expiry and the endpoints to use."""
    expires_in = tokens.get("expires_in")
    refresh = tokens.get("refresh_token") or (previous or {}).get("refresh_token")
    return {
        "issuer": metadata["issuer"],
        "client_id": client_id,
        "token_endpoint": metadata["token_endpoint"],
        "revocation_endpoint": metadata.get("revocation_endpoint"),
        "access_token": tokens["access_token"],
        "token_type": tokens.get("token_type", "Bearer"),
        "expires_at": now + float(expires_in) if isinstance(expires_in, int | float) else None,
        "refresh_token": refresh,
        "id_token": tokens.get("id_token") or (previous or {}).get("id_token"),
        "scope": tokens.get("scope") or (previous or {}).get("scope"),
    }


def needs_refresh(session: Mapping[str, Any], now: float) -> bool:
    """Whether the stored access token expires within :data:`REFRESH_MARGIN` seconds."""
    expires_at = session.get("expires_at")
    return isinstance(expires_at, int | float) and expires_at - now < REFRESH_MARGIN


def write_private(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` as JSON readable by its owner only: the directory is created 0700, the
    file is written 0600 beside it and renamed over the old one (never world-readable, even
    for a moment)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def read_session(path: Path) -> dict[str, Any]:
    """The stored session; a usage error when there is none or it is not ours to read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"not signed in (no {path}); run `jotkit login`")
    try:
        data = json.loads(text)
    except ValueError:
        fail(f"{path} is not a jotkit token file")
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
        fail(f"{path} is not a jotkit token file")
    return data


# -- the HTTP shell -------------------------------------------------------------------------------
class _Http:
    """The few requests the commands make (httpx, ``jotkit[cli]``)."""

    def __init__(self) -> None:
        import httpx

        self._client = httpx.Client(timeout=_TIMEOUT, follow_redirects=False,
                                    headers={"User-Agent": "jotkit-cli"})

    def __enter__(self) -> _Http:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def _post(self, url: str, form: Mapping[str, str]) -> httpx.Response:
        import httpx

        try:
            return self._client.post(url, data=dict(form))
        except httpx.HTTPError as exc:
            fail(f"cannot reach {url}: {exc}", EXIT_INVALID)

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def metadata(self, issuer: str) -> dict[str, Any]:
        """RFC 8414 §3: the server metadata, whose ``issuer`` must be ``issuer`` (§3.3)."""
        import httpx

        base = require_https(issuer, "issuer").rstrip("/")
        url = base + "/.well-known/oauth-authorization-server"
        try:
            response = self._client.get(url)
        except httpx.HTTPError as exc:
            fail(f"cannot reach {url}: {exc}", EXIT_INVALID)
        body = self._json(response)
        if response.status_code != 200 or not isinstance(body, dict):
            fail(f"{url} answered HTTP {response.status_code}, not metadata", EXIT_INVALID)
        if body.get("issuer") != issuer.rstrip("/"):
            fail(f"the metadata names issuer {body.get('issuer')!r}, not {issuer!r}",
                 EXIT_INVALID)
        if not isinstance(body.get("device_authorization_endpoint"), str):
            fail("the server has no device authorization endpoint (RFC 8628)", EXIT_INVALID)
        for name in ("device_authorization_endpoint", "token_endpoint"):
            require_https(body.get(name), name.replace("_", " "))
        if body.get("revocation_endpoint") is not None:
            require_https(body["revocation_endpoint"], "revocation endpoint")
        return body

    def form(self, url: str, form: Mapping[str, str]) -> tuple[int, Any]:
        """POST a form; the status and the JSON body (None when not JSON)."""
        response = self._post(url, form)
        return response.status_code, self._json(response)


# -- the commands ---------------------------------------------------------------------------------
def _device_login(
    http: _Http, metadata: Mapping[str, Any], client_id: str, scope: str | None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    form = {"client_id": client_id} | ({"scope": scope} if scope else {})
    status, start = http.form(metadata["device_authorization_endpoint"], form)
    if status != 200 or not isinstance(start, dict) or not isinstance(
        start.get("device_code"), str
    ):
        error = start.get("error") if isinstance(start, dict) else None
        fail(f"the device authorization request failed: {error or f'HTTP {status}'}",
             EXIT_INVALID)
    typer.echo(f"Open {start.get('verification_uri')} and enter the code "
               f"{start.get('user_code')}")
    if start.get("verification_uri_complete"):
        typer.echo(f"(or open {start['verification_uri_complete']})")
    interval = poll_interval(start.get("interval"))
    deadline = time.monotonic() + code_lifetime(start.get("expires_in"))
    while time.monotonic() < deadline:
        sleep(interval)
        status, body = http.form(metadata["token_endpoint"], {
            "grant_type": DEVICE_CODE_GRANT, "device_code": start["device_code"],
            "client_id": client_id,
        })
        polled = poll_outcome(status, body, interval)
        if polled.tokens is not None:
            return polled.tokens
        interval = polled.interval
    fail("the code expired before it was approved; run `jotkit login` again", EXIT_INVALID)


def login(
    issuer: Annotated[str, typer.Option("--issuer", help="The authorization server URL.")],
    client_id: Annotated[
        str, typer.Option("--client-id", help="A client registered for the device grant.")
    ],
    scope: Annotated[
        str | None, typer.Option("--scope", help="Space-separated scopes to ask for.")
    ] = None,
    token_path: TokenFile = None,
) -> None:
    """Sign in with the device authorization grant (RFC 8628) and keep the tokens (0600)."""
    with handle_errors(), _Http() as http:
        path = token_file(token_path, os.environ)
        metadata = http.metadata(issuer)
        tokens = _device_login(http, metadata, client_id, scope)
        write_private(path, session_from_tokens(tokens, metadata, client_id, time.time()))
        typer.echo(f"Signed in; tokens saved to {path}")


def token(token_path: TokenFile = None) -> None:
    """Print a valid access token, refreshed first when it is about to expire."""
    with handle_errors():
        path = token_file(token_path, os.environ)
        session = read_session(path)
        if needs_refresh(session, time.time()):
            if not session.get("refresh_token"):
                fail("the access token expired and there is no refresh token; run "
                     "`jotkit login`", EXIT_INVALID)
            with _Http() as http:
                status, body = http.form(session["token_endpoint"], {
                    "grant_type": "refresh_token", "refresh_token": session["refresh_token"],
                    "client_id": session["client_id"],
                })
            if status != 200 or not isinstance(body, dict) or "access_token" not in body:
                error = body.get("error") if isinstance(body, dict) else f"HTTP {status}"
                fail(f"the refresh failed ({error}); run `jotkit login`", EXIT_INVALID)
            session = session_from_tokens(body, session, session["client_id"], time.time(),
                                          previous=session)
            write_private(path, session)
        typer.echo(session["access_token"])


def logout(token_path: TokenFile = None) -> None:
    """Revoke the stored tokens (RFC 7009, when the server can) and remove the file."""
    with handle_errors():
        path = token_file(token_path, os.environ)
        session = read_session(path)
        endpoint = session.get("revocation_endpoint")
        if isinstance(endpoint, str):
            with _Http() as http:
                for kind in ("refresh_token", "access_token"):
                    value = session.get(kind)
                    if not value:
                        continue
                    status, _ = http.form(endpoint, {
                        "token": value, "token_type_hint": kind,
                        "client_id": session["client_id"],
                    })
                    if status != 200:  # RFC 7009 §2.2: 200 even for an unknown token
                        fail(f"the revocation endpoint answered HTTP {status}; the tokens "
                             f"are kept in {path}", EXIT_INVALID)
        path.unlink()
        typer.echo("Signed out" + ("; tokens revoked" if endpoint else "") + ".")


_EXAMPLES = {
    "login": ["jotkit login --issuer https://auth.example --client-id CLI_CLIENT_ID "
              "--scope 'openid offline_access'"],
    "token": ['curl -H "Authorization: Bearer $(jotkit token)" https://api.example/me'],
    "logout": ["jotkit logout"],
}


def register(app: typer.Typer) -> None:
    """Add ``login``, ``token`` and ``logout`` to the ``jotkit`` Typer app."""
    for fn in (login, token, logout):
        lines = "\n\n".join(f"  $ {e}" for e in _EXAMPLES[fn.__name__])
        app.command(name=fn.__name__, epilog=f"Examples:\n\n{lines}")(fn)
