"""The debugger's HTTP side over real HTTP (no browser needed): fixed file set, strict
headers, mounting on another app."""

from __future__ import annotations

import httpx
import pytest
from jotkit_debugger_server import serve_app

from jotkit.audit import rules_text
from jotkit.debugger import CSP, FILES, mount, read_file


def test_index_and_assets_with_strict_headers(debugger_url):
    r = httpx.get(debugger_url)
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
        r = httpx.get(debugger_url + name)
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/javascript")


def test_rules_are_the_package_data_file(debugger_url):
    r = httpx.get(debugger_url + "audit_rules.json")
    assert r.status_code == 200
    assert r.text == rules_text()
    assert r.json()["rules"]


@pytest.mark.parametrize(
    "path", ["nope.js", "..%2f__init__.py", "static/index.html", "audit.py", "%2e%2e", "a/b/c"]
)
def test_only_the_fixed_file_set_is_served(debugger_url, path):
    r = httpx.get(debugger_url + path)
    assert r.status_code == 404
    assert r.headers["content-security-policy"] == CSP


def test_post_is_not_allowed(debugger_url):
    assert httpx.post(debugger_url, content=b"x").status_code == 405


def test_no_third_party_urls_in_static_files():
    for name in FILES:
        text = read_file(name).decode("utf-8")
        for marker in ("http://", "https://", "//cdn", "@import", "fonts.g"):
            assert marker not in text, (name, marker)


def test_mount_on_an_existing_app():
    from starlette.applications import Starlette

    app = Starlette()
    mount(app)
    with serve_app(app) as base:
        r = httpx.get(base + "debugger", follow_redirects=False)
        assert r.status_code in (301, 302, 307, 308)
        assert r.headers["location"].endswith("/debugger/")
        r = httpx.get(base + "debugger/")
        assert r.status_code == 200
        assert "jotkit token debugger" in r.text
        assert httpx.get(base + "debugger/audit_rules.json").json()["version"] == 1
        assert httpx.get(base + "debugger/nothing").status_code == 404
