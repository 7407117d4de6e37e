"""Each extra, installed alone in a clean virtualenv, works (``make check-extras``).

The wheel is built once from this checkout; every extra gets its own virtualenv (no system
site-packages) where pip installs ``jotkit-<version>.whl[<extra>]`` with its real
dependencies (pip's cache makes it quick), then the extra's entry point runs:

* core only: the library works, and ``jotkit`` says in one line to install ``jotkit[cli]``;
* ``server,cli``: ``jotkit serve --demo`` answers ``/healthz`` and a login (no redis, no
  asyncpg installed), a Redis or PostgreSQL URL names the missing extra, Ctrl-C exits cleanly;
* ``cli``: token commands work, ``jotkit serve`` says to install ``jotkit[server]``;
* ``jwks``, ``fastapi``, ``starlette``, ``flask``, ``django``: a token verified through the
  extra (``django``: DRF's ``JotkitAuthentication`` with settings naming it);
* ``redis``, ``postgres``: the driver imports beside the core;
* ``forward-auth``: ``jotkit forward-auth`` verifies a token through a JWKS server over HTTP
  (without fastapi, sqlalchemy or starlette installed); a core-only install names the extra.

The virtualenvs are created two at a time in the background as soon as the module starts.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ("", "server,cli", "cli", "jwks", "fastapi", "starlette", "flask", "redis", "postgres",
          "forward-auth", "django")

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("extras-install")]


def _env(**extra: str) -> dict[str, str]:
    """A clean environment: no JOTKIT_* settings, no other virtualenv or PYTHONPATH."""
    drop = ("JOTKIT_", "PYTHON", "VIRTUAL_ENV")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def _run(args: list[str], timeout: float = 300, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload, no-any-return]


def _build_wheel(out: Path) -> Path:
    result = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out),
                   str(ROOT)], env=_env())
    assert result.returncode == 0, result.stderr
    (wheel,) = out.glob("jotkit-*.whl")
    return wheel


def _make_venv(where: Path, wheel: Path, extra: str) -> Path:
    """A virtualenv without system site-packages holding ``wheel[extra]``; returns its bin/."""
    created = _run([sys.executable, "-m", "venv", "--without-pip", str(where)], env=_env())
    assert created.returncode == 0, created.stderr
    python = where / "bin" / "python"
    spec = f"{wheel}[{extra}]" if extra else str(wheel)
    # This interpreter's pip installs into the new environment (pip --python): the same
    # resolution as the environment's own pip, without bootstrapping pip in every one.
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                      "--disable-pip-version-check", spec], env=_env())
    assert installed.returncode == 0, f"pip install {spec}:\n{installed.stderr[-3000:]}"
    return where / "bin"


class Venvs:
    """Virtualenvs built in the background, two at a time; :meth:`bin` waits for one."""

    def __init__(self, base: Path) -> None:
        self.wheel = _build_wheel(base / "dist")
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="venv")
        self._futures: dict[str, Future[Path]] = {
            extra: self._pool.submit(_make_venv, base / (extra.replace(",", "+") or "core"),
                                     self.wheel, extra)
            for extra in EXTRAS
        }

    def bin(self, extra: str) -> Path:
        return self._futures[extra].result(timeout=600)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venvs]:
    pool = Venvs(tmp_path_factory.mktemp("extras"))
    try:
        yield pool
    finally:
        pool.close()


def _python(bin_dir: Path, *parts: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the script made of ``parts`` (each dedented) with the virtualenv's interpreter."""
    code = "\n".join(textwrap.dedent(part) for part in parts)
    return _run([str(bin_dir / "python"), "-c", code], cwd=cwd, env=_env(**env))


