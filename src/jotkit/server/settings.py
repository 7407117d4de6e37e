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
    """Parse ``"15m"``, ``"7d"``, ``"30s"``, ``"2h"``, ``"1w"`` or a number of seconds."""
    if isinstance(value, bool):
        raise SettingsError(f"{name}: expected a duration, got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        units = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
        try:
            if text and text[-1] in units:
                seconds = float(text[:-1]) * units[text[-1]]
            else:
                seconds = float(text)
        except ValueError:
            raise SettingsError(f"{name}: {value!r} is not a duration like '15m'") from None
    else:
        raise SettingsError(f"{name}: expected a duration, got {type(value).__name__}")
    if seconds < 0 or seconds != seconds:
        raise SettingsError(f"{name}: duration must be >= 0")
    return seconds


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
    login_account_limit: int = 5
    login_account_window: float = 300.0
    login_ip_limit: int = 30
    login_ip_window: float = 60.0
    max_body_bytes: int = 65536
    token_cache_size: int = 10000
    revocation_sync_interval: float = 2.0
    keyring_sync_interval: float = 10.0
    introspection_clients: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    trust_forwarded_for: bool = False
    log_level: str = "INFO"

    def __post_init__(self) -> None:
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

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

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
        "revocation_sync_interval",
        "keyring_sync_interval",
    }
    if name in durations:
        return _timespan(value, label)
    if name in {
        "cookie_mode",
        "cookie_secure",
        "demo",
        "trust_forwarded_for",
        "revocation_fail_open",
    }:
        return _bool(value, label)
    if name in {
        "argon2_time_cost",
        "argon2_memory_cost",
        "argon2_parallelism",
        "login_account_limit",
        "login_ip_limit",
        "max_body_bytes",
        "token_cache_size",
        "jwks_max_age",
    }:
        return _int(value, label, 1)
    if name == "port":
        return _int(value, label, 0)
    if name == "data_dir":
        return Path(str(value)).expanduser()
    if name == "introspection_clients":
        return _clients(value, label)
    if name == "cookie_samesite":
        return str(value).strip().lower()
    if name == "signing_alg":
        return str(value).strip()
    return None if value == "" and name in {"database_url", "redis_url", "issuer"} else str(value)
