"""End to end: `jotkit serve` + the three example APIs as real processes, plus Node.

The auth service issues tokens; the orders API (FastAPI), the reports API
(Flask) and the invoices API (Django + DRF) verify them on their own through the
published JWKS. The test logs
in, calls both APIs, rotates the signing key, calls again, logs out, and
checks what the APIs do with the logged-out token with and without
introspection (RFC 7662).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import jotkit
from jotkit.integrations import DEFAULT_COOKIE_NAME, BearerError, TokenVerifier
from jotkit.jwks_client import JWKSClient

from .polling import wait_until
from .test_node_interop import run_node

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("integrations-e2e")]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
EMAIL = "e2e@example.com"
PASSWORD = "e2e-Passw0rd-for-tests"
ADMIN_EMAIL = "e2e-admin@example.com"
CLIENTS = {
    "orders-api": "orders-introspection-secret",
    "reports-api": "reports-secret",
    "invoices-api": "invoices-secret",
}
ACCESS_TTL = 600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jotkit_cmd(*args: str) -> list[str]:
    exe = Path(sys.executable).parent / "jotkit"
    if exe.exists():
        return [str(exe), *args]
    return [sys.executable, "-c", "from jotkit.cli import main; main()", *args]


@dataclass
class Processes:
    tmp: Path
    procs: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = (self.tmp / f"{name}.log").open("wb")
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Stack:
    auth: str
    issuer: str
    data_dir: Path
    env: dict[str, str]
    apis: dict[str, str]
    processes: Processes


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e")
    data_dir = tmp / "auth-data"
    auth_port = free_port()
    issuer = f"http://127.0.0.1:{auth_port}"
    env = base_env() | {
        "JOTKIT_DATA_DIR": str(data_dir),
        "JOTKIT_ISSUER": issuer,
        "JOTKIT_ACCESS_TTL": str(ACCESS_TTL),
        "JOTKIT_KEY_PUBLISH_DELAY": "0",
        "JOTKIT_KEYRING_SYNC_INTERVAL": "0.2",
        "JOTKIT_REVOCATION_SYNC_INTERVAL": "0.2",
        "JOTKIT_INTROSPECTION_CLIENTS": ",".join(f"{k}:{v}" for k, v in CLIENTS.items()),
        "JOTKIT_ARGON2_TIME_COST": "1",
        "JOTKIT_ARGON2_MEMORY_COST": "8192",
        "JOTKIT_ARGON2_PARALLELISM": "1",
        "JOTKIT_ARGON2_INSECURE_TEST_COSTS": "1",
        "JOTKIT_LOG_LEVEL": "WARNING",
    }
    processes = Processes(tmp)
    try:
        apis: dict[str, str] = {}
        specs = {
            # name: (script, introspection client or None)
            "orders": ("orders_api.py", "orders-api"),
            "reports": ("flask_api.py", "reports-api"),
            "orders-stateless": ("orders_api.py", None),
            "reports-stateless": ("flask_api.py", None),
            "invoices": ("django_api.py", "invoices-api"),
            "invoices-stateless": ("django_api.py", None),
        }
        for name, (script, client) in specs.items():
            port = free_port()
            api_env = base_env() | {
                "JOTKIT_RS_ISSUER": issuer,
                "JOTKIT_RS_AUDIENCE": "jotkit",
                "JOTKIT_RS_PORT": str(port),
                "JOTKIT_RS_JWKS_COOLDOWN": "0",
            }
            if client:
                api_env |= {
                    "JOTKIT_RS_INTROSPECTION_URL": f"{issuer}/oauth/introspect",
                    "JOTKIT_RS_CLIENT_ID": client,
                    "JOTKIT_RS_CLIENT_SECRET": CLIENTS[client],
                    "JOTKIT_RS_INTROSPECTION_CACHE_TTL": "0",
                }
            processes.start(name, [sys.executable, str(EXAMPLES / script)], api_env)
            apis[name] = f"http://127.0.0.1:{port}"
        # the APIs start up (slow imports) while the users are created; they fetch
        # the JWKS lazily, on the first request
        for email, role in ((EMAIL, "user"), (ADMIN_EMAIL, "admin")):
            subprocess.run(
                jotkit_cmd("users", "add", email, "--role", "user", "--role", role),
                input=PASSWORD.encode(),
                env=env,
                check=True,
                capture_output=True,
                timeout=60,
                cwd=tmp,
            )
        processes.start("auth", jotkit_cmd("serve", "--port", str(auth_port)), env)
        wait_until(
            lambda: httpx.get(f"{issuer}/.well-known/jwks.json").status_code == 200,
            "the auth service",
        )
        for name, url in apis.items():
            wait_until(lambda url=url: httpx.get(f"{url}/health").status_code == 200, name)
        yield Stack(issuer, issuer, data_dir, env, apis, processes)
    except BaseException:
        for name, _ in processes.procs:
            print(f"----- {name} log -----\n{processes.log(name)}")
        raise
    finally:
        processes.stop()


def login(stack: Stack, email: str = EMAIL) -> str:
    resp = httpx.post(f"{stack.auth}/auth/login", json={"email": email, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


def call(url: str, token: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(url, headers=headers, timeout=10)


def kid_of(token: str) -> str:
    kid: str = jotkit.decode_unverified(token)[0]["kid"]
    return kid


def test_login_rotate_logout_across_services(stack: Stack):
    orders, reports = stack.apis["orders"], stack.apis["reports"]
    invoices = stack.apis["invoices"]
    token = login(stack)

    # the APIs accept the token, verified locally through the JWKS
    for url, service in (
        (f"{orders}/orders", "orders"),
        (f"{reports}/reports", "reports"),
        (f"{invoices}/invoices", "invoices"),
        (f"{invoices}/me", "invoices"),
    ):
        resp = call(url, token)
        assert resp.status_code == 200, resp.text
        assert resp.json()["service"] == service
    assert call(f"{reports}/reports", token).json()["email"] == EMAIL
    assert call(f"{invoices}/invoices", token).json()["email"] == EMAIL

    # RFC 6750 errors, the same JSON shape in FastAPI, Flask, Django and DRF
    for url in (f"{orders}/orders", f"{reports}/reports", f"{invoices}/invoices",
                f"{invoices}/me"):
        missing = call(url, None)
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        bad = call(url, token[:-6] + "AAAAAA")
        assert bad.status_code == 401
        assert bad.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
        assert bad.json() == {
            "error": "invalid_token",
            "reason": "bad_signature",
            "error_description": "The access token signature is invalid",
        }
    for url in (f"{orders}/admin/orders", f"{reports}/admin/reports",
                f"{invoices}/admin/invoices"):
        forbidden = call(url, token)
        assert forbidden.status_code == 403
        assert forbidden.json()["error"] == "insufficient_scope"
        assert call(url, login(stack, ADMIN_EMAIL)).status_code == 200

    # rotate the signing key: the old token stays valid, new tokens use the new key
    old_kid = kid_of(token)
    subprocess.run(
        jotkit_cmd("keys", "rotate", "--delay", "0"),
        env=stack.env,
        check=True,
        capture_output=True,
        timeout=60,
        cwd=stack.processes.tmp,
    )
    fresh: list[str] = []

    def new_key_signs() -> bool:
        fresh.append(login(stack))
        return kid_of(fresh[-1]) != old_kid

    wait_until(new_key_signs, "the auth service to sign with the rotated key")
    new_token = fresh[-1]
    jwks = httpx.get(f"{stack.auth}/.well-known/jwks.json").json()
    assert {old_kid, kid_of(new_token)} <= {k["kid"] for k in jwks["keys"]}
    for name, path in (
        ("orders", "/orders"),
        ("reports", "/reports"),
        ("orders-stateless", "/orders"),
        ("reports-stateless", "/reports"),
        ("invoices", "/invoices"),
        ("invoices-stateless", "/invoices"),
    ):
        assert call(stack.apis[name] + path, token).status_code == 200, name
        assert call(stack.apis[name] + path, new_token).status_code == 200, name

    # log out: APIs that introspect reject the token at once ...
    resp = httpx.post(f"{stack.auth}/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    for url in (f"{orders}/orders", f"{reports}/reports", f"{invoices}/invoices",
                f"{invoices}/me"):
        rejected = call(url, token)
        assert rejected.status_code == 401
        assert rejected.json()["reason"] == "revoked"
        assert call(url, new_token).status_code == 200  # other sessions are unaffected

    # ... stateless APIs keep accepting it until it expires
    for name, path in (
        ("orders-stateless", "/orders"),
        ("reports-stateless", "/reports"),
        ("invoices-stateless", "/invoices"),
    ):
        assert call(stack.apis[name] + path, token).status_code == 200
    claims = jotkit.decode_unverified(token)[1]
    assert claims["exp"] - claims["iat"] == ACCESS_TTL
    # the same verification the stateless APIs do, with the clock moved to exp: rejected
    for offset, accepted in ((-1, True), (1, False)):
        verifier = TokenVerifier(
            JWKSClient(f"{stack.issuer}/.well-known/jwks.json"),
            issuer=stack.issuer,
            audience="jotkit",
            clock=lambda o=offset: claims["exp"] + o,
        )
        if accepted:
            assert verifier.verify(token)["sub"] == claims["sub"]
        else:
            with pytest.raises(BearerError) as info:
                verifier.verify(token)
            assert info.value.reason == "expired"


@pytest.mark.node
def test_node_verifies_tokens_from_jotkit_serve(stack: Stack, node: str):
    token = login(stack)
    admin = login(stack, ADMIN_EMAIL)
    out = run_node(
        node,
        "verify_jwks.mjs",
        {
            "jwks_url": f"{stack.issuer}/.well-known/jwks.json",
            "tokens": [token, admin],
            "issuer": stack.issuer,
            "audience": "jotkit",
            "algorithms": ["ES256"],
            "typ": "at+jwt",
        },
    )
    for result, email in zip(out["results"], (EMAIL, ADMIN_EMAIL), strict=True):
        for lib in ("jose", "jsonwebtoken"):
            assert result[lib]["ok"], (lib, result[lib])
            assert result[lib]["payload"]["email"] == email
            assert result[lib]["payload"]["iss"] == stack.issuer
    wrong_aud: dict[str, Any] = run_node(
        node,
        "verify_jwks.mjs",
        {
            "jwks_url": f"{stack.issuer}/.well-known/jwks.json",
            "tokens": [token],
            "issuer": stack.issuer,
            "audience": "someone-else",
            "algorithms": ["ES256"],
            "typ": "at+jwt",
        },
    )
    assert not wrong_aud["results"][0]["jose"]["ok"]
    assert not wrong_aud["results"][0]["jsonwebtoken"]["ok"]


@pytest.fixture(scope="module")
def cookie_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A second auth service in cookie mode; the orders and invoices APIs read its cookie."""
    tmp = tmp_path_factory.mktemp("e2e-cookie")
    auth_port, api_port, django_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{auth_port}"
    env = base_env() | {
        "JOTKIT_DATA_DIR": str(tmp / "auth-data"),
        "JOTKIT_ISSUER": issuer,
        "JOTKIT_COOKIE_MODE": "1",
        "JOTKIT_ARGON2_TIME_COST": "1",
        "JOTKIT_ARGON2_MEMORY_COST": "8192",
        "JOTKIT_ARGON2_PARALLELISM": "1",
        "JOTKIT_ARGON2_INSECURE_TEST_COSTS": "1",
        "JOTKIT_LOG_LEVEL": "WARNING",
    }
    processes = Processes(tmp)
    try:
        api_env = base_env() | {
            "JOTKIT_RS_ISSUER": issuer,
            "JOTKIT_RS_PORT": str(api_port),
            "JOTKIT_RS_COOKIE_NAME": DEFAULT_COOKIE_NAME,
        }
        processes.start("orders-cookie", [sys.executable, str(EXAMPLES / "orders_api.py")], api_env)
        processes.start(
            "invoices-cookie",
            [sys.executable, str(EXAMPLES / "django_api.py")],
            api_env | {"JOTKIT_RS_PORT": str(django_port)},
        )
        subprocess.run(
            jotkit_cmd("users", "add", EMAIL, "--role", "user"),
            input=PASSWORD.encode(),
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
            cwd=tmp,
        )
        processes.start("auth-cookie", jotkit_cmd("serve", "--port", str(auth_port)), env)
        api = f"http://127.0.0.1:{api_port}"
        wait_until(lambda: httpx.get(f"{issuer}/.well-known/jwks.json").status_code == 200, "auth")
        invoices = f"http://127.0.0.1:{django_port}"
        wait_until(lambda: httpx.get(f"{api}/health").status_code == 200, "orders-cookie")
        wait_until(lambda: httpx.get(f"{invoices}/health").status_code == 200, "invoices-cookie")
        apis = {"orders": api, "invoices": invoices}
        yield Stack(issuer, issuer, tmp / "auth-data", env, apis, processes)
    except BaseException:
        for name, _ in processes.procs:
            print(f"----- {name} log -----\n{processes.log(name)}")
        raise
    finally:
        processes.stop()


