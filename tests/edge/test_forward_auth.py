"""``jotkit forward-auth`` in process: the ASGI app over a real JWKS server, its config file.

The gateway tests (test_gateways.py) run the same app as a subprocess behind nginx and Caddy.
"""

from __future__ import annotations

import asyncio
import base64
import json
import queue
import re
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import prometheus_client
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jotkit
import jotkit.dpop
from jotkit.cli import main
from jotkit.edge import ForwardAuthConfigError, load_config, normalize_path
from jotkit.edge.forward_auth import ForwardAuthApp, build_verifier
from jotkit.integrations import TokenVerifier

from .conftest import AUDIENCE, ISSUER, _Server

RULES = """
[[paths]]
prefix = "/admin/"
roles = ["admin"]

[[paths]]
prefix = "/admin/reports/"
scopes = ["reports:read"]
roles = ["admin", "auditor"]
"""


def _call(app: ForwardAuthApp, headers: list[tuple[bytes, bytes]], path: str = "/",
          method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes]:
    """One HTTP request through the raw ASGI interface (any header bytes, as a socket allows)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": headers, "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 9091)}
    asyncio.run(app(scope, receive, send))
    start, body = sent
    return start["status"], dict(start["headers"]), body["body"]


@pytest.fixture(scope="module")
def app(jwks_url: str, tmp_path_factory: pytest.TempPathFactory) -> ForwardAuthApp:
    config_file = tmp_path_factory.mktemp("fa") / "forward-auth.toml"
    config_file.write_text(f'jwks_url = "{jwks_url}"\nrequire_scopes = ["orders:read"]\n' + RULES)
    config = load_config(config_file, issuer=ISSUER, audience=AUDIENCE,
                         claim_headers=["email=X-Auth-Email", "tenant=X-Auth-Tenant"])
    return ForwardAuthApp(config)


def _bearer(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"Bearer " + token.encode())]


def test_valid_token_answers_the_verified_identity(app, mint) -> None:
    token = mint(sub="alice", scope="orders:write orders:read", roles=["staff", "admin"],
                 email="alice@example.com", tenant=42)
    status, headers, body = _call(app, _bearer(token), path="/anything")
    assert status == 200
    assert body == b""
    assert headers[b"x-auth-subject"] == b"alice"
    assert headers[b"x-auth-scope"] == b"orders:read orders:write"
    assert headers[b"x-auth-roles"] == b"admin,staff"
    assert headers[b"x-auth-email"] == b"alice@example.com"
    assert headers[b"x-auth-tenant"] == b"42"
    packed = headers[b"x-auth-claims"].decode()
    claims = json.loads(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
    assert claims == jotkit.decode_unverified(token)[1]
    # a claim the token lacks: an empty value, which replaces a client-sent one in the proxy
    status, headers, _ = _call(app, _bearer(mint(scope="orders:read")))
    assert status == 200
    assert headers[b"x-auth-email"] == b""


def test_missing_invalid_and_expired_tokens_get_a_bearer_challenge(app, mint) -> None:
    status, headers, body = _call(app, [])
    assert status == 401
    assert headers[b"www-authenticate"] == b"Bearer"  # RFC 6750 §3.1: no error code
    assert json.loads(body)["reason"] == "missing_token"
    stranger = jotkit.Key.generate("ES256", kid="fa-1")
    cases = {
        "expired": mint(scope="orders:read", exp=int(time.time()) - 60),
        "bad_signature": mint(scope="orders:read", key=stranger),
        "malformed": "not.a.jwt",
    }
    for reason, token in cases.items():
        status, headers, body = _call(app, _bearer(token))
        assert status == 401, reason
        assert headers[b"www-authenticate"].startswith(b'Bearer error="invalid_token"'), reason
        assert json.loads(body)["reason"] == reason
    wrong_aud = mint(scope="orders:read", audience="billing")
    status, _, body = _call(app, _bearer(wrong_aud))
    assert (status, json.loads(body)["reason"]) == (401, "invalid_audience")


def test_a_malformed_header_is_401_not_400(app, mint) -> None:
    """nginx turns any auth answer but 2xx/401/403 into a 500 of its own."""
    for value in (b"Bearer", b"Bearer a b", b"Bearer \xff\xfe", b"Basic dXNlcjpwdw=="):
        status, headers, _ = _call(app, [(b"authorization", value)])
        assert status == 401, value
    token = mint(scope="orders:read").encode()
    status, headers, _ = _call(app, [(b"authorization", b"Bearer " + token),
                                     (b"authorization", b"Bearer " + token)])
    assert status == 401
    assert b'error="invalid_request"' in headers[b"www-authenticate"]


def test_missing_scope_or_role_is_403_insufficient_scope(app, mint) -> None:
    status, headers, _ = _call(app, _bearer(mint(scope="orders:write")))
    assert status == 403
    assert b'error="insufficient_scope"' in headers[b"www-authenticate"]
    assert b'scope="orders:read"' in headers[b"www-authenticate"]
    staff = mint(scope="orders:read reports:read", roles=["staff"])
    admin = mint(scope="orders:read", roles=["admin"])
    auditor = mint(scope="orders:read reports:read", roles=["auditor"])
    uri = b"x-forwarded-uri"
    assert _call(app, [*_bearer(staff), (uri, b"/orders/1")])[0] == 200
    assert _call(app, [*_bearer(staff), (uri, b"/admin/users")])[0] == 403
    assert _call(app, [*_bearer(admin), (uri, b"/admin/users")])[0] == 200
    # the longest prefix wins: /admin/reports/ needs reports:read and admin or auditor
    assert _call(app, [*_bearer(admin), (uri, b"/admin/reports/q1")])[0] == 403
    assert _call(app, [*_bearer(auditor), (uri, b"/admin/reports/q1")])[0] == 200
    assert _call(app, [*_bearer(auditor), (uri, b"/admin/users")])[0] == 403
    # Envoy sends the original path as the auth request's own path
    assert _call(app, _bearer(staff), path="/admin/users")[0] == 403


@pytest.mark.parametrize("sneaky", [
    b"/x/../admin/users", b"/%61dmin/users", b"//admin/users", b"/./admin/users",
    b"/admin/./users?role=staff", b"/%2Fadmin/users",
])
def test_dot_segments_and_escapes_cannot_bypass_a_path_rule(app, mint, sneaky) -> None:
    staff = mint(scope="orders:read", roles=["staff"])
    status, _, _ = _call(app, [*_bearer(staff), (b"x-original-uri", sneaky)])
    assert status == 403


def test_client_sent_uri_header_cannot_pick_a_laxer_rule(app, mint) -> None:
    """nginx sets X-Original-URI; the client adds its own X-Forwarded-Uri: refused."""
    staff = mint(scope="orders:read", roles=["staff"])
    headers = [*_bearer(staff), (b"x-forwarded-uri", b"/orders/"),
               (b"x-original-uri", b"/admin/users")]
    status, _, body = _call(app, headers)
    assert status == 403
    assert json.loads(body)["reason"] == "bad_uri"
    for bad in (b"admin", b"/a/../../etc", b"/%zz", b"/a%00b", b"/\x01"):
        assert _call(app, [*_bearer(staff), (b"x-forwarded-uri", bad)])[0] == 403, bad


def test_header_injection_through_claims_is_percent_encoded(app, mint) -> None:
    sub = "ålice\r\nX-Auth-Roles: admin"
    token = mint(sub=sub, scope="orders:read", roles=["a,b", "c d"], email="\u2028@x")
    status, headers, _ = _call(app, _bearer(token))
    assert status == 200
    for value in headers.values():
        assert all(0x20 <= c < 0x7F for c in value), value
    assert unquote(headers[b"x-auth-subject"].decode()) == sub
    assert [unquote(r) for r in headers[b"x-auth-roles"].decode().split(",")] == ["a,b", "c d"]
    assert unquote(headers[b"x-auth-email"].decode()) == "\u2028@x"


_HEADER_NAMES = st.sampled_from([b"authorization", b"x-forwarded-uri", b"x-original-uri",
                                 b"x-forwarded-method", b"cookie", b"x-auth-subject"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(_HEADER_NAMES, st.binary(max_size=300)), max_size=6),
       method=st.sampled_from(["GET", "HEAD", "POST", "BREW"]))
def test_garbage_headers_never_get_a_5xx(app, headers, method) -> None:
    status, response, _ = _call(app, headers, method=method)
    assert status in (401, 403)  # garbage is never a valid token, and never a 5xx
    assert b"www-authenticate" in response


def test_an_unreachable_jwks_is_503_with_retry_after(mint) -> None:
    config = load_config(jwks_url="http://127.0.0.1:9/jwks.json", issuer=ISSUER,
                         audience=AUDIENCE)
    status, headers, _ = _call(ForwardAuthApp(config), _bearer(mint()))
    assert status == 503
    assert headers[b"retry-after"] == b"5"


def test_revocations_need_the_feed_client_credentials(jwks_url) -> None:
    feed = "http://127.0.0.1:1/oauth/revocations"
    with pytest.raises(ForwardAuthConfigError, match="client credentials"):
        load_config(jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE, revocations=feed)
    with pytest.raises(ForwardAuthConfigError, match="without --revocations"):
        load_config(jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE,
                    revocations_client_id="rs", revocations_client_secret="s")
    config = load_config(jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE, revocations=feed,
                         revocations_client_id="rs", revocations_client_secret="s3cret",
                         revocations_fail_open=False)
    assert "s3cret" not in repr(config)
    verifier = build_verifier(config)
    try:
        assert verifier.revocations is not None
        assert (verifier.revocations.url, verifier.revocations.fail_open) == (feed, False)
    finally:
        verifier.close()


class _Feed:
    """A revocation feed (Server-Sent Events) whose events the test pushes."""

    def __init__(self) -> None:
        self.events: queue.Queue[bytes] = queue.Queue()
        self.auth: list[str | None] = []
        feed = self

        def handle(request: Any) -> None:
            feed.auth.append(request.headers.get("Authorization"))
            request.send_response(200)
            request.send_header("Content-Type", "text/event-stream")
            request.send_header("Connection", "close")
            request.end_headers()
            request.wfile.write(b'id: 0\nevent: ready\ndata: {"cursor":0}\n\n')
            request.wfile.flush()
            while not feed.closed:
                try:
                    chunk = feed.events.get(timeout=0.05)
                except queue.Empty:
                    continue
                request.wfile.write(chunk)
                request.wfile.flush()

        self.closed = False
        self.server = _Server(handle)
        self.url = f"http://127.0.0.1:{self.server.port}/oauth/revocations"

    def close(self) -> None:
        self.closed = True
        self.server.close()


def test_forward_auth_refuses_a_token_revoked_by_the_feed_even_when_memoised(jwks_url,
                                                                          mint) -> None:
    """A decision reused for ``decision_ttl`` must not outlive a revocation: a change of the
    deny-set sends the token back to the verifier, which refuses it (RFC 7009 §2, the
    issuer's revocation, enforced at the edge)."""
    feed = _Feed()
    config = load_config(jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE, revocations=feed.url,
                         revocations_client_id="rs", revocations_client_secret="secret",
                         decision_ttl=60)
    app = ForwardAuthApp(config)
    try:
        assert app.verifier.revocations is not None
        assert app.verifier.revocations.wait_synced(10)
        assert feed.auth[0] == "Basic " + base64.b64encode(b"rs:secret").decode()
        token = mint(jti="t-1")
        assert _call(app, _bearer(token))[0] == 200
        assert _call(app, _bearer(token))[0] == 200  # memoised for 60 s
        feed.events.put(b'id: 1\nevent: revocations\ndata: {"entries":[{"jti":"t-1","exp":'
                        + str(time.time() + 300).encode() + b"}]}\n\n")
        deadline = time.monotonic() + 10
        while app.verifier.revocations.deny_set.version == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        status, _, body = _call(app, _bearer(token))
        assert status == 401
        assert json.loads(body)["reason"] == "revoked"
        assert _call(app, _bearer(mint(jti="t-2")))[0] == 200  # others still pass
        metrics = prometheus_client.generate_latest(app.registry).decode()
        assert "jotkit_forward_auth_revocations_synced 1.0" in metrics
    finally:
        app.verifier.close()
        feed.close()


@pytest.mark.parametrize(("raw", "expected"), [
    ("/a/b", "/a/b"), ("/a/b/", "/a/b/"), ("/a/./b", "/a/b"), ("/a/../b", "/b"),
    ("/a/b/..", "/a/"), ("/a//b", "/a/b"), ("/%41", "/A"), ("/a?x=/../", "/a"),
    ("/a#f", "/a"), ("/..", None), ("a", None), ("", None), ("/%", None), ("/%c3%28", None),
    ("/%0a", None), ("/caf%C3%A9", "/café"),
])
def test_normalize_path_resolves_like_a_proxy_routes(raw, expected) -> None:
    assert normalize_path(raw) == expected


@pytest.mark.parametrize(("text", "message"), [
    ('bogus = 1', "unknown key(s) bogus"),
    ('[[paths]]\nprefix = "admin"\nroles = ["a"]', "must be a normalised absolute path"),
    ('[[paths]]\nprefix = "/a/../b/"\nroles = ["a"]', "must be a normalised absolute path"),
    ('[[paths]]\nprefix = "/a/"\nroles = ["a"]\n[[paths]]\nprefix = "/a/"\nroles = ["b"]',
     "appears twice"),
    ('[[paths]]\nprefix = "/a/"', "give scopes and/or roles"),
    ('[[paths]]\nprefix = "/a/"\nroles = "admin"\ncolour = 1', "unknown key(s) colour"),
    ('[[paths]]\nprefix = "/a/"\nroles = [1]', "paths[0].roles must be a list of strings"),
    ('[claim_headers]\nemail = "Set-Cookie"', "cannot carry a claim"),
    ('[claim_headers]\nemail = "X-Auth-Subject"', "cannot carry a claim"),
    ('[claim_headers]\nemail = "X Email"', "not a valid header name"),
    ('[claim_headers]\na = "X-A"\nb = "x-a"', "same header"),
    ('require_scopes = ["a b"]', "is not a scope or role name"),
    ('allow_insecure_http = "yes"', "must be true or false"),
    ('issuer = ', "not valid TOML"),
])
def test_config_file_mistakes_are_named(tmp_path: Path, text, message) -> None:
    path = tmp_path / "fa.toml"
    path.write_text(text)
    with pytest.raises(ForwardAuthConfigError) as info:
        load_config(path, jwks_url="https://a/j", issuer="https://a", audience="x")
    assert message in str(info.value)


def test_flags_override_the_file_and_claim_headers_merge(tmp_path: Path) -> None:
    path = tmp_path / "fa.toml"
    path.write_text('jwks_url = "https://a/jwks"\nissuer = "https://a"\naudience = "x"\n'
                    'require_scopes = ["s1"]\n[claim_headers]\nemail = "X-Email"\n')
    config = load_config(path, audience="y", require_scopes=["s2"],
                         claim_headers=["tenant=X-Tenant", "email=X-Mail"])
    assert (config.jwks_url, config.issuer, config.audience) == ("https://a/jwks", "https://a", "y")
    assert config.require_scopes == ("s2",)
    assert dict(config.claim_headers) == {"email": "X-Mail", "tenant": "X-Tenant"}
    with pytest.raises(ForwardAuthConfigError, match="--jwks-url is required"):
        load_config(issuer="https://a", audience="x")


@pytest.mark.parametrize(("args", "message"), [
    (["--issuer", "https://a", "--audience", "x"], "--jwks-url is required"),
    (["--jwks-url", "http://jwks.example/j", "--issuer", "https://a", "--audience", "x"],
     "https"),
    (["--jwks-url", "https://a/j", "--issuer", "https://a", "--audience", "x",
      "--claim-header", "email"], "expected CLAIM=Header-Name"),
    (["--config", "/nonexistent/fa.toml"], "cannot read"),
    (["--jwks-url", "https://a/j", "--issuer", "https://a", "--audience", "x",
      "--public-url", "https://api.example.com/v1"], "public_url"),
])
def test_cli_refuses_bad_flags_in_one_line(capsys, args, message) -> None:
    with pytest.raises(SystemExit) as info:
        main(["forward-auth", *args])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_the_toml_example_of_the_docs_loads_as_written(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "gateways.md").read_text()
    (block,) = re.findall(r"^```toml\n(.*?)^```$", text, re.M | re.S)
    path = tmp_path / "forward-auth.toml"
    path.write_text(block)
    config = load_config(path)
    assert config.audience == "orders"
    assert dict(config.claim_headers) == {"email": "X-Auth-Email"}
    assert config.rule_for("/admin/reports/q1").roles == ("admin", "auditor")  # type: ignore[union-attr]
    assert config.rule_for("/admin/users").roles == ("admin",)  # type: ignore[union-attr]
    assert config.rule_for("/orders/") is None


def test_a_reused_decision_never_outlives_the_token(issuer_key, mint) -> None:
    """The allow memo ends at ``exp`` (and after ``decision_ttl``), whatever comes first."""
    now = [time.time()]
    clock = lambda: now[0]  # noqa: E731
    config = load_config(jwks_url="https://unused.example/jwks", issuer=ISSUER,
                         audience=AUDIENCE, decision_ttl=30)
    verifier = TokenVerifier(issuer_key.public(), issuer=ISSUER, audience=AUDIENCE,
                             require=("exp", "sub"), clock=clock)
    app = ForwardAuthApp(config, verifier=verifier, clock=clock)
    token = mint(exp=int(now[0]) + 10)
    for _ in range(3):
        assert _call(app, _bearer(token))[0] == 200
    now[0] = int(now[0]) + 10  # exactly exp: refused (RFC 7519 §4.1.4)
    status, _, body = _call(app, _bearer(token))
    assert (status, json.loads(body)["reason"]) == (401, "expired")


def test_the_answer_does_not_depend_on_what_was_decided_before(app, mint) -> None:
    staff = mint(scope="orders:read", roles=["staff"])
    cases = [(b"/orders/1", 200), (b"/admin/x", 403), (b"/%zz", 403), (b"/orders/1", 200),
             (b"/admin/x", 403), (b"/%zz", 403)]
    for uri, expected in cases * 2:
        assert _call(app, [*_bearer(staff), (b"x-forwarded-uri", uri)])[0] == expected, uri
    both = [*_bearer(staff), (b"x-forwarded-uri", b"/orders/1"), (b"x-original-uri", b"/admin/x")]
    assert _call(app, both)[0] == 403  # after /orders/1 was allowed for the same token


def test_dpop_bound_token_sent_as_bearer_is_refused_by_forward_auth(app, mint) -> None:
    """RFC 9449 §7.2: a token bound to a key (``cnf.jkt``) is no bearer token; a thief who
    holds it without the key must not get through the gateway with ``Bearer``."""
    token = mint(sub="alice", scope="orders:read", cnf={"jkt": "x" * 43})
    for _ in range(2):  # and no remembered decision lets it through the second time
        status, headers, body = _call(app, _bearer(token), path="/anything")
        assert status == 401, body
        assert json.loads(body)["reason"] == "dpop_bound_token"
        assert b"x-auth-subject" not in headers


# ------------------------------------------------------------------- DPoP (RFC 9449)

PUBLIC = "https://api.example.com"


@pytest.fixture(scope="module")
def client_key() -> jotkit.Key:
    """The legitimate client's DPoP key (the token's ``cnf.jkt``)."""
    return jotkit.Key.generate("ES256")


def _forwarded(method: str = "GET", uri: str = "/orders/7?page=2", proto: str = "https",
               host: str = "api.example.com") -> list[tuple[bytes, bytes]]:
    """What the nginx snippet of docs/gateways.md sets on the auth subrequest."""
    return [(b"x-forwarded-method", method.encode()), (b"x-original-method", method.encode()),
            (b"x-forwarded-uri", uri.encode()), (b"x-original-uri", uri.encode()),
            (b"x-forwarded-proto", proto.encode()), (b"x-forwarded-host", host.encode())]


def _dpop(token: str, proof: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", b"DPoP " + token.encode()), (b"dpop", proof.encode())]


def _bound(mint, key: jotkit.Key, **claims: Any) -> str:
    return str(mint(sub="alice", scope="orders:read", cnf={"jkt": key.thumbprint()}, **claims))


def _dpop_refusal(status: int, headers: dict[bytes, bytes], body: bytes, reason: str) -> None:
    assert status == 401, body
    challenge = headers[b"www-authenticate"].decode()
    assert challenge.startswith('DPoP algs="'), challenge  # RFC 9449 §7.1
    assert "ES256" in challenge.split('"')[1].split()
    assert json.loads(body)["reason"] == reason
    assert b"x-auth-subject" not in headers


def test_dpop_bound_token_with_a_fresh_proof_passes_forward_auth(app, mint, client_key) -> None:
    token = _bound(mint, client_key, roles=["admin"])
    for method, uri in (("GET", "/orders/7?page=2"), ("POST", "/admin/users")):
        proof = jotkit.dpop.proof(client_key, method, PUBLIC + uri, access_token=token)
        status, headers, body = _call(app, _dpop(token, proof) + _forwarded(method, uri))
        assert status == 200, body
        assert headers[b"x-auth-subject"] == b"alice"
        assert headers[b"x-auth-scope"] == b"orders:read"


def test_dpop_proof_replayed_through_the_gateway_is_refused(app, mint, client_key) -> None:
    """RFC 9449 §11.1: a captured proof cannot be sent again, and an allowed DPoP request
    leaves no reusable decision behind (each proof is single-use)."""
    token = _bound(mint, client_key)
    proof = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token)
    assert _call(app, _dpop(token, proof) + _forwarded())[0] == 200
    _dpop_refusal(*_call(app, _dpop(token, proof) + _forwarded()), "dpop_replayed")
    # the same Authorization value right after an allowed request, with no proof at all
    no_proof = [(b"authorization", b"DPoP " + token.encode()), *_forwarded()]
    _dpop_refusal(*_call(app, no_proof), "dpop_malformed")


def test_dpop_proof_for_another_uri_or_method_is_refused(app, mint, client_key) -> None:
    """RFC 9449 §4.3 steps 8-9: ``htm``/``htu`` name the client's ORIGINAL request, which
    the gateway reports, not the auth subrequest (always a GET to /_jotkit_auth)."""
    token = _bound(mint, client_key)
    cases = {  # proof (method, url) -> the forwarded original request, the expected reason
        ("GET", PUBLIC + "/orders/7"): (_forwarded("DELETE"), "dpop_htm_mismatch"),
        ("GET", PUBLIC + "/orders/8"): (_forwarded(), "dpop_htu_mismatch"),
        ("GET", "https://evil.example.com/orders/7"): (_forwarded(), "dpop_htu_mismatch"),
        ("GET", "http://api.example.com/orders/7"): (_forwarded(), "dpop_htu_mismatch"),
        ("GET", PUBLIC + "/_jotkit_auth"): (_forwarded(), "dpop_htu_mismatch"),
    }
    for (method, url), (forwarded, reason) in cases.items():
        proof = jotkit.dpop.proof(client_key, method, url, access_token=token)
        _dpop_refusal(*_call(app, _dpop(token, proof) + forwarded, path="/_jotkit_auth"), reason)


def test_stolen_dpop_token_with_the_attackers_own_proof_is_refused(app, mint, client_key) -> None:
    """RFC 9449 §6.1/§7.1: the proof must be signed by the key of ``cnf.jkt``; and a proof
    of the right key made for another token (``ath``) does not carry a stolen one."""
    token = _bound(mint, client_key)
    attacker = jotkit.Key.generate("ES256")
    own = jotkit.dpop.proof(attacker, "GET", PUBLIC + "/orders/7", access_token=token)
    _dpop_refusal(*_call(app, _dpop(token, own) + _forwarded()), "dpop_key_mismatch")
    other = _bound(mint, client_key, jti="another")
    for_other = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=other)
    _dpop_refusal(*_call(app, _dpop(token, for_other) + _forwarded()), "dpop_ath_mismatch")
    stale = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token,
                              now=time.time() - 3600)
    _dpop_refusal(*_call(app, _dpop(token, stale) + _forwarded()), "dpop_iat_out_of_window")
    future = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token,
                               now=time.time() + 3600)
    _dpop_refusal(*_call(app, _dpop(token, future) + _forwarded()), "dpop_iat_out_of_window")


