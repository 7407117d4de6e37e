"""docs/migrating-from-simplejwt.md runs as written: its blocks, in order, are one project.

The settings block configures Django (with the JWKS URL and issuer pointed at a local JWKS
server, every other key as written), the other blocks define the views, the user loader and
the URLs; then requests go through Django's test client. A fresh interpreter, since Django
settings and DRF's defaults are fixed once per process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "migrating-from-simplejwt.md"

SCRIPT = textwrap.dedent(
    """
    import http.server, json, re, sys, threading, types
    import jotkit

    doc = open(sys.argv[1], encoding="utf-8").read()
    blocks = re.findall(r"```python\\n(.*?)```", doc, re.S)
    key = jotkit.Key.generate("ES256", kid="k1")
    body = json.dumps(jotkit.KeySet([key.public()]).to_jwks()).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    issuer = "https://auth.test"

    project = types.ModuleType("docproject")
    sys.modules["docproject"] = project
    exec(compile(blocks[0], "settings block", "exec"), project.__dict__)
    documented = dict(project.JOTKIT)
    project.JOTKIT["JWKS_URL"] = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    project.JOTKIT["ISSUER"] = issuer

    import django
    from django.conf import settings
    settings.configure(
        **{k: v for k, v in vars(project).items() if k.isupper()},
        ROOT_URLCONF="docproject", ALLOWED_HOSTS=["testserver"], SECRET_KEY="doc-test",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    )
    django.setup()
    for number, block in enumerate(blocks[1:], 2):
        exec(compile(block, f"block {number}", "exec"), project.__dict__)

    from django.core.management import call_command
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.urls import path
    from jotkit.integrations.django import build_verifier

    call_command("migrate", verbosity=0)
    get_user_model().objects.create(username="user-1")

    class ModelMe(project.Me):
        authentication_classes = [project.ModelUserAuthentication]

    project.urlpatterns.append(path("model/me/", ModelMe.as_view()))

    def token(sub="user-1", **claims):
        return jotkit.encode(claims, key, expires_in="5m", issuer=issuer, audience="jotkit",
                             subject=sub, headers={"typ": "at+jwt"})

    client = Client()
    out = {}

    def call(name, url, tok=None):
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        resp = client.get(url, headers=headers)
        try:
            data = resp.json()
        except ValueError:
            data = None
        out[name] = [resp.status_code, resp.headers.get("WWW-Authenticate"),
                     resp.headers.get("Cache-Control"), data]

    call("me", "/api/me/", token())
    call("me_missing", "/api/me/")
    call("me_query_string", "/api/me/?access_token=" + token())
    call("invoices_scope", "/api/invoices/", token(scope="invoices:read"))
    call("invoices_admin", "/api/invoices/", token(roles=["admin"]))
    call("invoices_neither", "/api/invoices/", token(scope="other"))
    call("profile", "/profile/", token(roles=["user"]))
    call("profile_no_role", "/profile/", token())
    call("model_me", "/model/me/", token())
    call("model_me_unknown", "/model/me/", token(sub="nobody"))
    call("wrong_audience", "/api/me/", jotkit.encode({}, key, expires_in="5m", issuer=issuer,
         audience="other", subject="user-1", headers={"typ": "at+jwt"}))
    introspecting = build_verifier(project.JOTKIT_WITH_INTROSPECTION)
    out["introspection_url"] = introspecting.introspection.url
    out["documented_keys"] = sorted(documented)
    out["documented_jwks_url"] = documented["JWKS_URL"]
    print(json.dumps(out))
    """
)


def test_simplejwt_migration_page_runs_as_a_project(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(DOC)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["me"] == [200, None, None, {"sub": "user-1", "user": "TokenUser user-1"}]
    # IsAuthenticated (the page's default permission) without a token: DRF's NotAuthenticated,
    # with the Bearer challenge of JotkitAuthentication
    assert out["me_missing"][0] == 401
    assert out["me_missing"][1] == "Bearer"
    assert out["me_query_string"][:2] == [401, "Bearer"]  # RFC 6750 §2.3 is not supported
    assert out["invoices_scope"][0] == 200
    assert out["invoices_admin"][0] == 200
    status, challenge, cache, body = out["invoices_neither"]
    assert (status, cache) == (403, "no-store")
    assert challenge.startswith('Bearer error="insufficient_scope"')
    assert body["error"] == "insufficient_scope"
    assert out["profile"] == [200, None, None, {"sub": "user-1"}]
    assert out["profile_no_role"][0] == 403
    assert out["model_me"][0] == 200
    assert out["model_me"][3]["user"] == "user-1"  # the model user, not a TokenUser
    assert out["model_me_unknown"][0] == 401
    status, challenge, cache, body = out["wrong_audience"]
    assert (status, cache) == (401, "no-store")
    assert body == {
        "error": "invalid_token",
        "error_description": "The access token is not meant for this audience",
        "reason": "invalid_audience",
    }
    assert out["introspection_url"] == "https://auth.example.com/oauth/introspect"
    assert out["documented_jwks_url"] == "https://auth.example.com/.well-known/jwks.json"
    assert out["documented_keys"] == ["ALGORITHMS", "AUDIENCE", "ISSUER", "JWKS_URL", "LEEWAY"]


def test_page_is_linked_and_its_blocks_are_found():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    assert "migrating-from-simplejwt.md" in index
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert blocks[0].lstrip().startswith("# settings.py")
    assert len(blocks) == 5
