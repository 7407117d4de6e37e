"""Real gateways in front of ``jotkit forward-auth``: nginx ``auth_request`` and Caddy
``forward_auth``, configured with the snippets of docs/gateways.md as written (only the
addresses are replaced), each in front of an upstream that echoes the headers it receives.

One ``jotkit forward-auth`` subprocess (the real command) serves both; the JWK set comes from
a local HTTP server (conftest.py).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import jotkit
import jotkit.dpop

from .conftest import AUDIENCE, ISSUER

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "gateways.md"
DOC_AUTH, DOC_UPSTREAM, DOC_PORT = "127.0.0.1:9091", "127.0.0.1:8080", "8000"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("gateways")]


def doc_block(language: str) -> str:
    """The one fenced ``language`` block of docs/gateways.md, as written."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```$", DOC.read_text(), re.M | re.S)
    assert len(blocks) == 1, f"docs/gateways.md should hold one ```{language} block"
    return str(blocks[0])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.05)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class ForwardAuth:
    """The ``jotkit forward-auth`` subprocess: its ports and its stderr (JSON log lines)."""

    def __init__(self, port: int, metrics_port: int, log: Path) -> None:
        self.port, self.metrics_port, self.log = port, metrics_port, log
        self.address = f"127.0.0.1:{port}"


