"""Helpers of the OAuth provider tests: register clients and make codes through the Python
API (the authorization endpoint is tested on its own), run PKCE."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from jotkit.server.oauth.clients import ClientRecord, new_client
from jotkit.server.oauth.codes import AuthorizationRequest, issue_code, pkce_s256

from .harness import Server

REDIRECT = "https://app.example/callback"


@dataclass
class Registered:
    record: ClientRecord
    secret: str | None

    @property
    def id(self) -> str:
        return self.record.client_id

    @property
    def basic(self) -> httpx.BasicAuth:
        assert self.secret is not None
        return httpx.BasicAuth(self.id, self.secret)


def register(server: Server, name: str = "app", **kwargs: Any) -> Registered:
    """Register a client (defaults: confidential, client_secret_basic, code + refresh)."""
    if "grant_types" not in kwargs or "authorization_code" in kwargs["grant_types"]:
        kwargs.setdefault("redirect_uris", (REDIRECT,))
    record, secret = new_client(name, now=server.clock.now(), **kwargs)
    server.run(server.service.store.clients.create(record))
    return Registered(record, secret)


def user_id(server: Server, email: str = "alice@example.com") -> str:
    user = server.run(server.service.store.users.get_by_email(email))
    assert user is not None
    return str(user.id)


def make_code(
    server: Server,
    client: Registered,
    *,
    scope: tuple[str, ...] = ("openid", "email", "profile", "offline_access"),
    verifier: str | None = None,
    nonce: str | None = "n-0S6_WzA2Mj",
    resource: tuple[str, ...] = (),
    redirect_uri: str = REDIRECT,
    email: str = "alice@example.com",
    challenge: str | None = None,
) -> tuple[str, str]:
    """``(code, verifier)`` from :func:`issue_code`, as ``/oauth/authorize`` would make it."""
    verifier = verifier or secrets.token_urlsafe(48)
    request = AuthorizationRequest(
        client_id=client.id,
        user_id=user_id(server, email),
        redirect_uri=redirect_uri,
        code_challenge=challenge or pkce_s256(verifier),
        scope=scope,
        nonce=nonce,
        auth_time=server.clock.now() - 5,
        sid="sso-" + secrets.token_urlsafe(8),
        resource=resource,
    )
    return server.run(issue_code(server.service, request)), verifier


def exchange(
    c: httpx.Client, client: Registered, code: str, verifier: str | None, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT}
    if verifier is not None:
        data["code_verifier"] = verifier
    data.update(extra)
    auth = client.basic if client.secret else None
    if client.secret is None:
        data.setdefault("client_id", client.id)
    return c.post("/oauth/token", data=data, auth=auth)
