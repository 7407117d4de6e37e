"""The debugger's HTTP side (no browser needed): fixed file set, strict headers, mounting."""

from __future__ import annotations

import pytest

from jotkit.audit import rules_text
from jotkit.debugger import CSP, FILES, create_app, mount, read_file

starlette = pytest.importorskip("starlette")
from starlette.applications import Starlette  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402


@pytest.fixture
def client():
    with TestClient(create_app()) as c:
        yield c


def test_index_and_assets_with_strict_headers(client):
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert "jotkit token debugger" in r.text
    csp = r.headers["content-security-policy"]
    assert csp == CSP
    assert "default-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "no-referrer"
    for name in ("app.js", "jose.js", "audit.js"):
        r = client.get(f"/{name}")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/javascript")


def test_rules_are_the_package_data_file(client):
    r = client.get("/audit_rules.json")
    assert r.status_code == 200
    assert r.text == rules_text()
    assert r.json()["rules"]


@pytest.mark.parametrize(
    "path", ["/nope.js", "/..%2f__init__.py", "/static/index.html", "/audit.py", "/%2e%2e"]
)
def test_only_the_fixed_file_set_is_served(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "content-security-policy" in r.headers


def test_no_third_party_urls_in_static_files():
    for name in FILES:
        text = read_file(name).decode("utf-8")
        for marker in ("http://", "https://", "//cdn", "@import"):
            if name == "audit_rules.json" and marker.startswith("http"):
                continue  # rule texts mention no URLs, but allow data strings
            assert marker not in text, (name, marker)


def test_mount_on_an_existing_app():
    app = Starlette()
    mount(app)
    with TestClient(app) as c:
        r = c.get("/debugger", follow_redirects=False)
        assert r.status_code in (301, 302, 307, 308)
        assert r.headers["location"].endswith("/debugger/")
        r = c.get("/debugger/")
        assert r.status_code == 200
        assert "jotkit token debugger" in r.text
        assert c.get("/debugger/audit_rules.json").json()["version"] == 1