@pytest.fixture(scope="module")
def forward_auth(jwks_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForwardAuth]:
    where = tmp_path_factory.mktemp("forward-auth")
    config = where / "forward-auth.toml"
    config.write_text(f'jwks_url = "{jwks_url}"\nissuer = "{ISSUER}"\n'
                      '[[paths]]\nprefix = "/admin/"\nroles = ["admin"]\n')
    port, metrics_port = _free_port(), _free_port()
    log = where / "stderr.txt"
    jotkit_bin = Path(sys.executable).parent / "jotkit"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOTKIT_")}
    with log.open("wb") as stderr:
        proc = subprocess.Popen(
            [str(jotkit_bin), "forward-auth", "--config", str(config), "--audience", AUDIENCE,
             "--claim-header", "email=X-Auth-Email", "--port", str(port),
             "--metrics-port", str(metrics_port)],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        _wait_port(port, proc, log)
        yield ForwardAuth(port, metrics_port, log)
    finally:
        _stop(proc)
    assert "Traceback" not in log.read_text(errors="replace")


def _start(args: list[str], port: int, log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=out, env={**os.environ, **env})
    _wait_port(port, proc, log)
    return proc


@pytest.fixture(scope="module")
def nginx(nginx_bin: str, forward_auth: ForwardAuth, upstream: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    snippet = (doc_block("nginx").replace(DOC_AUTH, forward_auth.address)
               .replace(DOC_UPSTREAM, upstream)
               .replace(f"listen {DOC_PORT};", f"listen 127.0.0.1:{port};"))
    temp = "".join(f"{kind}_temp_path {where}/{kind};\n"
                   for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;\n" if os.geteuid() == 0 else ""
    (where / "nginx.conf").write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {where}/nginx.pid;\n"
        f"error_log {where}/error.log warn;\nevents {{ worker_connections 256; }}\n"
        f"http {{\naccess_log off;\n{temp}{snippet}\n}}\n")
    log = where / "output.txt"
    proc = _start([nginx_bin, "-e", str(where / "error.log"), "-p", str(where), "-c",
                   str(where / "nginx.conf")], port, log)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def caddy(caddy_bin: str, forward_auth: ForwardAuth, upstream: str,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("caddy")
    port = _free_port()
    snippet = (doc_block("caddyfile").replace(DOC_AUTH, forward_auth.address)
               .replace(DOC_UPSTREAM, upstream)
               .replace(f":{DOC_PORT} {{", f"http://127.0.0.1:{port} {{"))
    # test-only global options: no admin endpoint (parallel runs), no state in $HOME
    (where / "Caddyfile").write_text("{\n\tadmin off\n}\n\n" + snippet)
    log = where / "output.txt"
    proc = _start([caddy_bin, "run", "--config", str(where / "Caddyfile"), "--adapter",
                   "caddyfile"], port, log, HOME=str(where), XDG_DATA_HOME=str(where / "data"),
                  XDG_CONFIG_HOME=str(where / "config"))
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture(params=["nginx", "caddy"])
def gateway(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def _upstream_headers(response: httpx.Response) -> dict[str, list[str]]:
    assert response.status_code == 200, (response.status_code, response.text)
    seen: dict[str, list[str]] = {}
    for name, value in response.json()["headers"]:
        seen.setdefault(name.lower(), []).append(value)
    return seen


def test_upstream_sees_the_verified_subject_never_a_client_supplied_one(
        gateway: str, mint: Callable[..., str]) -> None:
    token = mint(sub="alice", scope="orders:read orders:write", roles=["staff"])
    forged = {"X-Auth-Subject": "mallory", "X-Auth-Roles": "admin", "X-Auth-Email": "m@evil",
              "X-Auth-Claims": "e30", "X-Auth-Scope": "everything"}
    response = httpx.get(f"{gateway}/orders/7", headers={"Authorization": f"Bearer {token}",
                                                         **forged})
    seen = _upstream_headers(response)
    assert response.json()["path"] == "/orders/7"
    assert seen["x-auth-subject"] == ["alice"]
    assert seen["x-auth-scope"] == ["orders:read orders:write"]
    assert seen["x-auth-roles"] == ["staff"]
    packed = seen["x-auth-claims"][0]
    claims = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
    assert claims["sub"] == "alice"
    # the token has no email claim: the forged value is gone (nginx sends no header, Caddy
    # an empty one)
    assert seen.get("x-auth-email", [""]) == [""]
    with_email = mint(sub="bob", email="bob@example.com")
    seen = _upstream_headers(httpx.get(f"{gateway}/", headers={
        "Authorization": f"Bearer {with_email}", "X-Auth-Email": "m@evil"}))
    assert seen["x-auth-email"] == ["bob@example.com"]
    assert seen["x-auth-subject"] == ["bob"]


def test_invalid_missing_and_expired_tokens_are_refused_with_a_challenge(
        gateway: str, mint: Callable[..., str]) -> None:
    expired = mint(exp=int(time.time()) - 60)
    for headers in ({}, {"Authorization": "Bearer not.a.jwt"},
                    {"Authorization": f"Bearer {expired}"},
                    {"Authorization": f"Bearer {mint(audience='billing')}"},
                    {"Authorization": "Basic YTpi", "X-Auth-Subject": "alice"}):
        response = httpx.get(f"{gateway}/orders/7", headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert "x-auth-subject" not in response.text  # the upstream was never reached
        if "Authorization" in headers and headers["Authorization"].startswith("Bearer"):
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith('Bearer error="invalid_token"'), challenge


def test_role_restricted_location(gateway: str, mint: Callable[..., str]) -> None:
    staff, admin = mint(roles=["staff"]), mint(sub="root", roles=["admin"])
    for path in ("/admin/users", "/x/../admin/users", "/%61dmin/users"):
        response = httpx.get(f"{gateway}{path}", headers={"Authorization": f"Bearer {staff}"})
        assert response.status_code == 403, (path, response.text)
    response = httpx.get(f"{gateway}/admin/users", headers={"Authorization": f"Bearer {admin}"})
    assert _upstream_headers(response)["x-auth-subject"] == ["root"]
    # a client-sent URI header cannot make /admin/ look like another path
    for name in ("X-Original-URI", "X-Forwarded-Uri"):
        response = httpx.get(f"{gateway}/admin/users", headers={
            "Authorization": f"Bearer {staff}", name: "/orders/"})
        assert response.status_code == 403, (name, response.text)


def test_dpop_proofs_are_checked_against_the_original_request_through_the_gateway(
        gateway: str, forward_auth: ForwardAuth, mint: Callable[..., str]) -> None:
    """The gateway passes the ``DPoP`` header and reports the original method and URL; a
    replayed proof, a proof for another URI or method, a thief's own proof, a bound token
    sent as Bearer and client-forged forwarded headers are all refused before the upstream."""
    key = jotkit.Key.generate("ES256")
    token = mint(sub="alice", scope="orders:read", cnf={"jkt": key.thumbprint()})
    url = f"{gateway}/orders/7?page=2"

    def dpop(proof_key: jotkit.Key, method: str, target: str) -> dict[str, str]:
        proof = jotkit.dpop.proof(proof_key, method, target, access_token=token)
        return {"Authorization": f"DPoP {token}", "DPoP": proof}

    fresh = dpop(key, "GET", url)
    seen = _upstream_headers(httpx.get(url, headers=fresh))
    assert seen["x-auth-subject"] == ["alice"]
    assert seen["dpop"] == [fresh["DPoP"]]  # the upstream may check it again itself
    # the same request again after the previous one passed: the proof is single-use
    refusals = {
        "replayed proof": (httpx.get, fresh, {"dpop_replayed"}),
        "proof for another path": (httpx.get, dpop(key, "GET", f"{gateway}/orders/8"),
                                   {"dpop_htu_mismatch"}),
        # the client's own forwarded headers are overwritten (nginx) or disagree (Caddy)
        "GET proof on a POST": (httpx.post, {**dpop(key, "GET", url), "X-Forwarded-Method": "GET",
                                             "X-Original-Method": "GET"},
                                {"dpop_htm_mismatch", "dpop_conflicting_forwarded"}),
        "proof for another host": (httpx.get, {**dpop(key, "GET", "http://evil.example/orders/7"),
                                               "X-Forwarded-Host": "evil.example"},
                                   {"dpop_htu_mismatch", "dpop_conflicting_forwarded"}),
        "thief's own proof": (httpx.get, dpop(jotkit.Key.generate("ES256"), "GET", url),
                              {"dpop_key_mismatch"}),
    }
    for what, (send, headers, reason) in refusals.items():
        logged = len(_decisions(forward_auth))
        response = send(url, headers=headers)
        assert response.status_code == 401, (what, response.text)
        challenge = response.headers["WWW-Authenticate"]
        assert challenge.startswith('DPoP algs="'), (what, challenge)
        assert 'error="invalid_dpop_proof"' in challenge, (what, challenge)
        assert "x-auth-subject" not in response.text  # the upstream was never reached
        # nginx answers with its own 401 page: forward-auth's log line names the reason
        assert _decision_after(forward_auth, logged)["reason"] in reason, what
    logged = len(_decisions(forward_auth))
    as_bearer = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
    assert as_bearer.status_code == 401
    assert _decision_after(forward_auth, logged)["reason"] == "dpop_bound_token"


def _decisions(forward_auth: ForwardAuth) -> list[dict[str, Any]]:
    """forward-auth's JSON log lines of decisions (one per refusal at ``info``)."""
    return [json.loads(line) for line in forward_auth.log.read_text().splitlines()
            if line.startswith("{") and '"forward_auth"' in line]


def _decision_after(forward_auth: ForwardAuth, count: int) -> dict[str, Any]:
    """The decision logged after the first ``count`` ones (written just after the answer)."""
    deadline = time.monotonic() + 10
    while len(events := _decisions(forward_auth)) <= count:
        assert time.monotonic() < deadline, "forward-auth logged no decision"
        time.sleep(0.02)
    assert len(events) == count + 1, events[count:]
    return events[count]


def _raw_status(address: str, request: bytes) -> int:
    """Send raw bytes (headers no HTTP client would send) and read the status code."""
    host, port = address.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)  # refused mid-way: the answer (if any) is still readable
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass
    match = re.match(rb"HTTP/1\.[01] (\d{3}) ", data)
    assert match, data[:200]
    return int(match.group(1))


def _garbage(size: int, seed: int) -> bytes:
    """Header-value bytes: printable, non-ASCII and odd punctuation, but no CR/LF/NUL."""
    alphabet = bytes(range(0x20, 0x7F)) + bytes(range(0x80, 0x100))
    return bytes(alphabet[(i * 7919 + seed) % len(alphabet)] for i in range(size))


def test_64_kib_garbage_headers_get_a_4xx_never_a_5xx(
        gateway: str, forward_auth: ForwardAuth, mint: Callable[..., str]) -> None:
    token = mint().encode()
    requests = {  # what: (headers, the answers allowed through a gateway, and directly)
        "one 64 KiB header": ([b"X-Junk: " + _garbage(65536, 1)], {400, 401, 431}),
        "eight 8 KiB headers": ([b"X-Junk-%d: " % i + _garbage(8000, i) for i in range(8)],
                                {400, 401, 431}),
        "64 KiB Authorization": ([b"Authorization: Bearer " + _garbage(65536, 2)],
                                 {400, 401, 431}),
        "6 KiB garbage token": ([b"Authorization: Bearer " + _garbage(6000, 3)], {401}),
        # the gateway sets the URI headers itself (200); sent directly, the URI is refused
        "garbage URI next to a valid token": ([b"Authorization: Bearer " + token,
                                               b"X-Forwarded-Uri: " + _garbage(6000, 4)],
                                              {200, 403}),
    }
    for where in (gateway, f"http://{forward_auth.address}"):
        host = where.removeprefix("http://").encode()
        for what, (headers, allowed) in requests.items():
            head = b"GET /orders/1 HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n"
            status = _raw_status(where, head + b"\r\n".join(headers) + b"\r\n\r\n")
            assert status in allowed, (where, what, status)
    # forward-auth is still answering, and nothing it saw was a 5xx
    assert httpx.get(f"http://{forward_auth.address}/").status_code == 401


def test_forward_auth_counts_and_logs_its_decisions(forward_auth: ForwardAuth,
                                                    mint: Callable[..., str]) -> None:
    base = f"http://{forward_auth.address}"
    assert httpx.get(base + "/", headers={"Authorization": f"Bearer {mint()}"}).status_code == 200
    refused = httpx.get(base + "/", headers={"Authorization": "Bearer x.y.z",
                                             "X-Forwarded-Method": "DELETE",
                                             "X-Forwarded-Uri": "/orders/9\u00e9".encode()})
    assert refused.status_code == 401
    metrics = httpx.get(f"http://127.0.0.1:{forward_auth.metrics_port}/metrics").text
    assert re.search(r'jotkit_forward_auth_decisions_total\{reason="ok",status="200"\} [1-9]',
                     metrics), metrics
    assert 'status="500"' not in metrics and 'status="503"' not in metrics
    events = [json.loads(line) for line in forward_auth.log.read_text().splitlines()
              if line.startswith("{")]
    refusals = [e for e in events if e.get("event") == "forward_auth" and e["method"] == "DELETE"]
    assert refusals and refusals[-1]["status"] == 401
    assert refusals[-1]["uri"] == "/orders/9\u00c3\u00a9"  # logged as received, JSON-escaped
