"""The revocation feed end to end (issue 14 §2): `jotkit serve`, the FastAPI and Flask example
APIs and `jotkit forward-auth` as real processes over real HTTP, on SQLite and on
PostgreSQL + Redis.

None of the resource servers is configured for introspection: a logout, logout-all, refresh
token reuse or `jotkit users disable` reaches them only through ``GET /oauth/revocations``.
The tests wait (with a generous deadline, never a timed assertion) until each one refuses the
token; ``make bench-multi`` measures how fast that is.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends.util import create_database, drop_database, drop_redis_prefix, pg_url_for
from jotkit.integrations import BearerError, TokenVerifier
from jotkit.jwks_client import JWKSClient

from .polling import wait_until
from .test_microservices_e2e import Processes, base_env, free_port, jotkit_cmd

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("revocation-feed")]

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PASSWORD = "feed-Passw0rd-for-tests"
RS_CLIENT = ("rs-feed", "rs-feed-secret")  # JOTKIT_INTROSPECTION_CLIENTS: may read the feed
DEADLINE = 20.0  # liveness only: how long to wait before calling a propagation lost


def wait_for(check: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    """Poll until ``check()`` holds (a liveness wait, not a timing assertion)."""
    wait_until(check, what, timeout, interval=0.02)


class CuttableProxy:
    """A TCP forwarder to the auth service that the test can cut (drops every connection
    and refuses new ones) and restore, to break a feed subscription on purpose."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.open = True
        self.requests: list[bytes] = []  # the first bytes of each forwarded connection
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, record: bool) -> None:
        first = record
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if first:
                    with self._lock:
                        self.requests.append(data)
                    first = False
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


@dataclass
class FeedStack:
    backend: str
    issuer: str
    env: dict[str, str]
    port: int
    apis: dict[str, str]  # name -> URL of a protected route
    processes: Processes
    feed_client: tuple[str, str]  # a registered client with the revocations:read scope
    plain_client: tuple[str, str]  # a registered client without it

    @property
    def feed_url(self) -> str:
        return f"{self.issuer}/oauth/revocations"

    def start_auth(self) -> None:
        self.processes.start("auth", jotkit_cmd("serve", "--port", str(self.port)), self.env)
        wait_for(
            lambda: httpx.get(f"{self.issuer}/.well-known/jwks.json").status_code == 200,
            "the auth service", 60,
        )

    def stop_auth(self) -> None:
        for name, proc in self.processes.procs:
            if name == "auth" and proc.poll() is None:
                proc.terminate()
                proc.wait(30)
        self.processes.procs = [(n, p) for n, p in self.processes.procs if n != "auth"]

    def cli(self, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            jotkit_cmd(*args), input=stdin.encode() if stdin else None, env=self.env,
            capture_output=True, timeout=60, check=True,
        )
        return done.stdout.decode()


def add_client(env: dict[str, str], name: str, *scopes: str) -> tuple[str, str]:
    args = ["clients", "add", name, "--grant", "client_credentials", "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    done = subprocess.run(jotkit_cmd(*args), env=env, capture_output=True, timeout=60,
                          check=True)
    data = json.loads(done.stdout)
    return data["client_id"], data["client_secret"]


