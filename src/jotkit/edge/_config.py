"""What ``jotkit forward-auth`` enforces: a frozen config, read from flags and a TOML file.

The file (read with :mod:`tomllib`) may hold every flag and per-path-prefix rules::

    jwks_url = "https://auth.example.com/.well-known/jwks.json"
    issuer = "https://auth.example.com"
    audience = "orders"
    public_url = "https://api.example.com" # DPoP proofs must name this origin (optional)
    require_scopes = ["orders:read"]       # every request (all of them)
    require_roles = []                     # every request (any one of them)

    [claim_headers]                        # claim name -> response header
    email = "X-Auth-Email"

    [[paths]]                              # the longest matching prefix wins
    prefix = "/admin/"
    scopes = ["orders:admin"]              # all of these, on top of require_scopes
    roles = ["admin"]                      # at least one of these

Every mistake (unknown key, wrong type, bad header name, duplicate prefix) is a
:class:`ForwardAuthConfigError` that names the key, never a traceback.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "RESERVED_HEADERS",
    "ForwardAuthConfig",
    "ForwardAuthConfigError",
    "PathRule",
    "load_config",
    "normalize_origin",
    "normalize_path",
]

#: The headers forward-auth always answers with (lower case); a claim header cannot reuse them.
RESERVED_HEADERS = frozenset({"x-auth-subject", "x-auth-scope", "x-auth-roles", "x-auth-claims"})

# Headers a claim may not be mapped to: framing, hop-by-hop (RFC 9110 §7.6.1), or with a
# meaning of their own to the proxy (challenge, caching, cookies, redirects).
_FORBIDDEN_HEADERS = RESERVED_HEADERS | {
    "content-length", "content-type", "content-encoding", "transfer-encoding", "connection",
    "keep-alive", "upgrade", "te", "trailer", "host", "date", "server", "location",
    "www-authenticate", "cache-control", "set-cookie", "retry-after", "vary", "authorization",
    "proxy-authenticate", "proxy-authorization", "proxy-connection",
}  # fmt: skip

# RFC 9110 §5.1: field-name = token = 1*tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x20\x7f]")  # also space: not inside a scope or role name
_CTL = re.compile(r"[\x00-\x1f\x7f]")
_TOP_KEYS = frozenset({
    "jwks_url", "issuer", "audience", "require_scopes", "require_roles", "claim_headers",
    "revocations", "allow_insecure_http", "decision_ttl", "paths", "revocations_client_id",
    "revocations_client_secret", "revocations_fail_open", "public_url",
})  # fmt: skip
_PATH_KEYS = frozenset({"prefix", "scopes", "roles"})


class ForwardAuthConfigError(ValueError):
    """The forward-auth configuration (flags or file) is invalid; the message says where."""


@dataclass(frozen=True, slots=True)
class PathRule:
    """Extra requirements for request paths that start with ``prefix`` (RFC 6750 §3.1, 403).

    ``scopes``: all of them must be granted; ``roles``: at least one of them.
    """

    prefix: str
    scopes: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ForwardAuthConfig:
    """Everything ``jotkit forward-auth`` enforces; build it with :func:`load_config`.

    ``claim_headers`` maps a claim name to the response header carrying it; ``paths`` are
    sorted longest prefix first, so the first match is the longest one. ``decision_ttl``:
    how long (seconds) an allow decision for one ``Authorization`` value and rule is reused
    before the verifier is asked again (never past the token's ``exp``; 0 = every request).
    ``revocations`` is the issuer's revocation feed, read as the OAuth client
    ``revocations_client_id`` / ``revocations_client_secret`` (HTTP Basic); while it is not
    synced tokens are accepted (``revocations_fail_open``, the default) or refused with 503.
    ``public_url`` is the origin (``https://api.example.com``) clients send their requests
    to: a DPoP proof's ``htu`` (RFC 9449 §4.3) must name it, whatever ``X-Forwarded-Proto`` /
    ``X-Forwarded-Host`` say; without it those two headers give the origin.
    """

    jwks_url: str
    issuer: str
    audience: str
    require_scopes: tuple[str, ...] = ()
    require_roles: tuple[str, ...] = ()
    claim_headers: tuple[tuple[str, str], ...] = ()
    paths: tuple[PathRule, ...] = ()
    revocations: str | None = None
    allow_insecure_http: bool = False
    decision_ttl: float = 0.1
    revocations_client_id: str | None = None
    revocations_client_secret: str | None = field(default=None, repr=False)
    revocations_fail_open: bool = True
    public_url: str | None = None

    def rule_for(self, path: str) -> PathRule | None:
        """The rule of the longest prefix of ``path`` (already normalised), if any."""
        for rule in self.paths:
            if path.startswith(rule.prefix):
                return rule
        return None


def normalize_path(uri: str) -> str | None:
    """The path of a request URI as a proxy routes it, or None when it cannot be one.

    The query and fragment are dropped, percent-escapes decoded (RFC 3986 §2.1), repeated
    slashes merged and ``.``/``..`` segments resolved (RFC 3986 §5.2.4), so ``/a/../admin/``
    and ``/%61dmin/`` meet the rule of ``/admin/`` as nginx's ``location`` would. A URI that
    is not origin-form, decodes to control characters or climbs above the root is None.
    """
    path = uri.partition("?")[0].partition("#")[0]
    if not path.startswith("/"):
        return None
    if "%" in path:
        try:
            path = _unquote_strict(path)
        except ValueError:
            return None
    if _CTL.search(path):
        return None
    if "//" not in path and "/." not in path:
        return path  # the usual case: nothing to resolve
    out: list[str] = []
    segments = path.split("/")[1:]
    for i, segment in enumerate(segments):
        last = i == len(segments) - 1
        if segment == "..":
            if not out:
                return None
            out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        elif segment or last:
            out.append(segment)
    return "/" + "/".join(out)


def normalize_origin(url: str) -> str:
    """``scheme://host[:port]`` of an absolute http(s) URL with no path, query, fragment or
    userinfo (RFC 6454 §4), lower-cased and without a default port (RFC 3986 §6.2.3), as
    a DPoP ``htu`` names it (RFC 9449 §4.2). :class:`ForwardAuthConfigError` otherwise."""
    from urllib.parse import urlsplit

    bad = ForwardAuthConfigError(
        f"public_url: {url!r} must be an origin such as 'https://api.example.com'"
    )
    if _CONTROL.search(url) or not url.isascii():
        raise bad
    parts = urlsplit(url.removesuffix("/"))
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        raise bad from None
    host = parts.hostname
    if (scheme not in ("http", "https") or not host or "@" in parts.netloc or parts.path
            or parts.query or parts.fragment or url.endswith(("?", "#"))):
        raise bad
    if ":" in host:
        host = f"[{host}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default) else f"{scheme}://{host}:{port}"


def _unquote_strict(path: str) -> str:
    """Decode %XX escapes as UTF-8; a stray ``%`` or invalid UTF-8 raises ValueError."""
    raw = bytearray()
    i = 0
    data = path.encode("utf-8", "surrogateescape")
    while i < len(data):
        byte = data[i]
        if byte == 0x25:  # '%'
            pair = data[i + 1 : i + 3]
            if len(pair) != 2 or not all(c in b"0123456789abcdefABCDEF" for c in pair):
                raise ValueError("bad percent-escape")
            raw.append(int(pair, 16))
            i += 3
        else:
            raw.append(byte)
            i += 1
    return raw.decode("utf-8")


# ------------------------------------------------------------------- validation


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ForwardAuthConfigError(f"{where} must be a list of strings")
    out: list[str] = []
    for item in value:
        if not item or _CONTROL.search(item) or item != item.strip():
            raise ForwardAuthConfigError(f"{where}: {item!r} is not a scope or role name")
        out.append(item)
    return tuple(dict.fromkeys(out))


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ForwardAuthConfigError(f"{where} must be a non-empty string")
    return value


def _header_name(name: Any, where: str) -> str:
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ForwardAuthConfigError(f"{where}: {name!r} is not a valid header name")
    if name.lower() in _FORBIDDEN_HEADERS or name.lower().startswith("proxy-"):
        raise ForwardAuthConfigError(f"{where}: the header {name!r} cannot carry a claim")
    return name


def _claim_headers(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ForwardAuthConfigError(f"{where} must be a table of claim = header name")
    out: dict[str, str] = {}
    for claim, header in value.items():
        out[_text(claim, where)] = _header_name(header, f"{where}.{claim}")
    return out


def _paths(value: Any) -> list[PathRule]:
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise ForwardAuthConfigError("paths must be an array of tables ([[paths]])")
    rules: list[PathRule] = []
    for i, table in enumerate(value):
        where = f"paths[{i}]"
        unknown = sorted(set(table) - _PATH_KEYS)
        if unknown:
            raise ForwardAuthConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
        if "prefix" not in table:
            raise ForwardAuthConfigError(f"{where}: prefix is required")
        prefix = table["prefix"]
        if not isinstance(prefix, str) or normalize_path(prefix) != prefix:
            raise ForwardAuthConfigError(
                f"{where}.prefix: {prefix!r} must be a normalised absolute path such as '/admin/'"
            )
        scopes = _strings(table.get("scopes", []), f"{where}.scopes")
        roles = _strings(table.get("roles", []), f"{where}.roles")
        if not scopes and not roles:
            raise ForwardAuthConfigError(f"{where}: give scopes and/or roles for {prefix!r}")
        rules.append(PathRule(prefix, scopes, roles))
    seen: set[str] = set()
    for rule in rules:
        if rule.prefix in seen:
            raise ForwardAuthConfigError(f"paths: the prefix {rule.prefix!r} appears twice")
        seen.add(rule.prefix)
    return rules


def _read_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ForwardAuthConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ForwardAuthConfigError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ForwardAuthConfigError(f"{path}: not valid UTF-8") from None
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ForwardAuthConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_TOP_KEYS))})"
        )
    return data


def _parse_claim_header(item: str) -> tuple[str, str]:
    """Split a ``CLAIM=Header-Name`` flag (the last ``=`` separates them)."""
    claim, sep, header = item.rpartition("=")
    if not sep or not claim:
        raise ForwardAuthConfigError(f"--claim-header {item!r}: expected CLAIM=Header-Name")
    return claim, _header_name(header, f"--claim-header {claim}")


def load_config(
    file: str | Path | None = None,
    *,
    jwks_url: str | None = None,
    issuer: str | None = None,
    audience: str | None = None,
    require_scopes: Sequence[str] = (),
    require_roles: Sequence[str] = (),
    claim_headers: Sequence[str] = (),
    revocations: str | None = None,
    allow_insecure_http: bool | None = None,
    decision_ttl: float | None = None,
    revocations_client_id: str | None = None,
    revocations_client_secret: str | None = None,
    revocations_fail_open: bool | None = None,
    public_url: str | None = None,
) -> ForwardAuthConfig:
    """Merge the TOML ``file`` (if any) and the flags into a validated config.

    A flag wins over the file's value; a non-empty list flag replaces the file's list;
    ``claim_headers`` (``CLAIM=Header-Name`` items) are added to the file's table.
    """
    data: dict[str, Any] = _read_file(Path(file)) if file is not None else {}
    where = str(file) if file is not None else "flags"
    merged_headers = _claim_headers(data.get("claim_headers", {}), "claim_headers")
    for item in claim_headers:
        claim, header = _parse_claim_header(item)
        merged_headers[claim] = header
    lowered = [h.lower() for h in merged_headers.values()]
    if len(set(lowered)) != len(lowered):
        raise ForwardAuthConfigError("claim_headers: two claims map to the same header")

    def pick(flag: Any, key: str, flag_name: str) -> str:
        value = flag if flag is not None else data.get(key)
        if value is None:
            raise ForwardAuthConfigError(f"{flag_name} is required (or {key} in --config)")
        return _text(value, key if flag is None else flag_name)

    revocation_url = revocations if revocations is not None else data.get("revocations")
    if revocation_url is not None:
        revocation_url = _text(revocation_url, "revocations")
    feed_id = _optional_text(revocations_client_id, data, "revocations_client_id")
    feed_secret = _optional_text(revocations_client_secret, data, "revocations_client_secret")
    if revocation_url is not None and (feed_id is None or feed_secret is None):
        raise ForwardAuthConfigError(
            "--revocations needs the feed's client credentials: --revocations-client-id and "
            "JOTKIT_REVOCATIONS_CLIENT_SECRET (or revocations_client_id/_secret in --config)"
        )
    if revocation_url is None and (feed_id is not None or feed_secret is not None):
        raise ForwardAuthConfigError("revocation feed credentials are given without --revocations")
    fail_open = revocations_fail_open
    if fail_open is None:
        fail_open = data.get("revocations_fail_open", True)
        if not isinstance(fail_open, bool):
            raise ForwardAuthConfigError(f"{where}: revocations_fail_open must be true or false")
    insecure = allow_insecure_http
    if insecure is None:
        insecure = data.get("allow_insecure_http", False)
        if not isinstance(insecure, bool):
            raise ForwardAuthConfigError(f"{where}: allow_insecure_http must be true or false")
    scopes = (
        _strings(list(require_scopes), "--require-scope")
        if require_scopes
        else _strings(data.get("require_scopes", []), "require_scopes")
    )
    roles = (
        _strings(list(require_roles), "--require-role")
        if require_roles
        else _strings(data.get("require_roles", []), "require_roles")
    )
    ttl = decision_ttl if decision_ttl is not None else data.get("decision_ttl", 0.1)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl <= 60:
        raise ForwardAuthConfigError("decision_ttl must be a number of seconds from 0 to 60")
    origin = _optional_text(public_url, data, "public_url")
    if origin is not None:
        origin = normalize_origin(origin)
    rules = sorted(_paths(data.get("paths", [])), key=lambda r: len(r.prefix), reverse=True)
    return ForwardAuthConfig(
        jwks_url=pick(jwks_url, "jwks_url", "--jwks-url"),
        issuer=pick(issuer, "issuer", "--issuer"),
        audience=pick(audience, "audience", "--audience"),
        require_scopes=scopes,
        require_roles=roles,
        claim_headers=tuple(merged_headers.items()),
        paths=tuple(rules),
        revocations=revocation_url,
        allow_insecure_http=insecure,
        decision_ttl=float(ttl),
        revocations_client_id=feed_id,
        revocations_client_secret=feed_secret,
        revocations_fail_open=fail_open,
        public_url=origin,
    )


def _optional_text(flag: str | None, data: dict[str, Any], key: str) -> str | None:
    """A flag's value, else the file's ``key``, else None; non-empty printable text."""
    value = flag if flag is not None else data.get(key)
    return None if value is None else _text(value, key)