def test_api_reads_the_service_cookie(cookie_stack: Stack):
    """In cookie mode the access token travels in the service's HttpOnly cookie."""
    resp = httpx.post(
        f"{cookie_stack.auth}/auth/login", json={"email": EMAIL, "password": PASSWORD}
    )
    assert resp.status_code == 200, resp.text
    assert "access_token" not in resp.json()
    cookie = next(
        c for c in resp.headers.get_list("set-cookie") if c.startswith(f"{DEFAULT_COOKIE_NAME}=")
    )
    assert "httponly" in cookie.lower()
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    for url in (
        f"{cookie_stack.apis['orders']}/orders",
        f"{cookie_stack.apis['invoices']}/invoices",
        f"{cookie_stack.apis['invoices']}/me",
    ):
        ok = httpx.get(url, headers={"Cookie": f"{DEFAULT_COOKIE_NAME}={token}"})
        assert ok.status_code == 200, (url, ok.text)
        assert ok.json()["sub"] == jotkit.decode_unverified(token)[1]["sub"]
        assert httpx.get(url).status_code == 401
        wrong = httpx.get(url, headers={"Cookie": f"{DEFAULT_COOKIE_NAME}={token[:-4]}AAAA"})
        assert wrong.status_code == 401


def _raw_get(url: str, headers: list[tuple[str, bytes]]) -> tuple[int, bytes]:
    """A GET with raw header bytes (httpx refuses non-ASCII header values)."""
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.putrequest("GET", parts.path + (f"?{parts.query}" if parts.query else ""))
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_live_apis_refuse_attacks_with_a_4xx(stack: Stack):
    """FastAPI, Flask and Django behind real servers: no 5xx, no token from the URL."""
    token = login(stack)
    for url in (
        f"{stack.apis['orders']}/orders",
        f"{stack.apis['reports']}/reports",
        f"{stack.apis['invoices']}/invoices",
        f"{stack.apis['invoices']}/me",
    ):
        # RFC 6750 §2.3: a token in the query string is never read
        leaked = call(f"{url}?access_token={token}", None)
        assert leaked.status_code == 401, url
        assert leaked.json()["reason"] == "missing_token"
        for value in (
            b"Bearer " + b"a" * 8 * 1024,
            b"Bearer " + b"A" * 64 * 1024,  # 64 KiB: the server's line limit or the verifier's
            "Bearer é.é.é".encode(),
            "Bearer \xe9t\xe9".encode("latin-1"),
            b"Bearer " + token.encode() + b"\xff",
        ):
            status, _ = _raw_get(url, [("Authorization", value)])
            assert 400 <= status < 500, (url, value[:20], status)
