"""forward-auth's HTTP protocol: a prepared response head is checked once and written with
the same framing as uvicorn's own path (real uvicorn, real sockets)."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from jotkit.edge._protocol import prepare_head

HEADERS = [(b"Content-Length", b"5"), (b"X-Auth-Subject", b"alice")]


@pytest.mark.parametrize("headers", [
    [(b"content-length", b"0"), (b"x-auth-subject", b"alice\r\nset-cookie: a=b")],
    [(b"content-length", b"0"), (b"x-auth-subject", b"alice\x00")],
    [(b"content-length", b"0"), (b"x auth", b"v")],
    [(b"content-length", b"0"), (b"x-auth:", b"v")],
    [(b"content-length", b"0"), (b"connection", b"close")],
    [(b"content-length", b"0"), (b"transfer-encoding", b"chunked")],
    [(b"content-length", b"0"), (b"content-length", b"0")],
    [(b"content-length", b"-1")],
    [(b"x-auth-subject", b"alice")],
])
def test_prepared_head_refuses_header_injection_and_framing(headers) -> None:
    """A prepared head skips uvicorn's per-response checks, so it makes its own, once:
    no CR/LF/NUL in a value (response splitting), token names, one Content-Length and no
    framing header the protocol decides."""
    with pytest.raises(ValueError):
        prepare_head(200, headers)


def test_prepared_head_is_the_status_line_and_lower_cased_headers() -> None:
    head = prepare_head(200, HEADERS)
    assert head.status_line == b"HTTP/1.1 200 OK\r\n"
    assert head.block == b"content-length: 5\r\nx-auth-subject: alice\r\n"
    assert head.content_length == 5


# A server process as forward-auth runs (uvicorn.run, no access log: pytest's log capture
# would give uvicorn's access logger handlers, and a logged answer takes uvicorn's path).
# The two paths are told apart by one header: uvicorn's own path sends ``headers``, the
# prepared path the prepared head.
SERVER = """
import sys
import uvicorn
from jotkit.edge import uvicorn_options
from jotkit.edge._protocol import PREPARED_HEAD, prepare_head

HEADERS = [(b"Content-Length", b"5"), (b"X-Auth-Subject", b"alice")]
START = {"type": "http.response.start", "status": 200,
         "headers": [*HEADERS, (b"x-path", b"uvicorn")],
         PREPARED_HEAD: prepare_head(200, [*HEADERS, (b"x-path", b"prepared")])}

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send(START)  # the same message every time, as forward-auth's reused answer
    await send({"type": "http.response.body", "body": b"hello"})

uvicorn.run(app, **{**uvicorn_options("127.0.0.1", int(sys.argv[1]), "warning"),
                    "lifespan": "off"})
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    script = tmp_path_factory.mktemp("protocol") / "server.py"
    script.write_text(SERVER)
    proc = subprocess.Popen([sys.executable, str(script), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(timeout=10)
    assert proc.stderr is not None
    assert b"Traceback" not in proc.stderr.read()


def _exchange(port: int, data: bytes, answers: int) -> list[bytes]:
    """Send ``data`` on one connection; read ``answers`` responses (heads and bodies)."""
    out: list[bytes] = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        buffer = b""
        while len(out) < answers:
            head, sep, rest = buffer.partition(b"\r\n\r\n")
            if sep:
                length = int(re.search(rb"content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
                if len(rest) >= length:
                    out.append(head + sep + rest[:length])
                    buffer = rest[length:]
                    continue
            chunk = sock.recv(65536)
            assert chunk, (out, buffer)
            buffer += chunk
    return out


def _headers(answer: bytes) -> list[bytes]:
    return answer.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]


def test_prepared_answers_keep_uvicorns_framing_on_keep_alive_and_pipelining(server) -> None:
    request = b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n"
    answers = _exchange(server, request * 3, 3)  # three pipelined requests, one connection
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
        assert answer.endswith(b"\r\n\r\nhello")
        names = [line.split(b":")[0] for line in _headers(answer)]
        assert sorted(names) == [b"content-length", b"date", b"x-auth-subject", b"x-path"]
        assert b"x-path: prepared" in _headers(answer)


def test_close_and_head_requests_take_uvicorns_own_path(server) -> None:
    (closing,) = _exchange(server, b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 1)
    assert b"connection: close" in _headers(closing)
    assert b"x-path: uvicorn" in _headers(closing)
    (old,) = _exchange(server, b"GET /x HTTP/1.0\r\n\r\n", 1)
    assert b"connection: close" in _headers(old)
    assert b"x-path: uvicorn" in _headers(old)
    with socket.create_connection(("127.0.0.1", server), timeout=10) as sock:
        sock.sendall(b"HEAD /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n")  # no body for HEAD
    assert b"\r\nx-path: uvicorn\r\n" in data
