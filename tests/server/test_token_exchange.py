"""Token exchange (RFC 8693) over real HTTP: the microservice case where service A holds a
user's access token and gets a narrower one for service B, naming itself in ``act``.
Regression tests are named after the attack they prevent (RFC 8693 §5)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import jotkit
from integrations.polling import wait_until
from jotkit.integrations import BearerError, TokenVerifier
from jotkit.server.oauth.clients import TOKEN_EXCHANGE
from jotkit.server.oauth.exchange import ACCESS_TOKEN_TYPE

from .harness import Server, bearer, login
from .oauth_util import Registered, exchange, make_code, register

ISSUER = "http://jotkit.test"
SVC_A = "https://a.example"
SVC_B = "https://b.example"
SVC_C = "https://c.example"
RS1 = httpx.BasicAuth("rs1", "rs1-secret")
SCOPES = ("openid", "orders:read", "orders:write")


def _error(r: httpx.Response, error: str, status: int = 400) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert body["error"] == error, body
    assert r.headers["cache-control"] == "no-store"
    return body


def _service(server: Server, name: str, audience: str, *targets: str,
             scopes: tuple[str, ...] = (), actors: tuple[str, ...] = ()) -> Registered:
    """A service client: it receives tokens for ``audience`` and may exchange them for
    ``targets``; it also has client credentials (its own token, an ``actor_token``)."""
    return register(server, name, grant_types=(TOKEN_EXCHANGE, "client_credentials"),
                    default_audience=audience, exchange_audiences=targets,
                    exchange_scopes=scopes, exchange_actors=actors)


def _user_token(server: Server, c: httpx.Client, scope: tuple[str, ...] = SCOPES,
                resource: str = SVC_A) -> str:
    """An access token for ``resource`` from the code flow of a web app (a user session)."""
    web = register(server, f"web-{secrets.token_hex(3)}", resources=(SVC_A, SVC_B, SVC_C))
    code, verifier = make_code(server, web, scope=scope, resource=(resource,))
    r = exchange(c, web, code, verifier)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _exchange(c: httpx.Client, client: Registered, subject: str, **extra: str) -> httpx.Response:
    data = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject,
            "subject_token_type": ACCESS_TOKEN_TYPE}
    data.update(extra)
    return c.post("/oauth/token", data=data, auth=client.basic)


def _claims(c: httpx.Client, server: Server, token: str, audience: str) -> dict[str, Any]:
    keys = jotkit.KeySet.from_jwks(c.get("/.well-known/jwks.json").json())
    return jotkit.Verifier(keys, algorithms=["ES256"], issuer=ISSUER, audience=audience,
                           typ="at+jwt").decode(token, now=server.clock.now())


def _introspect(c: httpx.Client, token: str) -> dict[str, Any]:
    r = c.post("/oauth/introspect", data={"token": token}, auth=RS1)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_token_exchange_issues_a_narrower_delegated_token_for_the_audience(server):
    a = _service(server, "svc-a", SVC_A, SVC_B, scopes=("orders:read",))
    with server.client() as c:
        subject = _user_token(server, c)
        r = _exchange(c, a, subject, audience=SVC_B)
        assert r.status_code == 200, r.text
        assert r.headers["cache-control"] == "no-store"
        body = r.json()
        assert body["issued_token_type"] == ACCESS_TOKEN_TYPE  # RFC 8693 §2.2.1
        assert body["token_type"] == "Bearer" and "refresh_token" not in body
        assert body["scope"] == "orders:read"  # subject ∩ policy
        before = _claims(c, server, subject, SVC_A)
        after = _claims(c, server, body["access_token"], SVC_B)
        assert after["sub"] == before["sub"] and after["sid"] == before["sid"]
        assert after["auth_time"] == before["auth_time"]
        assert after["client_id"] == a.id and after["act"] == {"sub": a.id}  # RFC 8693 §4.1
        assert after["scope"] == "orders:read" and after["exp"] <= before["exp"]
        assert after["jti"] != before["jti"]
        # the service's own verification reports the actor (RFC 7662 §2.2 + RFC 8693 §4.1)
        seen = _introspect(c, body["access_token"])
        assert seen["active"] is True and seen["act"] == {"sub": a.id}
        assert seen["aud"] == SVC_B
        # another library verifies it through the JWKS (PyJWT)
        jwk = pyjwt.PyJWKSet.from_dict(c.get("/.well-known/jwks.json").json())
        kid = pyjwt.get_unverified_header(body["access_token"])["kid"]
        key = next(k for k in jwk.keys if k.key_id == kid)
        peer = pyjwt.decode(body["access_token"], key, algorithms=["ES256"], audience=SVC_B,
                            issuer=ISSUER, options={"verify_exp": False, "verify_iat": False})
        assert peer["act"] == {"sub": a.id} and peer["sub"] == before["sub"]
        # discovery lists the grant
        meta = c.get("/.well-known/openid-configuration").json()
        assert TOKEN_EXCHANGE in meta["grant_types_supported"]


def test_token_exchange_with_a_dpop_proof_binds_the_exchanged_token(server):
    """RFC 9449 §5 holds for every grant: a proof on the exchange request binds the new token
    to the calling service's key (``cnf.jkt``, ``token_type`` DPoP); without one it is a
    bearer token as above."""
    from jotkit import dpop

    a = _service(server, "svc-a-dpop", SVC_A, SVC_B, scopes=("orders:read",))
    key = jotkit.Key.generate("ES256")
    with server.client() as c:
        subject = _user_token(server, c)
        proof = dpop.proof(key, "POST", f"{ISSUER}/oauth/token", now=server.clock.now())
        data = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject,
                "subject_token_type": ACCESS_TOKEN_TYPE, "audience": SVC_B}
        r = c.post("/oauth/token", data=data, auth=a.basic, headers={"DPoP": proof})
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "DPoP"
        claims = _claims(c, server, r.json()["access_token"], SVC_B)
        assert claims["cnf"] == {"jkt": key.thumbprint()} and claims["act"] == {"sub": a.id}
        seen = _introspect(c, r.json()["access_token"])
        assert seen["token_type"] == "DPoP" and seen["cnf"] == {"jkt": key.thumbprint()}


def test_token_exchange_asking_for_wider_scopes_is_refused(server):
    a = _service(server, "svc-a", SVC_A, SVC_B, scopes=("orders:read",))
    open_policy = _service(server, "svc-open", SVC_A, SVC_B)
    with server.client() as c:
        subject = _user_token(server, c, scope=("openid", "orders:read"))
        # wider than the policy (the subject holds it, the policy does not allow it)
        rich = _user_token(server, c)
        _error(_exchange(c, a, rich, audience=SVC_B, scope="orders:write"), "invalid_scope")
        # wider than the subject token (the policy would allow anything)
        _error(_exchange(c, open_policy, subject, audience=SVC_B, scope="orders:write"),
               "invalid_scope")
        _error(_exchange(c, open_policy, subject, audience=SVC_B, scope="admin"),
               "invalid_scope")
        # narrower is fine, and no scope means the subject's (within the policy)
        ok = _exchange(c, open_policy, rich, audience=SVC_B, scope="orders:read")
        assert ok.status_code == 200 and ok.json()["scope"] == "orders:read"
        default = _exchange(c, open_policy, subject, audience=SVC_B)
        assert default.json()["scope"] == "openid orders:read"


def test_token_exchange_by_an_unauthorised_actor_is_refused(server):
    c_client = register(server, "svc-c", grant_types=("client_credentials",))
    d_client = register(server, "svc-d", grant_types=("client_credentials",))
    a = _service(server, "svc-a", SVC_A, SVC_B, actors=(c_client.id,))
    with server.client() as c:
        def cc_token(client: Registered) -> str:
            r = c.post("/oauth/token", data={"grant_type": "client_credentials"},
                       auth=client.basic)
            assert r.status_code == 200, r.text
            return str(r.json()["access_token"])

        subject = _user_token(server, c)
        # svc-d is not in svc-a's exchange_actors: its token cannot name the actor
        _error(_exchange(c, a, subject, audience=SVC_B, actor_token=cc_token(d_client),
                         actor_token_type=ACCESS_TOKEN_TYPE), "invalid_request")
        # a user's token is not a client's: it cannot pose as the actor
        _error(_exchange(c, a, subject, audience=SVC_B, actor_token=_user_token(server, c),
                         actor_token_type=ACCESS_TOKEN_TYPE), "invalid_request")
        # actor_token without its type, a type without a token (RFC 8693 §2.1)
        _error(_exchange(c, a, subject, audience=SVC_B, actor_token=cc_token(a)),
               "invalid_request")
        _error(_exchange(c, a, subject, audience=SVC_B, actor_token_type=ACCESS_TOKEN_TYPE),
               "invalid_request")
        # the client's own token and an allowed actor's token are accepted
        own = _exchange(c, a, subject, audience=SVC_B, actor_token=cc_token(a),
                        actor_token_type=ACCESS_TOKEN_TYPE)
        assert own.status_code == 200, own.text
        assert _claims(c, server, own.json()["access_token"], SVC_B)["act"] == {"sub": a.id}
        allowed = _exchange(c, a, subject, audience=SVC_B, actor_token=cc_token(c_client),
                            actor_token_type=ACCESS_TOKEN_TYPE)
        assert allowed.status_code == 200, allowed.text
        claims = _claims(c, server, allowed.json()["access_token"], SVC_B)
        assert claims["act"] == {"sub": c_client.id} and claims["client_id"] == a.id
        # a client registered without the grant cannot exchange at all
        plain = {"grant_type": TOKEN_EXCHANGE, "subject_token": subject,
                 "subject_token_type": ACCESS_TOKEN_TYPE, "audience": SVC_B}
        _error(c.post("/oauth/token", data=plain, auth=d_client.basic), "unauthorized_client")


def test_token_exchange_for_an_unlisted_audience_is_refused(server):
    a = _service(server, "svc-a", SVC_A, SVC_B)
    with server.client() as c:
        subject = _user_token(server, c)
        _error(_exchange(c, a, subject, audience=SVC_C), "invalid_target")
        _error(_exchange(c, a, subject, resource=SVC_C), "invalid_target")
        _error(_exchange(c, a, subject, audience=SVC_B, resource=SVC_C), "invalid_target")
        _error(_exchange(c, a, subject, audience="jotkit"), "invalid_target")
        _error(_exchange(c, a, subject), "invalid_request")  # no target named
        ok = _exchange(c, a, subject, resource=SVC_B)
        assert ok.status_code == 200, ok.text


def test_token_exchange_of_a_token_meant_for_another_service_is_refused(server):
    """Service A may exchange only tokens issued for it: a token it saw for service C (a
    confused deputy, RFC 8693 §5) is refused."""
    a = _service(server, "svc-a", SVC_A, SVC_B)
    with server.client() as c:
        for_c = _user_token(server, c, resource=SVC_C)
        _error(_exchange(c, a, for_c, audience=SVC_B), "invalid_request")


def test_token_exchange_with_a_revoked_subject_token_is_refused(server):
    a = _service(server, "svc-a", SVC_A, SVC_B)
    first_party = _service(server, "svc-fp", "jotkit", SVC_B)
    with server.client() as c:
        subject = _user_token(server, c)
        # revoked by its client (RFC 7009)
        web_token = subject
        assert _exchange(c, a, web_token, audience=SVC_B).status_code == 200
        assert c.post("/oauth/revoke", data={"token": web_token}, auth=RS1).status_code == 200
        assert _introspect(c, web_token)["active"] is False
        _error(_exchange(c, a, web_token, audience=SVC_B), "invalid_request")
        # a logged-out first-party session
        tokens = login(c, "alice@example.com")
        assert _exchange(c, first_party, tokens["access_token"], audience=SVC_B).status_code \
            == 200
        assert c.post("/auth/logout", headers=bearer(tokens["access_token"])).status_code == 200
        _error(_exchange(c, first_party, tokens["access_token"], audience=SVC_B),
               "invalid_request")
        # an expired one
        fresh = login(c, "alice@example.com")["access_token"]
        server.clock.advance(server.settings.access_ttl + 1)
        _error(_exchange(c, first_party, fresh, audience=SVC_B), "invalid_request")


def _resource_server(server: Server, c: httpx.Client, audience: str) -> TokenVerifier:
    """A resource server verifying through the JWKS, subscribed to the revocation feed."""
    keys = jotkit.KeySet.from_jwks(c.get("/.well-known/jwks.json").json())
    return TokenVerifier(keys, issuer=ISSUER, audience=audience, algorithms=["ES256"],
                         revocations=f"{server.url}/oauth/revocations",
                         revocations_auth=("rs1", "rs1-secret"),
                         revocations_allow_insecure_http=True, revocations_fail_open=False,
                         clock=server.clock.now)


def _refused(verifier: TokenVerifier, token: str) -> bool:
    try:
        verifier.verify(token)
    except BearerError:
        return True
    return False


@pytest.mark.parametrize("how", ["logout", "logout-all", "users-disable"])
def test_exchanged_token_dies_with_the_subject_session(server, how):
    fp = _service(server, "svc-fp", "jotkit", SVC_B)
    b = _service(server, "svc-b", SVC_B, SVC_C)
    with server.client() as c:
        tokens = login(c, "alice@example.com")
        r = _exchange(c, fp, tokens["access_token"], audience=SVC_B)
        assert r.status_code == 200, r.text
        to_b = r.json()["access_token"]
        r = _exchange(c, b, to_b, audience=SVC_C)  # one more hop: A -> B -> C
        assert r.status_code == 200, r.text
        to_c = r.json()["access_token"]
        rs_b = _resource_server(server, c, SVC_B)
        rs_c = _resource_server(server, c, SVC_C)
        try:
            assert rs_b.revocations is not None and rs_b.revocations.wait_synced(20)
            assert rs_c.revocations is not None and rs_c.revocations.wait_synced(20)
            assert rs_b.verify(to_b)["act"] == {"sub": fp.id}
            assert rs_c.verify(to_c)["act"] == {"sub": b.id, "act": {"sub": fp.id}}
            if how == "logout":
                r = c.post("/auth/logout", headers=bearer(tokens["access_token"]))
            elif how == "logout-all":
                r = c.post("/auth/logout-all", headers=bearer(tokens["access_token"]))
            else:
                assert server.run(server.service.disable_user("alice@example.com")) is not None
            if how != "users-disable":
                assert r.status_code == 200, r.text
            for token in (to_b, to_c):
                assert _introspect(c, token)["active"] is False
            _error(_exchange(c, b, to_b, audience=SVC_C), "invalid_request")
            wait_until(lambda: _refused(rs_b, to_b) and _refused(rs_c, to_c),
                       "the resource servers to refuse the exchanged tokens", 20, interval=0.02)
        finally:
            for verifier in (rs_b, rs_c):
                verifier.close()


def test_token_exchange_chain_nests_the_prior_actor(server):
    a = _service(server, "svc-a", SVC_A, SVC_B)
    b = _service(server, "svc-b", SVC_B, SVC_C)
    with server.client() as c:
        subject = _user_token(server, c)
        r1 = _exchange(c, a, subject, audience=SVC_B)
        assert r1.status_code == 200, r1.text
        r2 = _exchange(c, b, r1.json()["access_token"], audience=SVC_C, scope="orders:read")
        assert r2.status_code == 200, r2.text
        claims = _claims(c, server, r2.json()["access_token"], SVC_C)
        assert claims["act"] == {"sub": b.id, "act": {"sub": a.id}}  # RFC 8693 §4.1
        assert claims["client_id"] == b.id and claims["scope"] == "orders:read"
        assert _introspect(c, r2.json()["access_token"])["act"]["act"] == {"sub": a.id}
        # B cannot exchange A's original token (not meant for B) nor widen the narrowed one
        _error(_exchange(c, b, subject, audience=SVC_C), "invalid_request")
        _error(_exchange(c, b, r2.json()["access_token"], audience=SVC_C,
                         scope="orders:write"), "invalid_scope")
        again = _exchange(c, b, r2.json()["access_token"], audience=SVC_C)
        assert again.status_code == 200 and again.json()["scope"] == "orders:read"


def test_token_exchange_chain_longer_than_the_limit_is_refused(server):
    """Re-exchanging a token again and again would grow ``act`` without bound."""
    from jotkit.server.oauth.exchange import MAX_ACT_DEPTH

    a = _service(server, "svc-a", SVC_A, SVC_A)
    with server.client() as c:
        token = _user_token(server, c)
        for _ in range(MAX_ACT_DEPTH):
            r = _exchange(c, a, token, audience=SVC_A)
            assert r.status_code == 200, r.text
            token = r.json()["access_token"]
        _error(_exchange(c, a, token, audience=SVC_A), "invalid_request")


def test_token_exchange_of_another_issuers_token_is_refused(server):
    a = _service(server, "svc-a", SVC_A, SVC_B)
    foreign = jotkit.Key.generate("ES256", kid="foreign")
    now = server.clock.now()
    base = {"sub": "u1", "aud": SVC_A, "client_id": a.id, "jti": "j1", "sid": "s1",
            "scope": "orders:read"}
    with server.client() as c:
        for issuer in ("https://evil.example", ISSUER):  # another issuer; our name, their key
            token = jotkit.encode({**base, "iss": issuer}, foreign, expires_in=300,
                                  headers={"typ": "at+jwt"}, now=now)
            _error(_exchange(c, a, token, audience=SVC_B), "invalid_request")


def test_id_token_or_refresh_token_posing_as_subject_token_is_refused(server):
    a = _service(server, "svc-a", SVC_A, SVC_B)
    web = register(server, "web-es", resources=(SVC_A,), id_token_signed_response_alg="ES256")
    with server.client() as c:
        code, verifier = make_code(server, web, scope=("openid", "offline_access"),
                                   resource=(SVC_A,))
        body = exchange(c, web, code, verifier).json()
        # an ES256 ID token (signed by the access-token key) lacks typ at+jwt; the refresh
        # token is opaque; neither is an access token of this server
        for impostor in (body["id_token"], body["refresh_token"]):
            _error(_exchange(c, a, impostor, audience=SVC_B), "invalid_request")
        # declaring another token type is refused too
        _error(_exchange(c, a, body["access_token"], audience=SVC_B,
                         subject_token_type="urn:ietf:params:oauth:token-type:id_token"),
               "invalid_request")
        _error(_exchange(c, a, body["access_token"], audience=SVC_B,
                         requested_token_type="urn:ietf:params:oauth:token-type:refresh_token"),
               "invalid_request")
        # a client-credentials token has no user session to act for
        cc = c.post("/oauth/token", data={"grant_type": "client_credentials"}, auth=a.basic)
        _error(_exchange(c, a, cc.json()["access_token"], audience=SVC_B), "invalid_request")


_PARAMS = ("subject_token", "subject_token_type", "actor_token", "actor_token_type",
           "requested_token_type", "audience", "resource", "scope")
_text = st.one_of(
    st.text(max_size=60),
    st.sampled_from([ACCESS_TOKEN_TYPE, SVC_B, "a.b.c", "e30.e30.", "orders:read", "", " "]),
)


def test_token_exchange_malformed_parameters_are_always_4xx(server):
    client = _service(server, "svc-h", SVC_A, SVC_B)

    @settings(max_examples=80, deadline=None)
    @given(params=st.dictionaries(st.sampled_from(_PARAMS), _text, max_size=6))
    def check(params: dict[str, str]) -> None:
        data = {"grant_type": TOKEN_EXCHANGE, **params}
        with server.client() as c:
            r = c.post("/oauth/token", data=data, auth=client.basic)
        assert 400 <= r.status_code < 500, (params, r.status_code, r.text)
        assert r.json()["error"] in {"invalid_request", "invalid_target", "invalid_scope"}

    check()
