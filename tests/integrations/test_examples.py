"""The example resource servers, in process, against a local JWKS server (fast check).

The full multi-process scenario with `jotkit serve` is test_microservices_e2e.py.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

import jotkit

from .apps import Client
from .conftest import ISSUER, JWKSServer
from .django_site import DjangoApp, configure

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"jotkit_example_{name}", EXAMPLES / name)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(EXAMPLES))


@pytest.mark.parametrize(
    ("script", "framework", "path", "admin_path"),
    [
        ("orders_api.py", "fastapi", "/orders", "/admin/orders"),
        ("flask_api.py", "flask", "/reports", "/admin/reports"),
        ("django_api.py", "django", "/invoices", "/admin/invoices"),
    ],
)
def test_example_api(jwks_server: JWKSServer, script, framework, path, admin_path):
    key = jotkit.Key.generate("ES256", kid="svc-1")
    jwks_server.publish(key)
    if framework == "django":
        configure()  # Django's settings are per process; the example's are overrides
    module = load(script)
    config_module = sys.modules["_config"]
    config = config_module.ResourceServerConfig(
        issuer=ISSUER, audience="jotkit", jwks_url=jwks_server.url
    )
    app = module.create_app(config)
    if framework == "django":
        app = DjangoApp(module.urlpatterns, app)
    client = Client(framework, app)

    def token(roles: list[str]) -> str:
        return jotkit.encode(
            {"roles": roles, "email": "a@example.com"},
            key,
            expires_in="5m",
            issuer=ISSUER,
            audience="jotkit",
            subject="u1",
            headers={"typ": "at+jwt"},
        )  # the example apps use the real clock

    user = token(["user"])
    assert client.get("/health").status == 200
    reply = client.get(path, token=user)
    assert reply.status == 200, reply.body
    assert reply.body["sub"] == "u1"
    assert client.get(path).status == 401
    assert client.get(admin_path, token=user).status == 403
    assert client.get(admin_path, token=token(["user", "admin"])).status == 200


def test_example_config_from_env(monkeypatch):
    load("orders_api.py")
    config_module = sys.modules["_config"]
    monkeypatch.setenv("JOTKIT_RS_ISSUER", "https://auth.example.com")
    monkeypatch.setenv("JOTKIT_RS_INTROSPECTION_URL", "https://auth.example.com/oauth/introspect")
    monkeypatch.setenv("JOTKIT_RS_CLIENT_ID", "orders")
    monkeypatch.setenv("JOTKIT_RS_CLIENT_SECRET", "s")
    monkeypatch.setenv("JOTKIT_RS_PORT", "9999")
    config = config_module.ResourceServerConfig.from_env(default_port=8001)
    assert config.port == 9999
    verifier = config.verifier()
    assert verifier.introspection is not None
    assert verifier.introspection.client_id == "orders"
    assert verifier.key.url == "https://auth.example.com/.well-known/jwks.json"
    monkeypatch.delenv("JOTKIT_RS_CLIENT_SECRET")
    with pytest.raises(SystemExit):
        config_module.ResourceServerConfig.from_env(default_port=8001).verifier()