@pytest.fixture(scope="module", params=["sqlite", "postgres+redis"])
def feed_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FeedStack]:
    backend: str = request.param
    tmp = tmp_path_factory.mktemp("feed")
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = base_env() | {
        "JOTKIT_DATA_DIR": str(tmp / "auth-data"),
        "JOTKIT_ISSUER": issuer,
        "JOTKIT_ACCESS_TTL": "600",
        "JOTKIT_KEY_PUBLISH_DELAY": "0",
        "JOTKIT_INTROSPECTION_CLIENTS": ":".join(RS_CLIENT),
        "JOTKIT_ARGON2_TIME_COST": "1",
        "JOTKIT_ARGON2_MEMORY_COST": "8192",
        "JOTKIT_ARGON2_PARALLELISM": "1",
        "JOTKIT_ARGON2_INSECURE_TEST_COSTS": "1",
        "JOTKIT_LOG_LEVEL": "WARNING",
    }
    cleanup: list[Callable[[], None]] = []
    if backend == "postgres+redis":
        postgres_url = request.getfixturevalue("postgres_url")
        redis_url = request.getfixturevalue("redis_url")
        database = f"jotkit_feed_{secrets.token_hex(6)}"
        create_database(postgres_url, database)
        cleanup.append(lambda: drop_database(postgres_url, database))
        prefix = f"jotkit:test:{secrets.token_hex(6)}:"
        cleanup.append(lambda: drop_redis_prefix(redis_url, prefix))
        env |= {
            "JOTKIT_DATABASE_URL": pg_url_for(postgres_url, database),
            "JOTKIT_REDIS_URL": redis_url,
            "JOTKIT_REDIS_PREFIX": prefix,
        }
    processes = Processes(tmp)
    try:
        feed_client = add_client(env, "feed-reader", "revocations:read")
        plain_client = add_client(env, "no-feed", "invoices:read")
        stack = FeedStack(backend, issuer, env, port, {}, processes, feed_client, plain_client)
        stack.start_auth()
        for script, name, path in (("orders_api.py", "fastapi", "/orders"),
                                   ("flask_api.py", "flask", "/reports")):
            api_port = free_port()
            processes.start(name, [sys.executable, str(EXAMPLES / script)], base_env() | {
                "JOTKIT_RS_ISSUER": issuer,
                "JOTKIT_RS_PORT": str(api_port),
                "JOTKIT_RS_REVOCATIONS_URL": stack.feed_url,
                "JOTKIT_RS_CLIENT_ID": RS_CLIENT[0],
                "JOTKIT_RS_CLIENT_SECRET": RS_CLIENT[1],
            })
            stack.apis[name] = f"http://127.0.0.1:{api_port}{path}"
        fa_port = free_port()
        processes.start("forward-auth", jotkit_cmd(
            "forward-auth", "--jwks-url", f"{issuer}/.well-known/jwks.json", "--issuer", issuer,
            "--audience", "jotkit", "--revocations", stack.feed_url,
            "--revocations-client-id", feed_client[0], "--port", str(fa_port),
            "--log-level", "warning",
        ), base_env() | {"JOTKIT_REVOCATIONS_CLIENT_SECRET": feed_client[1]})
        stack.apis["forward-auth"] = f"http://127.0.0.1:{fa_port}/orders"
        for name, url in stack.apis.items():
            health = url.rsplit("/", 1)[0] + "/health"
            if name == "forward-auth":  # every path is an auth check: 401 means it is up
                wait_for(lambda url=url: httpx.get(url).status_code == 401, name, 60)
            else:
                wait_for(lambda h=health: httpx.get(h).json()["revocations_synced"], name, 60)
        yield stack
    except BaseException:
        for name, _ in processes.procs:
            print(f"----- {name} log -----\n{processes.log(name)}")
        raise
    finally:
        processes.stop()
        for step in reversed(cleanup):
            step()


_USERS = iter(range(10**6))


def new_user(stack: FeedStack) -> str:
    email = f"feed{next(_USERS)}-{secrets.token_hex(3)}@example.com"
    stack.cli("users", "add", email, "--role", "user", stdin=PASSWORD)
    return email


def login(stack: FeedStack, email: str, agent: str = "feed-tests/1") -> dict[str, Any]:
    resp = httpx.post(f"{stack.issuer}/auth/login", json={"email": email, "password": PASSWORD},
                      headers={"User-Agent": agent})
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def status_at(url: str, token: str) -> int:
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=10).status_code


def assert_accepted_everywhere(stack: FeedStack, token: str) -> None:
    for name, url in stack.apis.items():
        assert status_at(url, token) == 200, name


