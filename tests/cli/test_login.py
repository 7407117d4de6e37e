"""``jotkit login`` / ``token`` / ``logout`` as real processes against a running server: the
device flow (approved on the hosted page), the 0600 token file, refresh, and revocation."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jotkit.cli._common import CliError
from jotkit.cli.login import (
    _Http,
    code_lifetime,
    needs_refresh,
    poll_interval,
    poll_outcome,
    require_https,
    token_file,
)
from jotkit.server.clock import SystemClock
from oauth.par_device_helpers import add_device_client, approve
from server.harness import Server, bearer, make_settings
from server.live import free_port

EMAIL = "cli-user@example.com"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    port = free_port()
    settings = make_settings(tmp_path_factory.mktemp("login"),
                             issuer=f"http://127.0.0.1:{port}", device_code_interval=1.0)
    srv = Server(settings, SystemClock(), port=port).start()  # type: ignore[arg-type]
    srv.add_user(EMAIL)
    yield srv
    srv.stop()


def _jotkit() -> str:
    exe = Path(sys.executable).with_name("jotkit")
    if not exe.exists():
        pytest.skip("the jotkit console script is not installed: pip install -e .")
    return str(exe)


def _env(config_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "JOTKIT_TOKEN_FILE"}
    return {**env, "XDG_CONFIG_HOME": str(config_home), "NO_COLOR": "1",
            "PYTHONUNBUFFERED": "1"}


def _login(live: Server, client_id: str, env: dict[str, str], decision: str = "allow"
           ) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen(
        [_jotkit(), "login", "--issuer", live.settings.issuer or "", "--client-id", client_id,
         "--scope", "openid email offline_access"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    match = re.search(r"Open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})", first)
    if match is None:
        proc.kill()
        raise AssertionError(first + proc.stderr.read() if proc.stderr else first)
    assert match.group(1) == f"{live.settings.issuer}/oauth/device"
    with live.client(follow_redirects=False) as b:
        approve(b, match.group(2), EMAIL, decision=decision)
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, first + out, err)


def test_login_token_logout_against_a_running_server(live: Server, tmp_path: Path):
    client_id = add_device_client(live)[0].client_id
    env = _env(tmp_path / "config")
    done = _login(live, client_id, env)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "config" / "jotkit" / "tokens.json"
    assert f"tokens saved to {path}" in done.stdout
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    stored = json.loads(path.read_text())
    assert stored["issuer"] == live.settings.issuer and stored["client_id"] == client_id
    assert stored["revocation_endpoint"] == f"{live.settings.issuer}/oauth/revoke"
    with live.client() as c:
        me = c.get("/oauth/userinfo", headers=bearer(stored["access_token"]))
        assert me.status_code == 200 and me.json()["email"] == EMAIL

    printed = subprocess.run([_jotkit(), "token"], env=env, capture_output=True, text=True)
    assert printed.returncode == 0 and printed.stdout.strip() == stored["access_token"]

    stored["expires_at"] = 0  # expired: `jotkit token` refreshes (rotation) and saves
    path.write_text(json.dumps(stored))
    refreshed = subprocess.run([_jotkit(), "token"], env=env, capture_output=True, text=True)
    assert refreshed.returncode == 0, refreshed.stderr
    now = json.loads(path.read_text())
    assert refreshed.stdout.strip() == now["access_token"] != stored["access_token"]
    assert now["refresh_token"] != stored["refresh_token"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    out = subprocess.run([_jotkit(), "logout"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "tokens revoked" in out.stdout and not path.exists()
    with live.client() as c:
        r = c.post("/oauth/token", data={"grant_type": "refresh_token",
                                         "refresh_token": now["refresh_token"],
                                         "client_id": client_id})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
        assert c.get("/oauth/userinfo", headers=bearer(now["access_token"])).status_code == 401
    again = subprocess.run([_jotkit(), "logout"], env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "not signed in" in again.stderr


def test_denied_login_exits_1_and_stores_nothing(live: Server, tmp_path: Path):
    client_id = add_device_client(live)[0].client_id
    env = _env(tmp_path / "config")
    done = _login(live, client_id, env, decision="deny")
    assert done.returncode == 1 and "denied" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "config" / "jotkit" / "tokens.json").exists()


def test_login_refuses_a_server_whose_metadata_names_another_issuer(live: Server,
                                                                     tmp_path: Path):
    other = live.url.replace("127.0.0.1", "localhost")  # same server, another name
    r = subprocess.run([_jotkit(), "login", "--issuer", other, "--client-id", "x"],
                       env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 1 and "names issuer" in r.stderr


def test_token_file_location(tmp_path: Path):
    assert token_file(tmp_path / "t.json", {}) == tmp_path / "t.json"
    assert token_file(None, {"JOTKIT_TOKEN_FILE": "/x/t.json"}) == Path("/x/t.json")
    assert token_file(None, {"XDG_CONFIG_HOME": "/cfg"}) == Path("/cfg/jotkit/tokens.json")
    home = Path.home() / ".config" / "jotkit" / "tokens.json"
    assert token_file(None, {"XDG_CONFIG_HOME": "relative"}) == home  # XDG: absolute only
    assert token_file(None, {}) == home


def test_poll_outcomes_follow_rfc_8628():
    assert poll_outcome(400, {"error": "authorization_pending"}, 5).interval == 5
    assert poll_outcome(400, {"error": "slow_down"}, 5).interval == 10
    assert poll_outcome(200, {"access_token": "a"}, 5).tokens == {"access_token": "a"}
    for body in ({"error": "access_denied"}, {"error": "expired_token"},
                 {"error": "invalid_grant"}, "not json", {"token": 1}):
        with pytest.raises(CliError):
            poll_outcome(400 if isinstance(body, dict) else 200, body, 5)
    assert needs_refresh({"expires_at": 100.0}, 50.0)
    assert not needs_refresh({"expires_at": 1000.0}, 50.0)
    assert not needs_refresh({"expires_at": None}, 50.0)


@pytest.mark.parametrize("url", [
    "http://auth.example", "http://10.0.0.5:8000", "ftp://auth.example", "https://", "auth.example",
    "http://[::1", 42, None,
])
def test_login_refuses_a_cleartext_issuer_that_would_expose_codes_and_tokens(url):
    with pytest.raises(CliError):
        require_https(url, "issuer")


@pytest.mark.parametrize("url", [
    "https://auth.example", "http://127.0.0.1:8000", "http://localhost:9000/", "http://[::1]:80",
])
def test_https_or_loopback_issuer_is_accepted(url):
    assert require_https(url, "issuer") == url


def test_metadata_endpoint_in_clear_text_is_refused_even_for_an_https_issuer():
    class Stub:
        status_code = 200

        @staticmethod
        def json():
            return {"issuer": "https://auth.example",
                    "device_authorization_endpoint": "https://auth.example/device",
                    "token_endpoint": "http://auth.example/token"}

    http = _Http()
    http._client.get = lambda url: Stub()  # type: ignore[method-assign]
    with http, pytest.raises(CliError, match="token endpoint"):
        http.metadata("https://auth.example")


@pytest.mark.parametrize(("value", "expected"), [
    (None, 5), (0, 1), (-3, 1), (0.2, 1), (2, 2), (7.9, 7), (10**12, 300), (float("inf"), 300),
    (float("nan"), 5), ("5", 5), (True, 5), ([], 5),
])
def test_server_interval_of_zero_cannot_make_the_cli_poll_in_a_tight_loop(value, expected):
    assert poll_interval(value) == expected


def test_slow_down_never_raises_the_interval_past_the_cap():
    assert poll_outcome(400, {"error": "slow_down"}, 300).interval == 300


@pytest.mark.parametrize(("value", "expected"), [
    (None, 600.0), (0, 600.0), (-1, 600.0), ("x", 600.0), (float("nan"), 600.0), (30, 30.0),
    (10**9, 3600.0),
])
def test_code_lifetime_is_bounded(value, expected):
    assert code_lifetime(value) == expected
