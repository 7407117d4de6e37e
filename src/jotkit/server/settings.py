"""Service settings: one frozen dataclass, read from ``JOTKIT_*`` variables and a TOML file.

Precedence (highest first): environment variables, the TOML file, the defaults below.
The TOML file is optional; its keys are the field names (``access_ttl = "15m"``), either at
the top level or under a ``[server]`` table.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Settings", "SettingsError"]


class SettingsError(ValueError):
    """A setting has an invalid value; the message names the variable."""


def _timespan(value: Any, name: str) -> float:
    """A duration in jotkit's one grammar (:func:`jotkit.parse_timespan`): ``"15m"``, ``"7d"``,
    ``"1h30m"`` or seconds; ``inf``, ``nan``, negative and over-100-year values are refused."""
    from jotkit.claims import parse_timespan

    try:
        return parse_timespan(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"{name}: {exc}") from None


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"{name}: {value!r} is not a boolean")


def _int(value: Any, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"{name}: expected an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{name}: {value!r} is not an integer") from None
    if number < minimum:
        raise SettingsError(f"{name}: must be >= {minimum}")
    return number


def _clients(value: Any, name: str) -> tuple[tuple[str, str], ...]:
    """``"id:secret,id2:secret2"`` or a TOML table ``{id = "secret"}``."""
    if isinstance(value, Mapping):
        return tuple((str(k), str(v)) for k, v in value.items())
    out: list[tuple[str, str]] = []
    for item in str(value).split(","):
        item = item.strip()
        if not item:
            continue
        client_id, sep, secret = item.partition(":")
        if not sep or not client_id or not secret:
            raise SettingsError(f"{name}: expected 'id:secret' pairs separated by commas")
        out.append((client_id, secret))
    return tuple(out)


_SAMESITE = {"strict", "lax", "none"}
SIGNING_ALGORITHMS = (
    "ES256",
    "ES384",
    "ES512",
    "ES256K",
    "EdDSA",
    "Ed25519",
    "Ed448",
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the auth service reads from its environment (see docs/service.md)."""

    data_dir: Path = Path(".jotkit")
    database_url: str | None = field(default=None, repr=False)  # may hold a password
    redis_url: str | None = field(default=None, repr=False)  # deny-list, counters (deployment.md)
    redis_prefix: str = "jotkit:"  # every Redis key and the pub/sub channel start with it
    revocation_fail_open: bool = False  # Redis down: False -> 503 (closed), True -> local cache
    host: str = "127.0.0.1"
    port: int = 8000
    issuer: str | None = None
    audience: str = "jotkit"
    signing_alg: str = "ES256"
    access_ttl: float = 900.0
    refresh_idle_ttl: float = 7 * 86400.0
    refresh_absolute_ttl: float = 30 * 86400.0
    reuse_grace: float = 5.0
    key_publish_delay: float = 300.0
    key_retire_margin: float = 60.0
    jwks_max_age: int = 300
    cookie_mode: bool = False
    cookie_secure: bool = True
    cookie_samesite: str = "strict"
    demo: bool = False
    argon2_time_cost: int = 3
    argon2_memory_cost: int = 65536
    argon2_parallelism: int = 4
    argon2_insecure_test_costs: bool = False  # tests only: allow costs below the OWASP floor
    # argon2 pool (docs/deployment.md, sizing): at most `workers` hashes at once, `queue` more
    # wait, further logins get 503 + Retry-After; None -> os.cpu_count() / 4 x workers
    argon2_workers: int | None = None
    argon2_queue: int | None = None
    # a shed POST /auth/login is answered after this delay (its Retry-After), while fewer than
    # login_shed_held are held; 0 answers at once (docs/service.md, Passwords)
    login_shed_delay: float = 1.0
    login_shed_held: int = 256
    login_account_limit: int = 100  # failed logins per account from all addresses (ceiling)
    login_account_window: float = 3600.0
    login_ip_limit: int = 30
    login_ip_window: float = 60.0
    login_pair_limit: int = 5  # failed logins per (account, address) per pair window
    login_pair_window: float = 300.0  # doubles with each lockout (backoff) ...
    login_backoff_max: float = 3600.0  # ... up to this
    login_backoff_memory: float = 86400.0  # lockouts are remembered this long
    max_body_bytes: int = 65536
    token_cache_size: int = 10000
    revocation_sync_interval: float = 2.0
    keyring_sync_interval: float = 10.0
    introspection_clients: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    trust_forwarded_for: bool = False
    log_level: str = "INFO"
    # connection pools: a burst waits up to the timeout for a connection, then gets 503 +
    # Retry-After (docs/deployment.md); SQLite keeps its one writer connection
    database_pool_size: int = 10
    database_max_overflow: int = 10
    database_pool_timeout: float = 10.0
    redis_max_connections: int = 64
    redis_pool_timeout: float = 5.0
    # edge (HTTP layer, docs/deployment.md): proxies, request limits, headers, ops endpoints
    trusted_proxies: tuple[str, ...] = ()  # IPs/CIDRs whose X-Forwarded-For/-Proto is used
    max_header_bytes: int = 32768  # request line + headers; larger -> 400, connection closed
    header_timeout: float = 10.0  # the request head must arrive within this
    body_timeout: float = 30.0  # the body must arrive within this after the head
    keep_alive_timeout: int = 5  # idle keep-alive connections are closed after this
    metrics_token: str | None = field(default=None, repr=False)  # /metrics needs this Bearer
    docs: bool = True  # /docs, /redoc and /openapi.json
    csrf_secret: str | None = field(default=None, repr=False)  # HMAC key of CSRF tokens
    client_auth_limit: int = 10  # failed /oauth/* client authentications per address ...
    client_auth_window: float = 300.0  # ... in this window, then 429
    id_token_ttl: float = 3600.0  # OpenID Connect ID tokens (docs/oauth.md)
    # DPoP (RFC 9449, docs/oauth.md): proofs may be this old (iat); server nonces (§8) are
    # required when set, each valid for its window and the next (stateless: an HMAC)
    dpop_max_age: float = 60.0
    dpop_require_nonce: bool = False
    dpop_nonce_window: float = 300.0
    # hosted OAuth pages (docs/oauth.md, "Hosted pages"): the product name and look
    brand_name: str = "jotkit"
    brand_color: str = "#3557d4"  # accent colour: #rgb or #rrggbb
    brand_logo_url: str | None = None  # https:// (or /path) image shown above the forms
    sso_session_ttl: float = 7 * 86400.0  # an SSO session (browser sign-in) lasts this long
    # pushed authorization requests (RFC 9126) and the device grant (RFC 8628), docs/oauth.md
    require_par: bool = False  # every client must push its authorization request (§5)
    par_ttl: float = 60.0  # a request_uri lives this long (expires_in, RFC 9126 §2.2)
    device_code_ttl: float = 600.0  # device_code / user_code lifetime (RFC 8628 §3.2)
    device_code_interval: float = 5.0  # minimum polling interval (RFC 8628 §3.2 ``interval``)
    user_code_limit: int = 10  # wrong user codes per address ... (RFC 8628 §5.1 brute force)
    user_code_window: float = 300.0  # ... in this window, then 429
    # processes (``jotkit serve --workers N``, docs/deployment.md): N uvicorn workers share the
    # listening socket and the database; each keeps its own caches and argon2 pool
    workers: int = 1
    expose_worker_pid: bool = False  # tests/benchmarks: X-Jotkit-Worker: <pid> on responses

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # durations (float fields) follow the core grammar
            if f.type in ("float", float):
                _timespan(getattr(self, f.name), f"JOTKIT_{f.name.upper()}")
        if self.signing_alg not in SIGNING_ALGORITHMS:
            raise SettingsError(
                "JOTKIT_SIGNING_ALG: must be an asymmetric algorithm: "
                + ", ".join(SIGNING_ALGORITHMS)
            )
        if self.cookie_samesite not in _SAMESITE:
            raise SettingsError("JOTKIT_COOKIE_SAMESITE: must be strict, lax or none")
        if self.cookie_samesite == "none" and not self.cookie_secure:
            raise SettingsError("JOTKIT_COOKIE_SAMESITE=none requires JOTKIT_COOKIE_SECURE=1")
        if self.access_ttl <= 0:
            raise SettingsError("JOTKIT_ACCESS_TTL: must be > 0")
        if self.refresh_absolute_ttl < self.refresh_idle_ttl:
            raise SettingsError("JOTKIT_REFRESH_ABSOLUTE_TTL must be >= JOTKIT_REFRESH_IDLE_TTL")
        if not (1 <= self.port <= 65535) and self.port != 0:
            raise SettingsError("JOTKIT_PORT: must be between 1 and 65535")
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise SettingsError("JOTKIT_REDIS_URL: must start with redis://, rediss:// or unix://")
        if not self.redis_prefix or any(c.isspace() for c in self.redis_prefix):
            raise SettingsError("JOTKIT_REDIS_PREFIX: must be non-empty, without spaces")
        if not (0 < self.database_pool_timeout < float("inf")):
            raise SettingsError("JOTKIT_DATABASE_POOL_TIMEOUT: must be a finite duration > 0")
        if not (0 < self.redis_pool_timeout < float("inf")):
            raise SettingsError("JOTKIT_REDIS_POOL_TIMEOUT: must be a finite duration > 0")
        from .passwords import argon2_floor_problem

        floor = argon2_floor_problem(
            self.argon2_time_cost, self.argon2_memory_cost, self.argon2_parallelism
        )
        if floor is not None and not self.argon2_insecure_test_costs:
            raise SettingsError(
                f"JOTKIT_ARGON2_*: {floor}; raise JOTKIT_ARGON2_MEMORY_COST or _TIME_COST "
                "(only a test setup may set JOTKIT_ARGON2_INSECURE_TEST_COSTS=1)"
            )
        if self.argon2_workers is not None and self.argon2_workers < 1:
            raise SettingsError("JOTKIT_ARGON2_WORKERS: must be >= 1")
        if self.argon2_queue is not None and self.argon2_queue < 0:
            raise SettingsError("JOTKIT_ARGON2_QUEUE: must be >= 0")
        if not 0 <= self.login_shed_delay <= 60:
            raise SettingsError("JOTKIT_LOGIN_SHED_DELAY: must be between 0 and 60 seconds")
        if self.login_shed_held < 0:
            raise SettingsError("JOTKIT_LOGIN_SHED_HELD: must be >= 0")
        if self.login_backoff_max < self.login_pair_window:
            raise SettingsError("JOTKIT_LOGIN_BACKOFF_MAX must be >= JOTKIT_LOGIN_PAIR_WINDOW")
        if self.workers < 1:
            raise SettingsError("JOTKIT_WORKERS: must be >= 1")
        for name in ("dpop_max_age", "dpop_nonce_window"):
            if not (0 < getattr(self, name) < float("inf")):
                raise SettingsError(f"JOTKIT_{name.upper()}: must be a finite duration > 0")
        _check_edge(self)
        _check_brand(self)

    # -- derived values -------------------------------------------------------------------
    @property
    def effective_database_url(self) -> str:
        """The database URL; defaults to a SQLite file inside :attr:`data_dir`."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'jotkit.db').resolve()}"

    @property
    def effective_issuer(self) -> str:
        """The ``iss`` value and base URL of every published endpoint (RFC 8414 §2)."""
        if self.issuer:
            return self.issuer.rstrip("/")
        return f"http://{self.host}:{self.port}"

    @property
    def effective_argon2_workers(self) -> int:
        """Threads of the argon2 pool: the setting, or the core count."""
        import os

        return self.argon2_workers or max(1, os.cpu_count() or 1)

    @property
    def effective_argon2_queue(self) -> int:
        """Logins that may wait for an argon2 thread: the setting, or 4 x the workers."""
        if self.argon2_queue is not None:
            return self.argon2_queue
        return 4 * self.effective_argon2_workers

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> str:
        """Every field as one JSON object (secrets included: hand it only to processes of the
        same user, as ``jotkit serve --workers`` does through its workers' environment)."""
        import json

        return json.dumps(
            {
                f.name: str(value) if isinstance(value, Path) else value
                for f in dataclasses.fields(self)
                for value in (getattr(self, f.name),)
            }
        )

    @classmethod
    def from_json(cls, text: str) -> Settings:
        """The settings :meth:`to_json` wrote (validated again; unknown names are an error)."""
        import json

        try:
            data = json.loads(text)
        except ValueError:
            raise SettingsError("settings JSON: not valid JSON") from None
        if not isinstance(data, dict):
            raise SettingsError("settings JSON: must be an object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise SettingsError(f"settings JSON: unknown setting(s) {', '.join(unknown)}")
        if "data_dir" in data:
            data["data_dir"] = Path(str(data["data_dir"]))
        try:
            if "introspection_clients" in data:
                data["introspection_clients"] = tuple(
                    (str(client_id), str(secret))
                    for client_id, secret in data["introspection_clients"]
                )
        except (TypeError, ValueError):
            message = "settings JSON: introspection_clients must be [id, secret] pairs"
            raise SettingsError(message) from None
        if "trusted_proxies" in data:
            data["trusted_proxies"] = _convert("trusted_proxies", data["trusted_proxies"])
        return cls(**data)

    # -- loading --------------------------------------------------------------------------
    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, toml_path: str | Path | None = None
    ) -> Settings:
        """Build settings from ``JOTKIT_<FIELD>`` variables and an optional TOML file.

        ``toml_path`` defaults to ``$JOTKIT_CONFIG`` when set. Unknown TOML keys are an error
        (a typo should not silently fall back to a default).
        """
        import os

        env = dict(os.environ if environ is None else environ)
        raw: dict[str, Any] = {}
        path = toml_path if toml_path is not None else env.get("JOTKIT_CONFIG")
        if path:
            try:
                with open(path, "rb") as handle:
                    doc = tomllib.load(handle)
            except OSError as exc:
                raise SettingsError(f"cannot read settings file {path}: {exc}") from None
            except tomllib.TOMLDecodeError as exc:
                raise SettingsError(f"settings file {path} is not valid TOML: {exc}") from None
            table = doc.get("server", doc)
            if not isinstance(table, dict):
                raise SettingsError("settings file: [server] must be a table")
            names = {f.name for f in dataclasses.fields(cls)}
            for key, value in table.items():
                if key not in names:
                    raise SettingsError(f"settings file: unknown setting {key!r}")
                raw[key] = value
        for f in dataclasses.fields(cls):
            var = f"JOTKIT_{f.name.upper()}"
            if var in env:
                raw[f.name] = env[var]
        return cls(**{name: _convert(name, value) for name, value in raw.items()})


def _proxies(value: Any, name: str) -> tuple[str, ...]:
    """``"10.0.0.1, 10.1.0.0/16, ::1"`` or a TOML list; each entry an IP or a CIDR."""
    import ipaddress

    items = value if isinstance(value, list | tuple) else str(value).split(",")
    out: list[str] = []
    for item in (str(i).strip() for i in items):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise SettingsError(f"{name}: {item!r} is not an IP address or CIDR") from None
    return tuple(out)


def _check_edge(s: Settings) -> None:
    if s.trust_forwarded_for:
        raise SettingsError(
            "JOTKIT_TRUST_FORWARDED_FOR was removed: it trusted the left-most X-Forwarded-For "
            "entry, which any client can set. List your reverse proxies instead, e.g. "
            "JOTKIT_TRUSTED_PROXIES=127.0.0.1,10.0.0.0/8 (docs/deployment.md)."
        )
    if s.max_header_bytes < 4096:
        raise SettingsError("JOTKIT_MAX_HEADER_BYTES: must be >= 4096")
    for label, seconds in (("HEADER", s.header_timeout), ("BODY", s.body_timeout)):
        if not 0 < seconds < float("inf"):
            raise SettingsError(f"JOTKIT_{label}_TIMEOUT: must be a finite duration > 0")
    if s.metrics_token is not None and len(s.metrics_token) < 16:
        raise SettingsError("JOTKIT_METRICS_TOKEN: use at least 16 characters")
    if s.csrf_secret is not None and len(s.csrf_secret) < 32:
        raise SettingsError("JOTKIT_CSRF_SECRET: use at least 32 characters")
    shared_db = bool(s.database_url) and not str(s.database_url).startswith("sqlite")
    if s.cookie_mode and shared_db and s.csrf_secret is None:
        raise SettingsError(
            "JOTKIT_CSRF_SECRET is required with JOTKIT_COOKIE_MODE on a shared database: "
            "every instance must accept the CSRF tokens the others issue"
        )


def _check_brand(s: Settings) -> None:
    import re

    if not re.fullmatch(r"#(?:[0-9a-fA-F]{3}){1,2}", s.brand_color):
        raise SettingsError("JOTKIT_BRAND_COLOR: use #rgb or #rrggbb")
    if not s.brand_name.strip() or len(s.brand_name) > 64:
        raise SettingsError("JOTKIT_BRAND_NAME: 1 to 64 characters")
    logo = s.brand_logo_url
    if logo is not None and not (
        logo.startswith("https://") or (logo.startswith("/") and not logo.startswith("//"))
    ):
        raise SettingsError("JOTKIT_BRAND_LOGO_URL: an https:// URL or a /path on this server")
    if s.sso_session_ttl <= 0:
        raise SettingsError("JOTKIT_SSO_SESSION_TTL: must be > 0")
    for name in ("par_ttl", "device_code_ttl", "device_code_interval", "user_code_window"):
        if not 0 < getattr(s, name) <= 86400:
            raise SettingsError(f"JOTKIT_{name.upper()}: must be > 0 and at most one day")


def _convert(name: str, value: Any) -> Any:
    label = f"JOTKIT_{name.upper()}"
    durations = {
        "access_ttl",
        "refresh_idle_ttl",
        "refresh_absolute_ttl",
        "reuse_grace",
        "key_publish_delay",
        "key_retire_margin",
        "login_account_window",
        "login_ip_window",
        "login_pair_window",
        "login_backoff_max",
        "login_backoff_memory",
        "login_shed_delay",
        "revocation_sync_interval",
        "keyring_sync_interval",
        "database_pool_timeout",
        "redis_pool_timeout",
        "header_timeout",
        "body_timeout",
        "client_auth_window",
        "id_token_ttl",
        "sso_session_ttl",
        "dpop_max_age",
        "dpop_nonce_window",
        "par_ttl",
        "device_code_ttl",
        "device_code_interval",
        "user_code_window",
    }
    if name in durations:
        return _timespan(value, label)
    if name in {
        "cookie_mode",
        "cookie_secure",
        "demo",
        "trust_forwarded_for",
        "revocation_fail_open",
        "argon2_insecure_test_costs",
        "docs",
        "expose_worker_pid",
        "dpop_require_nonce",
        "require_par",
    }:
        return _bool(value, label)
    if name in {
        "argon2_time_cost",
        "argon2_memory_cost",
        "argon2_parallelism",
        "login_account_limit",
        "login_ip_limit",
        "login_pair_limit",
        "max_body_bytes",
        "token_cache_size",
        "jwks_max_age",
        "database_pool_size",
        "redis_max_connections",
        "max_header_bytes",
        "keep_alive_timeout",
        "client_auth_limit",
        "user_code_limit",
        "workers",
    }:
        return _int(value, label, 1)
    if name in {"database_max_overflow", "login_shed_held"}:
        return _int(value, label, 0)
    if name in {"argon2_workers", "argon2_queue"}:  # "" -> the default (core count based)
        return None if value == "" else _int(value, label, 1 if name == "argon2_workers" else 0)
    if name == "port":
        return _int(value, label, 0)
    if name == "data_dir":
        return Path(str(value)).expanduser()
    if name == "introspection_clients":
        return _clients(value, label)
    if name == "trusted_proxies":
        return _proxies(value, label)
    if name == "cookie_samesite":
        return str(value).strip().lower()
    if name == "signing_alg":
        return str(value).strip()
    nullable = {
        "database_url", "redis_url", "issuer", "metrics_token", "csrf_secret", "brand_logo_url"
    }
    return None if value == "" and name in nullable else str(value)