def test_dpop_token_errors_get_a_dpop_challenge(app, mint, client_key) -> None:
    """The token itself: ``invalid_token`` (RFC 6750 §3.1) in the DPoP scheme (RFC 9449 §7.1);
    an unbound token cannot use the DPoP scheme; a missing scope is still 403."""
    expired = _bound(mint, client_key, exp=int(time.time()) - 60)
    unbound = mint(sub="alice", scope="orders:read")
    for token, reason in ((expired, "expired"), (unbound, "dpop_unbound_token"),
                          ("not.a.jwt", "malformed")):
        proof = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token)
        status, headers, body = _call(app, _dpop(token, proof) + _forwarded())
        _dpop_refusal(status, headers, body, reason)
        assert 'error="invalid_token"' in headers[b"www-authenticate"].decode()
    staff = _bound(mint, client_key, roles=["staff"])
    proof = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/admin/x", access_token=staff)
    status, headers, _ = _call(app, _dpop(staff, proof) + _forwarded(uri="/admin/x"))
    assert status == 403
    assert headers[b"www-authenticate"].startswith(b'DPoP algs="')
    assert b'error="insufficient_scope"' in headers[b"www-authenticate"]


def test_no_credentials_next_to_forwarded_headers_get_a_plain_bearer_challenge(app) -> None:
    status, headers, _ = _call(app, _forwarded())
    assert (status, headers[b"www-authenticate"]) == (401, b"Bearer")


