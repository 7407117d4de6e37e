"""Request-head size limit and read deadlines, over real sockets (service and the FastAPI
example). Nothing here asserts a duration: each test waits for the server to act (answer or
close) and fails if it never does."""

from __future__ import annotations

import importlib.util
import select
import socket
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn

from jotkit.server.serving import http_limits

CAP = 8 * 1024 * 1024  # the attacker would send this much header; the server must stop earlier
WAIT = 20.0  # how long a test waits for the server to act before declaring it never will


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=WAIT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a reset counts as a
    close); raises ``TimeoutError`` if the server keeps the connection open."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def _send_huge_header(url: str, check_health) -> tuple[int, bytes]:
    """Send one never-ending header line; return (bytes sent when the server refused it,
    what the server answered)."""
    sock = _connect(url)
    with sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ")
        sent, chunk = 0, b"a" * 65536
        try:
            while sent < CAP:
                sock.sendall(chunk)
                sent += len(chunk)
                if sent == 4 * len(chunk):
                    check_health()  # another client is served meanwhile
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break  # the server answered or closed
        except (BrokenPipeError, ConnectionResetError):
            return sent, b""
        return sent, _read_until_closed(sock)


def test_huge_header_line_is_refused_early_and_does_not_stall_healthz(make_server):
    srv = make_server(max_header_bytes=32768)

    def check_health() -> None:
        with srv.client() as c:
            assert c.get("/healthz").status_code == 200

    sent, answer = _send_huge_header(srv.url, check_health)
    assert sent < CAP  # refused long before the whole header was read
    assert answer == b"" or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431")), answer[:80]
    check_health()


def test_request_head_over_max_header_bytes_gets_431(make_server):
    srv = make_server(max_header_bytes=16384)
    with srv.client() as c:  # a complete head that arrives at once: refused with JSON
        r = c.get("/healthz", headers={"X-Big": "x" * 20000})
        assert r.status_code == 431
        assert r.json()["reason"] == "header_too_large"
        r = c.post("/auth/login", json={}, headers={"Cookie": "a=" + "x" * 20000})
        assert r.status_code == 431
    with _connect(srv.url) as sock:  # just under the limit is fine
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Ok: "
                     + b"x" * 15000 + b"\r\n\r\n")
        assert _read_until_closed(sock).startswith(b"HTTP/1.1 200")


def test_slowloris_half_sent_head_is_closed_after_header_timeout(make_server):
    srv = make_server(header_timeout=0.5)
    with _connect(srv.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")  # ... and never the blank line
        assert _read_until_closed(sock) == b""
    with _connect(srv.url) as sock:  # a connection that never sends a byte
        assert _read_until_closed(sock) == b""


def test_slowloris_trickled_head_is_closed_although_bytes_keep_coming(make_server):
    srv = make_server(header_timeout=0.5)
    with _connect(srv.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        closed = False
        for _ in range(int(WAIT / 0.1)):  # one header byte every 0.1 s: never complete
            try:
                sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if select.select([sock], [], [], 0.1)[0]:
                closed = _read_until_closed(sock) == b""
                break
        assert closed


def test_slowloris_half_sent_body_is_closed_after_body_timeout(make_server):
    srv = make_server(body_timeout=0.5)
    with _connect(srv.url) as sock:
        sock.sendall(b"POST /auth/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                     b"\r\nContent-Length: 100\r\n\r\n{\"email\": ")
        answer = _read_until_closed(sock)
    assert b"200 OK" not in answer


def test_keep_alive_connection_still_serves_several_requests(make_server):
    srv = make_server(header_timeout=0.5)
    with srv.client() as c:
        for _ in range(3):
            assert c.get("/healthz").status_code == 200


def _orders_example():
    path = Path(__file__).resolve().parents[2] / "examples" / "orders_api.py"
    spec = importlib.util.spec_from_file_location("orders_api_example", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("orders_api_example", module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def orders_example():
    """The FastAPI example served with the options its ``main()`` uses."""
    module = _orders_example()
    from _config import ResourceServerConfig  # put on sys.path by the example

    app = module.create_app(ResourceServerConfig())
    config = uvicorn.Config(app, **module.server_options(host="127.0.0.1", port=0,
                                                         header_timeout=0.5))
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


def test_example_orders_api_refuses_huge_header_and_closes_slowloris(orders_example):
    def check_health() -> None:
        assert httpx.get(orders_example + "/health").status_code == 200

    sent, answer = _send_huge_header(orders_example, check_health)
    assert sent < CAP
    assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:80]
    with _connect(orders_example) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        assert _read_until_closed(sock) == b""
    r = httpx.get(orders_example + "/health")
    assert "server" not in r.headers


def test_http_limits_defaults_are_bounded():
    options = http_limits()
    assert options["http"].max_head <= 65536
    assert options["server_header"] is False and options["proxy_headers"] is False


def test_uvicorn_command_line_with_hardened_protocol_refuses_huge_header(tmp_path):
    """The raw uvicorn command of docs/deployment.md gets the same head limit."""
    import os
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "JOTKIT_DATA_DIR": str(tmp_path / "data"), "JOTKIT_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "jotkit.server.asgi:app",
         "--port", str(port), "--http", "jotkit.server.serving:HardenedHttpTools",
         "--no-proxy-headers", "--no-server-header", "--log-level", "warning"],
        env=env, cwd=tmp_path,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(url + "/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert proc.poll() is None and time.monotonic() < deadline, "uvicorn did not start"
                time.sleep(0.1)
        assert "server" not in r.headers

        def check_health() -> None:
            assert httpx.get(url + "/healthz").status_code == 200

        sent, answer = _send_huge_header(url, check_health)
        assert sent < CAP
        assert answer == b"" or answer.startswith(b"HTTP/1.1 400"), answer[:80]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