def _jotkit(bin_dir: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return _run([str(bin_dir / "jotkit"), *args], cwd=cwd, env=_env(**env))


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SIGN = """
import jotkit
key = jotkit.Key.generate("ES256", kid="k1")
token = jotkit.encode({"sub": "u1", "scope": "orders:read"}, key, expires_in="5m",
                      issuer="https://auth.test", audience="api", headers={"typ": "at+jwt"})
"""


def test_wheel_ships_the_mit_license(venvs: Venvs) -> None:
    with zipfile.ZipFile(venvs.wheel) as wheel:
        names = wheel.namelist()
        (license_name,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        text = wheel.read(license_name).decode()
        metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert text.startswith("MIT License")
    assert "Copyright (c) 2026 jotkit developers" in text
    assert "License-Expression: MIT" in metadata
    assert "License-File: LICENSE" in metadata


def test_core_only_works_and_the_command_names_the_cli_extra(venvs: Venvs, tmp_path) -> None:
    bin_dir = venvs.bin("")
    lib = _python(bin_dir, SIGN, """
        import sys
        claims = jotkit.decode(token, key.public(), algorithms=["ES256"],
                               issuer="https://auth.test", audience="api", typ="at+jwt")
        assert claims["sub"] == "u1"
        try:
            jotkit.JWKSClient
        except ImportError as exc:
            assert "jotkit[jwks]" in str(exc)
        else:
            raise AssertionError("httpx should not be installed")
        third_party = {m.partition(".")[0] for m in sys.modules} - set(sys.stdlib_module_names)
        print(sorted(third_party))
        """, cwd=tmp_path)
    assert lib.returncode == 0, lib.stderr
    assert "httpx" not in lib.stdout
    for args in ([], ["decode", "a.b.c"], ["serve", "--demo"]):
        result = _jotkit(bin_dir, *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert "pip install 'jotkit[cli]'" in _one_line(result)


def test_server_cli_extra_serves_the_demo_without_redis(venvs: Venvs, tmp_path) -> None:
    bin_dir = venvs.bin("server,cli")
    for driver in ("redis", "asyncpg"):  # the point: [server,cli] does not bring them
        assert _python(bin_dir, f"import {driver}", cwd=tmp_path).returncode != 0
    port = _free_port()
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    env = _env(JOTKIT_DATA_DIR=str(tmp_path / "data"), JOTKIT_ARGON2_TIME_COST="1",
               JOTKIT_ARGON2_MEMORY_COST="1024", JOTKIT_ARGON2_PARALLELISM="1",
               JOTKIT_ARGON2_INSECURE_TEST_COSTS="1")
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen([str(bin_dir / "jotkit"), "serve", "--demo", "--port", str(port)],
                                cwd=tmp_path, env=env, stdout=stdout, stderr=stderr)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, err.read_text()
            try:
                if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, err.read_text()
            time.sleep(0.1)
        match = re.search(r"demo password  : (\S+)", out.read_text())
        assert match, out.read_text()
        login = httpx.post(base + "/auth/login",
                           json={"email": "demo@example.com", "password": match.group(1)})
        assert login.status_code == 200, login.text
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert proc.wait(timeout=30) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in err.read_text()
    pg = {"JOTKIT_DATABASE_URL": "postgresql://u@127.0.0.1:1/db",
          "JOTKIT_ISSUER": "https://auth.example.com", "JOTKIT_DATA_DIR": str(tmp_path / "pg")}
    result = _jotkit(bin_dir, "serve", cwd=tmp_path, **pg)
    assert result.returncode == 2
    assert "pip install 'jotkit[postgres]'" in _one_line(result)
    result = _jotkit(bin_dir, "serve", cwd=tmp_path, JOTKIT_REDIS_URL="redis://127.0.0.1:1/0",
                     JOTKIT_DATA_DIR=str(tmp_path / "r"))
    assert result.returncode == 2
    assert "pip install 'jotkit[redis]'" in _one_line(result)


def test_cli_extra_runs_token_commands_and_names_the_server_extra(venvs: Venvs, tmp_path) -> None:
    bin_dir = venvs.bin("cli")
    keygen = _jotkit(bin_dir, "keygen", "ES256", "--out", "mykey", cwd=tmp_path)
    assert keygen.returncode == 0, keygen.stderr
    assert (tmp_path / "mykey.private.pem").exists()
    made = _python(bin_dir, SIGN, "print(token)", cwd=tmp_path)
    decoded = _jotkit(bin_dir, "decode", made.stdout.strip(), cwd=tmp_path)
    assert decoded.returncode == 0, decoded.stderr
    assert "u1" in decoded.stdout
    for command in (["serve", "--demo"], ["users", "list"], ["keys", "list"]):
        result = _jotkit(bin_dir, *command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stderr)
        assert f"`jotkit {command[0]}` needs the [server] extra" in _one_line(result)


def test_jwks_extra_fetches_a_key_set(venvs: Venvs, tmp_path) -> None:
    result = _python(venvs.bin("jwks"), SIGN, """
        import http.server, json, threading
        body = json.dumps(jotkit.KeySet([key]).to_jwks()).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
        client = jotkit.JWKSClient(url)  # loopback http is allowed
        claims = jotkit.decode(token, client, algorithms=["ES256"], issuer="https://auth.test",
                               audience="api", typ="at+jwt")
        assert claims["sub"] == "u1"
        server.shutdown()
        print("ok")
        """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


FRAMEWORK_APPS = {
    "fastapi": """
        from typing import Annotated
        from fastapi import Depends, FastAPI
        from fastapi.testclient import TestClient
        from jotkit.integrations import TokenVerifier
        from jotkit.integrations.fastapi import JotkitAuth, require_token

        app = FastAPI()
        JotkitAuth(app, TokenVerifier(key.public(), issuer="https://auth.test", audience="api"))

        @app.get("/orders")
        def orders(claims: Annotated[dict, Depends(require_token(scopes=["orders:read"]))]):
            return {"sub": claims["sub"]}

        client = TestClient(app)
        get = lambda headers: client.get("/orders", headers=headers)
        """,
    "starlette": """
        from starlette.applications import Starlette
        from starlette.middleware import Middleware
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        from starlette.testclient import TestClient
        from jotkit.integrations import TokenVerifier
        from jotkit.integrations.starlette import JotkitAuthMiddleware, requires_token

        @requires_token(scopes=["orders:read"])
        async def orders(request):
            return JSONResponse({"sub": request.user.claims["sub"]})

        verifier = TokenVerifier(key.public(), issuer="https://auth.test", audience="api")
        app = Starlette(routes=[Route("/orders", orders)],
                        middleware=[Middleware(JotkitAuthMiddleware, verifier=verifier)])
        client = TestClient(app)
        get = lambda headers: client.get("/orders", headers=headers)
        """,
    "flask": """
        from flask import Flask, jsonify
        from jotkit.integrations import TokenVerifier
        from jotkit.integrations.flask import JotkitAuth, get_current_claims, require_token

        app = Flask("orders")
        JotkitAuth(app, TokenVerifier(key.public(), issuer="https://auth.test", audience="api"))

        @app.get("/orders")
        @require_token(scopes=["orders:read"])
        def orders():
            return jsonify({"sub": get_current_claims()["sub"]})

        client = app.test_client()
        get = lambda headers: client.get("/orders", headers=headers)
        """,
    "django": """
        import django
        from django.conf import settings
        from jotkit.integrations import TokenVerifier
        settings.configure(
            ALLOWED_HOSTS=["testserver"], ROOT_URLCONF="__main__", DATABASES={},
            INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth",
                            "rest_framework"],
            JOTKIT={"VERIFIER": TokenVerifier(key.public(), issuer="https://auth.test",
                                              audience="api")},
            REST_FRAMEWORK={"DEFAULT_AUTHENTICATION_CLASSES": [
                "jotkit.integrations.django.drf.JotkitAuthentication"]},
        )
        django.setup()
        from django.test import Client
        from django.urls import path
        from rest_framework.response import Response
        from rest_framework.views import APIView
        from jotkit.integrations.django.drf import HasScopes

        class Orders(APIView):
            permission_classes = [HasScopes("orders:read")]

            def get(self, request):
                return Response({"sub": request.auth["sub"]})

        urlpatterns = [path("orders", Orders.as_view())]
        client = Client()
        get = lambda headers: client.get("/orders", headers=headers)
        """,
}


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_APPS))
def test_framework_extra_protects_a_route(venvs: Venvs, tmp_path, framework: str) -> None:
    check = """
        ok = get({"Authorization": "Bearer " + token})
        assert ok.status_code == 200, ok.status_code
        denied = get({})
        assert denied.status_code == 401, denied.status_code
        assert denied.headers["WWW-Authenticate"].startswith("Bearer")
        print("ok")
        """
    result = _python(venvs.bin(framework), SIGN, FRAMEWORK_APPS[framework], check, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "ok"


@pytest.mark.parametrize(("extra", "driver"), [("redis", "redis.asyncio"), ("postgres", "asyncpg")])
def test_driver_extra_installs_its_driver_beside_the_core(venvs: Venvs, tmp_path, extra,
                                                        driver) -> None:
    bin_dir = venvs.bin(extra)
    result = _python(bin_dir, SIGN, f"""
        import {driver}
        assert jotkit.decode(token, key.public(), algorithms=["ES256"], audience="api",
                             typ="at+jwt")["sub"] == "u1"
        print("ok")
        """, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    command = _jotkit(bin_dir, cwd=tmp_path)  # the console script exists with every extra
    assert command.returncode == 2
    assert "pip install 'jotkit[cli]'" in _one_line(command)


def test_forward_auth_extra_serves_alone(venvs: Venvs, tmp_path) -> None:
    bin_dir = venvs.bin("forward-auth")
    for module in ("fastapi", "starlette", "sqlalchemy"):  # the point: none of the service
        assert _python(bin_dir, f"import {module}", cwd=tmp_path).returncode != 0
    made = _python(bin_dir, SIGN, """
        import json
        open("jwks.json", "w").write(json.dumps(jotkit.KeySet([key.public()]).to_jwks()))
        print(token)
        """, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    jwks = subprocess.Popen([str(bin_dir / "python"), "-m", "http.server", "--bind", "127.0.0.1",
                             str(jwks_port := _free_port())], cwd=tmp_path, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port = _free_port()
    err = tmp_path / "stderr.txt"
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [str(bin_dir / "jotkit"), "forward-auth", "--jwks-url",
             f"http://127.0.0.1:{jwks_port}/jwks.json", "--issuer", "https://auth.test",
             "--audience", "api", "--require-scope", "orders:read", "--port", str(port)],
            cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        base = f"http://127.0.0.1:{port}/_auth"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, err.read_text()
            try:
                denied = httpx.get(base, timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, err.read_text()
                time.sleep(0.1)
        assert denied.status_code == 401
        ok = httpx.get(base, headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200, ok.text
        assert ok.headers["X-Auth-Subject"] == "u1"
        assert ok.headers["X-Auth-Scope"] == "orders:read"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) in (0, 130)
    finally:
        for p in (proc, jwks):
            if p.poll() is None:
                p.kill()
                p.wait()
    assert "Traceback" not in err.read_text()
    core = _jotkit(venvs.bin(""), "forward-auth", "--issuer", "x", cwd=tmp_path)
    assert core.returncode == 2
    assert "pip install 'jotkit[cli]'" in _one_line(core)
    cli_only = _jotkit(venvs.bin("cli"), "forward-auth", "--jwks-url", "https://a/j",
                       "--issuer", "https://a", "--audience", "x", cwd=tmp_path)
    assert cli_only.returncode == 2
    assert "pip install 'jotkit[forward-auth]'" in _one_line(cli_only)