def wait_refused_everywhere(stack: FeedStack, token: str) -> None:
    for name, url in stack.apis.items():
        wait_for(lambda url=url: status_at(url, token) == 401, f"{name} to refuse the token")
        resp = httpx.get(url, headers={"Authorization": f"Bearer {token}"})
        assert resp.json()["reason"] == "revoked", (name, resp.text)


def test_logout_is_refused_by_every_resource_server(feed_stack: FeedStack) -> None:
    token = login(feed_stack, new_user(feed_stack))["access_token"]
    assert_accepted_everywhere(feed_stack, token)
    resp = httpx.post(f"{feed_stack.issuer}/auth/logout",
                      headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200
    wait_refused_everywhere(feed_stack, token)


def test_logout_all_refuses_the_users_other_sessions(feed_stack: FeedStack) -> None:
    email = new_user(feed_stack)
    first, second = login(feed_stack, email)["access_token"], login(feed_stack, email)
    assert_accepted_everywhere(feed_stack, second["access_token"])
    resp = httpx.post(f"{feed_stack.issuer}/auth/logout-all",
                      headers={"Authorization": f"Bearer {first}"})
    assert resp.status_code == 200
    wait_refused_everywhere(feed_stack, second["access_token"])


def test_refresh_token_reuse_refuses_the_sessions_access_token(feed_stack: FeedStack) -> None:
    """RFC 9700 §4.14.2: a spent refresh token presented again revokes the family; its newest
    access token is then refused by every resource server, not only by the service."""
    tokens = login(feed_stack, new_user(feed_stack))
    rotated = httpx.post(f"{feed_stack.issuer}/auth/refresh",
                         json={"refresh_token": tokens["refresh_token"]},
                         headers={"User-Agent": "feed-tests/1"})
    assert rotated.status_code == 200, rotated.text
    access = rotated.json()["access_token"]
    assert_accepted_everywhere(feed_stack, access)
    replay = httpx.post(f"{feed_stack.issuer}/auth/refresh",
                        json={"refresh_token": tokens["refresh_token"]},
                        headers={"User-Agent": "attacker/1"})
    assert replay.status_code == 400
    wait_refused_everywhere(feed_stack, access)


def test_users_disable_from_the_cli_is_refused(feed_stack: FeedStack) -> None:
    email = new_user(feed_stack)
    token = login(feed_stack, email)["access_token"]
    assert_accepted_everywhere(feed_stack, token)
    feed_stack.cli("users", "disable", email)  # another process, writing the database
    wait_refused_everywhere(feed_stack, token)


def test_a_service_restart_loses_nothing(feed_stack: FeedStack) -> None:
    """Revocations made just before the service stops and while it is down (the CLI writes
    the database) reach every subscriber once it is back: they resume from their cursor."""
    email_a, email_b = new_user(feed_stack), new_user(feed_stack)
    token_a = login(feed_stack, email_a)["access_token"]
    token_b = login(feed_stack, email_b)["access_token"]
    assert_accepted_everywhere(feed_stack, token_b)
    httpx.post(f"{feed_stack.issuer}/auth/logout", headers={"Authorization": f"Bearer {token_a}"})
    feed_stack.stop_auth()
    try:
        feed_stack.cli("users", "disable", email_b)
    finally:
        feed_stack.start_auth()
    wait_refused_everywhere(feed_stack, token_a)
    wait_refused_everywhere(feed_stack, token_b)


def _verifier(stack: FeedStack, feed_url: str, fail_open: bool) -> TokenVerifier:
    return TokenVerifier(
        JWKSClient(f"{stack.issuer}/.well-known/jwks.json"), issuer=stack.issuer,
        audience="jotkit", revocations=feed_url, revocations_auth=RS_CLIENT,
        revocations_fail_open=fail_open,
    )


def test_feed_catch_up_after_the_connection_drops(feed_stack: FeedStack) -> None:
    """The subscription is cut while a logout happens; on reconnect it sends Last-Event-ID
    and receives the revocation it missed."""
    proxy = CuttableProxy(feed_stack.port)
    verifier = _verifier(feed_stack, f"http://127.0.0.1:{proxy.port}/oauth/revocations", True)
    try:
        assert verifier.revocations is not None
        assert verifier.revocations.wait_synced(DEADLINE)
        token = login(feed_stack, new_user(feed_stack))["access_token"]
        assert verifier.verify(token)["jti"]
        proxy.cut()
        wait_for(lambda: not verifier.revocation_status().synced, "the cut to be noticed")
        httpx.post(f"{feed_stack.issuer}/auth/logout",
                   headers={"Authorization": f"Bearer {token}"})
        proxy.restore()

        def refused() -> bool:
            try:
                verifier.verify(token)
            except BearerError as exc:
                return exc.reason == "revoked"
            return False

        wait_for(refused, "the missed logout to arrive")
        assert any(b"last-event-id:" in r.lower() for r in proxy.requests[1:])
        assert verifier.revocation_status().disconnects >= 1
    finally:
        verifier.close()
        proxy.close()


def test_fail_open_accepts_and_counts_fail_closed_answers_503(feed_stack: FeedStack) -> None:
    proxy = CuttableProxy(feed_stack.port)
    url = f"http://127.0.0.1:{proxy.port}/oauth/revocations"
    open_v, closed_v = _verifier(feed_stack, url, True), _verifier(feed_stack, url, False)
    try:
        for v in (open_v, closed_v):
            assert v.revocations is not None and v.revocations.wait_synced(DEADLINE)
        token = login(feed_stack, new_user(feed_stack))["access_token"]
        assert closed_v.verify(token)["jti"] == open_v.verify(token)["jti"]
        proxy.cut()
        for v in (open_v, closed_v):
            wait_for(lambda v=v: not v.revocation_status().synced, "the cut to be noticed")
        assert open_v.verify(token)["sub"]
        status = open_v.revocation_status()
        assert status is not None and status.unsynced_accepts >= 1
        with pytest.raises(BearerError) as info:
            closed_v.verify(token)
        assert (info.value.status, info.value.reason) == (503, "revocations_unavailable")
        proxy.restore()
        wait_for(lambda: closed_v.revocation_status().synced, "the feed to come back")
        assert closed_v.verify(token)["sub"]
    finally:
        open_v.close()
        closed_v.close()
        proxy.close()


def test_only_authorised_clients_read_the_feed(feed_stack: FeedStack) -> None:
    url = feed_stack.feed_url
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, auth=(RS_CLIENT[0], "wrong")).status_code == 401
    assert httpx.get(url, auth=(feed_stack.plain_client[0], "wrong")).status_code == 401
    refused = httpx.get(url, auth=feed_stack.plain_client)
    assert refused.status_code == 403
    assert refused.json()["error"] == "insufficient_scope"
    for client in (feed_stack.feed_client, RS_CLIENT):
        with httpx.stream("GET", url, auth=client) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")


def test_a_malformed_last_event_id_is_400(feed_stack: FeedStack) -> None:
    for bad in ("abc", "-1", "1.5", "9" * 40, "1 2", "1" * 300, "0x10"):
        resp = httpx.get(feed_stack.feed_url, auth=RS_CLIENT, headers={"Last-Event-ID": bad})
        assert resp.status_code == 400, bad
        assert resp.json()["error"] == "invalid_request"


def test_a_cursor_from_another_journal_gets_a_reset(feed_stack: FeedStack) -> None:
    """A cursor above anything this journal handed out (a replaced database) is answered with
    ``reset`` and then the whole live state, so the reader drops what it held."""
    token = login(feed_stack, new_user(feed_stack))["access_token"]
    httpx.post(f"{feed_stack.issuer}/auth/logout", headers={"Authorization": f"Bearer {token}"})
    events: list[str] = []
    with httpx.stream("GET", feed_stack.feed_url, auth=RS_CLIENT,
                      headers={"Last-Event-ID": str(10**15)}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("event: "):
                events.append(line[7:])
                if events[-1] == "ready":
                    break
    assert events[0] == "reset"
    assert "revocations" in events