def test_dpop_without_forwarded_headers_is_401_not_500(app, mint, client_key) -> None:
    """A gateway that does not report the original request: refuse (fail closed), never
    guess it from the auth subrequest, never a 5xx."""
    token = _bound(mint, client_key)
    full = _forwarded()
    for missing in (b"x-forwarded-method", b"x-forwarded-uri", b"x-forwarded-proto",
                    b"x-forwarded-host"):
        partner = {b"x-forwarded-method": b"x-original-method",
                   b"x-forwarded-uri": b"x-original-uri"}.get(missing)
        headers = [(n, v) for n, v in full if n not in (missing, partner)]
        proof = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token)
        status, answer, body = _call(app, _dpop(token, proof) + headers)
        _dpop_refusal(status, answer, body, "dpop_no_forwarded_request")
        assert b'error="invalid_dpop_proof"' in answer[b"www-authenticate"]
    bad = {"proto": _forwarded(proto="ftp"), "host": _forwarded(host="api.example.com/x"),
           "hosts": _forwarded(host="a.example, b.example"), "uri": _forwarded(uri="/orders/7 x"),
           "method": _forwarded(method="G ET")}
    for headers in bad.values():
        proof = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token)
        _dpop_refusal(*_call(app, _dpop(token, proof) + headers), "dpop_bad_forwarded_request")


