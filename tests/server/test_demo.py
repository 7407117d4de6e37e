"""Demo mode: the banner a user reads first and the mounted token debugger."""

from __future__ import annotations


def test_demo_mode_prints_credentials_and_serves_the_debugger(make_server):
    srv = make_server(demo=True)
    banner = srv.banner.getvalue()
    assert "demo@example.com" in banner
    assert f"{srv.settings.issuer}/debugger/" in banner
    with srv.client() as client:
        page = client.get("/debugger/")
        assert page.status_code == 200
        assert "text/html" in page.headers["content-type"]
        assert "default-src 'self'" in page.headers["content-security-policy"]
        password = banner.split("demo password  : ")[1].split()[0]
        login = client.post("/auth/login", json={"email": "demo@example.com", "password": password})
        assert login.status_code == 200, login.text
        assert login.json()["token_type"].lower() == "bearer"


def test_debugger_is_not_mounted_outside_demo_mode(make_server):
    srv = make_server()
    with srv.client() as client:
        assert client.get("/debugger/").status_code == 404
