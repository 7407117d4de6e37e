"""Token-endpoint rows of ``make bench-service`` (issue 11): client_credentials, the
authorization-code exchange (codes made beforehand through :func:`issue_code`, the Python API
behind ``/oauth/authorize``) and introspection of an RFC 9068 access token, each driven by wrk.

Targets on one worker: client_credentials >= 1,000 req/s, code exchange >= 500 req/s,
introspection >= 3,000 req/s.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from pathlib import Path
from types import SimpleNamespace

REDIRECT = "https://bench.example/cb"
INTROSPECTION_CLIENT = ("bench-rs", "bench-rs-secret-0123456789")
TARGETS = {"client_credentials": 1000.0, "code exchange": 500.0, "introspection": 3000.0}

_STATIC_POST = """
wrk.method = "POST"
wrk.body = %s
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = %s
"""

_CODES = """
local codes = {%s}
local verifier = %s
request = function()
  local c = table.remove(codes) or "exhausted"
  return wrk.format("POST", "/oauth/token", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = %s},
    "grant_type=authorization_code&redirect_uri=" .. %s .. "&code_verifier=" .. verifier ..
    "&code=" .. c)
end
"""


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def _lua(text: str) -> str:
    return json.dumps(text)  # a JSON string is a valid Lua string literal for these values


def register(data_dir: str) -> dict[str, str]:
    """Register a client_credentials client and a code-flow client in the service's database."""
    from jotkit.server.oauth.clients import new_client
    from jotkit.server.store.sql import SqlStore

    async def run() -> dict[str, str]:
        store = SqlStore(f"sqlite+aiosqlite:///{Path(data_dir) / 'jotkit.db'}")
        try:
            await store.start()
            now = time.time()
            cc, cc_secret = new_client("bench-cc", now=now, grant_types=("client_credentials",),
                                       scopes=("bench:read",))
            web, web_secret = new_client("bench-web", now=now, redirect_uris=(REDIRECT,),
                                         first_party=True)
            await store.clients.create(cc)
            await store.clients.create(web)
            user = await store.users.get_by_email("bench@example.com")
            assert user is not None
            assert cc_secret is not None
            assert web_secret is not None
            return {"cc_id": cc.client_id, "cc_secret": cc_secret, "web_id": web.client_id,
                    "web_secret": web_secret, "user_id": user.id}
        finally:
            await store.close()

    return asyncio.run(run())


def make_codes(data_dir: str, reg: dict[str, str], count: int) -> tuple[list[str], str]:
    """``count`` fresh codes (60 s lifetime) for the code-flow client, one PKCE verifier."""
    from jotkit.server.clock import SystemClock
    from jotkit.server.oauth.codes import AuthorizationRequest, issue_code, pkce_s256
    from jotkit.server.store.sql import SqlStore

    verifier = secrets.token_urlsafe(48)

    async def run() -> list[str]:
        store = SqlStore(f"sqlite+aiosqlite:///{Path(data_dir) / 'jotkit.db'}")
        try:
            service = SimpleNamespace(clock=SystemClock(), store=store)
            request = AuthorizationRequest(
                client_id=reg["web_id"], user_id=reg["user_id"], redirect_uri=REDIRECT,
                code_challenge=pkce_s256(verifier), scope=("openid", "offline_access"),
                nonce=None, auth_time=time.time(), sid="bench-sso", resource=())
            return [await issue_code(service, request)  # type: ignore[arg-type]
                    for _ in range(count)]
        finally:
            await store.close()

    return asyncio.run(run()), verifier


def scripts(tmp: str, reg: dict[str, str], codes: list[str], verifier: str,
            access_token: str) -> dict[str, str]:
    """wrk Lua scripts per row name."""
    out = {}
    cc = Path(tmp) / "cc.lua"
    cc.write_text(_STATIC_POST % (_lua("grant_type=client_credentials"),
                                  _lua(_basic(reg["cc_id"], reg["cc_secret"]))))
    out["client_credentials"] = str(cc)
    code = Path(tmp) / "code.lua"
    code.write_text(_CODES % (",".join(_lua(c) for c in codes), _lua(verifier),
                              _lua(_basic(reg["web_id"], reg["web_secret"])),
                              _lua(REDIRECT)))
    out["code exchange"] = str(code)
    intro = Path(tmp) / "introspect.lua"
    intro.write_text(_STATIC_POST % (_lua("token=" + access_token),
                                     _lua(_basic(*INTROSPECTION_CLIENT))))
    out["introspection"] = str(intro)
    return out


def paths() -> dict[str, str]:
    """The URL path each row loads."""
    return {"client_credentials": "/oauth/token", "code exchange": "/oauth/token",
            "introspection": "/oauth/introspect"}
