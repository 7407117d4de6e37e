"""The schemathesis CLI with ``--checks all`` against a running service: status codes,
content types, headers and bodies match the published OpenAPI document.

Each run gets the credentials its operations take (Bearer access token, HTTP Basic client,
metrics token); logout runs last because it revokes the token. One check is configured:
``positive_data_acceptance`` also accepts 400, because a schema-valid but unknown refresh
token must get 400 ``invalid_grant`` (RFC 6749 §5.2), which no schema can express.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jotkit.server import FrozenClock

from .harness import METRICS_TOKEN, START, Server, login, make_settings

CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    settings = make_settings(
        tmp_path_factory.mktemp("st"), login_ip_limit=100000, login_account_limit=100000
    )
    srv = Server(settings, FrozenClock(START)).start()
    srv.add_user("fuzz@example.com")
    yield srv
    srv.stop()


def test_openapi_document_matches_every_response_schemathesis_checks_all(live, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    cli = Path(sys.executable).parent / "schemathesis"
    with live.client() as c:
        bearer = "Authorization: Bearer " + login(c, "fuzz@example.com")["access_token"]
    runs = [
        ["-H", bearer, "--exclude-path-regex", "^/(oauth|metrics|auth/logout)"],
        ["--auth", "rs1:rs1-secret", "--include-path-regex", "^/oauth/(introspect|revoke)"],
        ["-H", f"Authorization: Bearer {METRICS_TOKEN}", "--include-path-regex", "^/metrics$"],
        ["-H", bearer, "--include-path-regex", "^/auth/logout"],
        # last: rs1 is not a registered OAuth client, its failures fill the client-auth throttle
        ["--auth", "rs1:rs1-secret", "--include-path-regex", "^/oauth/(token|userinfo)"],
    ]
    for args in runs:
        result = subprocess.run(
            [str(cli), "--config-file", str(config), "run", f"{live.url}/openapi.json",
             "--checks", "all", "--max-examples", "15", "--seed", "7", "--no-color", *args],
            capture_output=True, text=True, timeout=600, cwd=tmp_path,
        )
        assert result.returncode == 0, (args, result.stdout[-6000:], result.stderr[-2000:])
        assert " passed" in result.stdout and "generated" in result.stdout


def test_every_openapi_operation_has_its_own_operation_id(tmp_path):
    """Code generators key clients by operationId: a duplicate (FastAPI warns about it for a
    route serving GET and POST, as /oauth/userinfo did) makes one of the two unreachable."""
    import warnings

    from jotkit.server.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        document = create_app(make_settings(tmp_path)).openapi()
    ids = [op["operationId"] for path in document["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    assert {"userinfo_get", "userinfo_post"} <= set(ids)