def test_client_sent_forwarded_copies_cannot_retarget_a_dpop_proof(jwks_url, mint,
                                                                   client_key) -> None:
    """A client adds its own X-Original-Method / X-Original-URI next to the gateway's: the
    values must agree, so a proof for another method or path is not accepted."""
    app = ForwardAuthApp(load_config(jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE))
    token = _bound(mint, client_key)
    origin = [(b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"api.example.com")]
    cases = (  # the gateway's headers, the client's copies
        ([(b"x-forwarded-method", b"DELETE"), (b"x-forwarded-uri", b"/orders/7")],
         [(b"x-original-method", b"GET")]),
        ([(b"x-forwarded-method", b"GET"), (b"x-forwarded-uri", b"/orders/9")],
         [(b"x-original-uri", b"/orders/7")]),
        ([(b"x-forwarded-method", b"GET"), (b"x-forwarded-uri", b"/orders/7")],
         [(b"x-forwarded-host", b"other.example")]),
    )
    for gateway, forged in cases:
        proof = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token)
        _dpop_refusal(*_call(app, _dpop(token, proof) + gateway + origin + forged),
                      "dpop_conflicting_forwarded")


def test_public_url_beats_a_forged_forwarded_host(jwks_url, mint, client_key) -> None:
    """With ``public_url`` the origin is configured: a proof captured at another server
    (``htu`` https://other.example/...) fails even if X-Forwarded-Host claims that host."""
    config = load_config(jwks_url=jwks_url, issuer=ISSUER, audience=AUDIENCE,
                         public_url="HTTPS://API.example.com:443/")
    assert config.public_url == PUBLIC
    app = ForwardAuthApp(config)
    token = _bound(mint, client_key)
    other = jotkit.dpop.proof(client_key, "GET", "https://other.example/orders/7",
                              access_token=token)
    headers = _dpop(token, other) + _forwarded(host="other.example")
    _dpop_refusal(*_call(app, headers), "dpop_htu_mismatch")
    good = jotkit.dpop.proof(client_key, "GET", PUBLIC + "/orders/7", access_token=token)
    no_origin = [(b"x-forwarded-method", b"GET"), (b"x-forwarded-uri", b"/orders/7")]
    assert _call(app, _dpop(token, good) + no_origin)[0] == 200  # proto/host not needed


@pytest.mark.parametrize("url", ["api.example.com", "https://api.example.com/v1",
                                 "https://u@api.example.com", "ftp://api.example.com",
                                 "https://api.example.com?x", "https://api.example.com:99999",
                                 "https://api example.com"])
def test_public_url_must_be_an_origin(url: str) -> None:
    with pytest.raises(ForwardAuthConfigError, match="public_url"):
        load_config(jwks_url="https://a.example/jwks", issuer=ISSUER, audience=AUDIENCE,
                    public_url=url)
