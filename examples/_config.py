"""Shared settings of the example resource servers, read from JOTKIT_RS_* variables."""

from __future__ import annotations

import os
from dataclasses import dataclass

from jotkit.integrations import Introspection, TokenVerifier
from jotkit.jwks_client import JWKSClient


@dataclass(frozen=True)
class ResourceServerConfig:
    """Where the auth service is and what the API expects of its tokens."""

    issuer: str = "http://127.0.0.1:8000"
    audience: str = "jotkit"
    jwks_url: str | None = None  # default: {issuer}/.well-known/jwks.json
    introspection_url: str | None = None  # set to check logout/revocation (RFC 7662)
    client_id: str | None = None
    client_secret: str | None = None
    introspection_cache_ttl: float = 5.0
    jwks_cooldown: float = 30.0
    cookie_name: str | None = None
    host: str = "127.0.0.1"
    port: int = 8001
    revocations_url: str | None = None  # e.g. {issuer}/oauth/revocations: pushed revocations
    revocations_fail_open: bool = True

    @classmethod
    def from_env(cls, default_port: int) -> ResourceServerConfig:
        """Read ``JOTKIT_RS_*`` variables (see examples/README.md)."""
        env = os.environ

        def opt(name: str) -> str | None:
            value = env.get(f"JOTKIT_RS_{name}", "").strip()
            return value or None

        return cls(
            issuer=opt("ISSUER") or cls.issuer,
            audience=opt("AUDIENCE") or cls.audience,
            jwks_url=opt("JWKS_URL"),
            introspection_url=opt("INTROSPECTION_URL"),
            client_id=opt("CLIENT_ID"),
            client_secret=opt("CLIENT_SECRET"),
            introspection_cache_ttl=float(opt("INTROSPECTION_CACHE_TTL") or 5.0),
            jwks_cooldown=float(opt("JWKS_COOLDOWN") or 30.0),
            cookie_name=opt("COOKIE_NAME"),
            host=opt("HOST") or cls.host,
            port=int(opt("PORT") or default_port),
            revocations_url=opt("REVOCATIONS_URL"),
            revocations_fail_open=(opt("REVOCATIONS_FAIL_OPEN") or "1") not in ("0", "false"),
        )

    def verifier(self) -> TokenVerifier:
        """A token verifier fed by the auth service's published JWKS."""
        jwks = JWKSClient(
            self.jwks_url or f"{self.issuer}/.well-known/jwks.json",
            min_refetch_interval=self.jwks_cooldown,
        )
        introspection = None
        if self.introspection_url:
            if not (self.client_id and self.client_secret):
                raise SystemExit(
                    "JOTKIT_RS_CLIENT_ID and JOTKIT_RS_CLIENT_SECRET are required "
                    "with JOTKIT_RS_INTROSPECTION_URL"
                )
            introspection = Introspection(
                self.introspection_url,
                self.client_id,
                self.client_secret,
                cache_ttl=self.introspection_cache_ttl,
            )
        feed: dict[str, object] = {}
        if self.revocations_url:
            if not (self.client_id and self.client_secret):
                raise SystemExit(
                    "JOTKIT_RS_CLIENT_ID and JOTKIT_RS_CLIENT_SECRET are required "
                    "with JOTKIT_RS_REVOCATIONS_URL"
                )
            feed = {
                "revocations": self.revocations_url,
                "revocations_auth": (self.client_id, self.client_secret),
                "revocations_fail_open": self.revocations_fail_open,
            }
        return TokenVerifier(
            jwks,
            **feed,  # type: ignore[arg-type]
            issuer=self.issuer,
            audience=self.audience,
            typ="at+jwt",
            introspection=introspection,
            cookie_name=self.cookie_name,
            # with introspection on, keep verified tokens only as long as an answer is cached
            cache_ttl=self.introspection_cache_ttl if introspection else 60.0,
        )
