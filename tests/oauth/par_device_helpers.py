"""Register confidential / device clients straight in the store for the PAR and device tests."""

from __future__ import annotations

from typing import Any

import httpx

from jotkit.server.oauth.clients import DEVICE_CODE_GRANT, ClientRecord, new_client
from oauth.sso_helpers import hidden
from server.harness import PASSWORD, Server

CB = "https://app.example/cb"


def add_confidential(server: Server, *, require_par: bool = False) -> tuple[ClientRecord, str]:
    """A confidential code-flow client (client_secret_basic) and its secret."""
    record, secret = new_client(
        "PAR app", now=server.clock.now(), redirect_uris=(CB,), require_par=require_par,
    )
    assert secret is not None
    server.run(server.service.store.clients.create(record))
    return record, secret


def add_device_client(server: Server, *, public: bool = True) -> tuple[ClientRecord, str | None]:
    """A client of the device grant (public by default, as CLIs are) with refresh tokens."""
    record, secret = new_client(
        "TV app", now=server.clock.now(), public=public,
        grant_types=(DEVICE_CODE_GRANT, "refresh_token"),
    )
    server.run(server.service.store.clients.create(record))
    return record, secret


def start_device(c: httpx.Client, client_id: str, **extra: str) -> dict[str, Any]:
    """POST /oauth/device_authorization for a public client."""
    r = c.post("/oauth/device_authorization", data={"client_id": client_id, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def poll(c: httpx.Client, client_id: str, device_code: str) -> httpx.Response:
    """One poll of the token endpoint (RFC 8628 §3.4)."""
    return c.post("/oauth/token", data={
        "grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": client_id,
    })


def enter_code(b: httpx.Client, user_code: str) -> httpx.Response:
    """Open the verification URI and submit the user code (the login or confirm page)."""
    page = b.get("/oauth/device", params={"user_code": user_code})
    assert page.status_code == 200, page.text
    return b.post("/oauth/device", data={
        "csrf_token": hidden(page.text, "csrf_token"), "user_code": user_code,
    })


def approve(b: httpx.Client, user_code: str, email: str, decision: str = "allow",
            password: str = PASSWORD) -> httpx.Response:
    """The whole page flow of a user with no SSO session: code, login, allow / deny."""
    page = enter_code(b, user_code)
    assert page.status_code == 200 and "Sign in" in page.text, page.text
    confirm = b.post("/oauth/device/login", data={
        "csrf_token": hidden(page.text, "csrf_token"), "user_code": hidden(page.text, "user_code"),
        "email": email, "password": password,
    })
    assert confirm.status_code == 200 and "Allow this device?" in confirm.text, confirm.text
    assert user_code in confirm.text
    return b.post("/oauth/device/confirm", data={
        "csrf_token": hidden(confirm.text, "csrf_token"), "user_code": user_code,
        "decision": decision,
    })
