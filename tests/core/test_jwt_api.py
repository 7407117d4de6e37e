"""encode / decode / Verifier / JWS API behaviour (RFC 7519 §7, RFC 7515 §5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

import jotkit
from jotkit import Key, KeySet
from jotkit import jwt as jwt_module
from jotkit._b64 import b64decode

HS = Key.from_secret(b"s" * 32, "HS256", kid="h1")
ES = Key.generate("ES256", kid="e1")
NOW = 1_700_000_000


def parts(token):
    header, payload, _ = token.split(".")
    return json.loads(b64decode(header)), json.loads(b64decode(payload))


def test_encode_sets_iat_exp_and_header():
    token = jotkit.encode({"sub": "u"}, ES, expires_in="15m", now=NOW)
    header, claims = parts(token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": "e1"}
    assert claims == {"sub": "u", "iat": NOW, "exp": NOW + 900}


def test_encode_registered_claim_arguments():
    token = jotkit.encode(
        {},
        HS,
        now=NOW,
        expires_in=timedelta(hours=1),
        not_before="1m",
        issuer="https://auth",
        audience=["api", "web"],
        subject="u1",
        jti="id-1",
        iat=False,
    )
    _, claims = parts(token)
    assert claims == {
        "exp": NOW + 3600,
        "nbf": NOW + 60,
        "iss": "https://auth",
        "aud": ["api", "web"],
        "sub": "u1",
        "jti": "id-1",
    }


def test_encode_random_jti_is_unique():
    ids = {parts(jotkit.encode({}, HS, jti=True))[1]["jti"] for _ in range(50)}
    assert len(ids) == 50 and all(len(i) >= 20 for i in ids)


def test_encode_converts_aware_datetimes_and_refuses_naive():
    when = datetime.fromtimestamp(NOW + 10, tz=UTC)
    _, claims = parts(jotkit.encode({"exp": when}, HS, now=NOW, not_before=when))
    assert claims["exp"] == NOW + 10 and claims["nbf"] == NOW + 10
    with pytest.raises(ValueError, match="naive"):
        jotkit.encode({"exp": datetime(2030, 1, 1)}, HS)


def test_encode_conflicting_arguments_are_caller_errors():
    with pytest.raises(ValueError, match="exp"):
        jotkit.encode({"exp": NOW}, HS, expires_in=60, now=NOW)
    with pytest.raises(ValueError, match="iss"):
        jotkit.encode({"iss": "a"}, HS, issuer="b")
    assert parts(jotkit.encode({"iss": "a"}, HS, issuer="a"))[1]["iss"] == "a"
    with pytest.raises(ValueError, match="alg"):
        jotkit.encode({}, HS, headers={"alg": "none"})
    with pytest.raises(TypeError):
        jotkit.encode([("a", 1)], HS)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        jotkit.encode({}, b"secret")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jotkit.encode({"x": float("nan")}, HS)


def test_encode_custom_headers_typ():
    header, _ = parts(jotkit.encode({}, HS, headers={"typ": "at+jwt", "cty": "x"}))
    assert header == {"alg": "HS256", "typ": "at+jwt", "kid": "h1", "cty": "x"}


@pytest.mark.parametrize(
    ("algorithms", "error"),
    [
        ("HS256", TypeError),
        ([], ValueError),
        (["none"], ValueError),
        (["HS1"], ValueError),
        (None, TypeError),
    ],
)
def test_algorithms_allow_list_misuse_is_a_caller_error(algorithms, error):
    token = jotkit.encode({}, HS, expires_in=60)
    with pytest.raises(error):
        jotkit.decode(token, HS, algorithms=algorithms)
    with pytest.raises(error):
        jotkit.Verifier(HS, algorithms=algorithms)


def test_algorithms_is_required():
    with pytest.raises(TypeError):
        jotkit.decode(jotkit.encode({}, HS, expires_in=60), HS)  # type: ignore[call-arg]


def test_alg_outside_allow_list_is_rejected_before_key_resolution():
    calls = []

    def resolver(header):
        calls.append(header)
        return HS

    token = jotkit.encode({}, HS, expires_in=60)
    with pytest.raises(jotkit.UnsupportedAlgorithm) as err:
        jotkit.decode(token, resolver, algorithms=["ES256"])
    assert err.value.code == "alg_not_allowed" and calls == []


def test_callable_key_resolver_gets_the_header():
    seen = []

    def resolver(header):
        seen.append(header["kid"])
        return KeySet([ES.public()])

    token = jotkit.encode({"sub": "x"}, ES, expires_in=60)
    assert jotkit.decode(token, resolver, algorithms=["ES256"])["sub"] == "x"
    assert seen == ["e1"]
    with pytest.raises(TypeError):
        jotkit.decode(token, lambda h: "nope", algorithms=["ES256"])
    with pytest.raises(TypeError):
        jotkit.decode(token, 42, algorithms=["ES256"])  # type: ignore[arg-type]


def test_decode_complete_returns_header_and_key():
    token = jotkit.encode({"sub": "x"}, ES, expires_in=60, headers={"typ": "at+jwt"})
    result = jotkit.decode_complete(
        token, KeySet([ES.public()]), algorithms=["ES256"], typ="at+jwt"
    )
    assert result.header["kid"] == "e1" and result.claims["sub"] == "x"
    assert result.key.kid == "e1" and not result.key.is_private


def test_bad_signature_is_invalid_signature():
    token = jotkit.encode({}, HS, expires_in=60)
    other = Key.from_secret(b"t" * 32, "HS256")
    with pytest.raises(jotkit.InvalidSignature) as err:
        jotkit.decode(token, other, algorithms=["HS256"])
    assert err.value.code == "bad_signature"


def test_verifier_uses_its_clock_and_policy():
    clock_now = [NOW]
    verifier = jotkit.Verifier(
        KeySet([ES.public()]),
        algorithms=["ES256"],
        issuer="iss",
        audience="api",
        typ="at+jwt",
        leeway=5,
        clock=lambda: clock_now[0],
    )
    token = jotkit.encode(
        {}, ES, now=NOW, expires_in=60, issuer="iss", audience="api", headers={"typ": "at+jwt"}
    )
    assert verifier.decode(token)["aud"] == "api"
    assert verifier.decode_complete(token).header["typ"] == "at+jwt"
    clock_now[0] = NOW + 64
    assert verifier.decode(token)  # within leeway
    clock_now[0] = NOW + 65
    with pytest.raises(jotkit.ExpiredToken):
        verifier.decode(token)
    assert verifier.decode(token, now=NOW) is not None
    assert verifier.policy.leeway == 5 and verifier.algorithms == frozenset({"ES256"})
    with pytest.raises(jotkit.InvalidType):
        verifier.decode(jotkit.encode({}, ES, now=NOW, expires_in=60, issuer="iss", audience="api"))


def test_verifier_header_cache_stays_correct_past_its_bound():
    verifier = jotkit.Verifier(HS, algorithms=["HS256"])
    for i in range(200):
        token = jotkit.encode({"i": i}, HS, expires_in=60, headers={"x": i})
        assert verifier.decode(token)["i"] == i
    # a cached header must not let another alg through
    es_verifier = jotkit.Verifier(KeySet([ES.public()]), algorithms=["ES256"])
    es_verifier.decode(jotkit.encode({}, ES, expires_in=60))
    with pytest.raises(jotkit.UnsupportedAlgorithm):
        es_verifier.decode(jotkit.encode({}, HS, expires_in=60))


def test_verifier_returns_a_fresh_header_dict():
    verifier = jotkit.Verifier(HS, algorithms=["HS256"])
    token = jotkit.encode({}, HS, expires_in=60)
    first = verifier.decode_complete(token).header
    first["alg"] = "none"
    assert verifier.decode_complete(token).header["alg"] == "HS256"


def test_jws_sign_and_verify_arbitrary_payload():
    token = jotkit.jws_sign(b"\x00binary\xff", ES, headers={"cty": "octet"})
    header, payload = jotkit.jws_verify(token, ES.public(), algorithms=["ES256"])
    assert payload == b"\x00binary\xff" and header["cty"] == "octet"
    with pytest.raises(TypeError):
        jotkit.jws_sign("text", ES)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        jotkit.jws_sign(b"x", ES, headers={"alg": "HS256"})


def test_decode_unverified_parses_but_checks_nothing():
    token = jotkit.encode({"sub": "x"}, HS, now=1, expires_in=1)
    header, claims = jotkit.decode_unverified(token)
    assert header["alg"] == "HS256" and claims["sub"] == "x"
    none_token = jotkit.unsafe_encode_none({"sub": "y"})
    assert jotkit.decode_unverified(none_token) == ({"alg": "none", "typ": "JWT"}, {"sub": "y"})
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode_unverified("a.b")
    with pytest.raises(jotkit.MalformedToken):
        jotkit.decode_unverified(jotkit.jws_sign(b"[1,2]", HS))


def test_unsafe_none_token_is_rejected_with_alg_none_code():
    none_token = jotkit.unsafe_encode_none({"sub": "y"}, headers={"alg": "HS256"})
    assert none_token.endswith(".")
    with pytest.raises(jotkit.UnsupportedAlgorithm) as err:
        jotkit.decode(none_token, HS, algorithms=["HS256"], require=())
    assert err.value.code == "alg_none"
    header_only = none_token.rstrip(".") + ".c2ln"
    with pytest.raises(jotkit.UnsupportedAlgorithm) as err:
        jotkit.decode(header_only, HS, algorithms=["HS256"], require=())
    assert err.value.code == "alg_none"


def test_payload_must_be_a_json_object_for_jwt():
    token = jotkit.jws_sign(b'"just a string"', HS)
    with pytest.raises(jotkit.MalformedToken, match="payload"):
        jotkit.decode(token, HS, algorithms=["HS256"], require=())


def test_bytes_tokens_are_accepted():
    token = jotkit.encode({"a": 1}, HS, expires_in=60)
    assert jotkit.decode(token.encode(), HS, algorithms=["HS256"])["a"] == 1
    assert jotkit.decode(bytearray(token.encode()), HS, algorithms=["HS256"])["a"] == 1


def test_error_codes_are_stable_strings():
    tree = {
        jotkit.InvalidToken: "invalid_token",
        jotkit.MalformedToken: "malformed",
        jotkit.UnsupportedAlgorithm: "alg_not_allowed",
        jotkit.KeyNotFound: "key_not_found",
        jotkit.KeyMismatch: "key_mismatch",
        jotkit.InvalidSignature: "bad_signature",
        jotkit.InvalidType: "invalid_typ",
        jotkit.InvalidClaim: "invalid_claim",
        jotkit.MissingClaim: "missing_claim",
        jotkit.ExpiredToken: "expired",
        jotkit.ImmatureToken: "not_yet_valid",
        jotkit.TokenTooOld: "too_old",
        jotkit.InvalidIssuer: "invalid_issuer",
        jotkit.InvalidAudience: "invalid_audience",
        jotkit.InvalidSubject: "invalid_subject",
        jotkit.RevokedToken: "revoked",
        jotkit.InvalidKey: "invalid_key",
        jotkit.JWKSError: "jwks_fetch_failed",
    }
    for cls, code in tree.items():
        assert cls.code == code
        assert issubclass(cls, jotkit.JotkitError)
    assert issubclass(jotkit.ExpiredToken, jotkit.InvalidToken)
    assert issubclass(jotkit.InvalidKey, ValueError)
    err = jotkit.MalformedToken("bad", code="token_too_large")
    assert err.code == "token_too_large" and err.message == "bad" and "token_too_large" in repr(err)


def test_public_facade_all_is_complete():
    exported = set(jotkit.__all__)
    public = {
        name
        for name, value in vars(jotkit).items()
        if not name.startswith("_")
        and not isinstance(value, type(jotkit))  # submodules are not API names
        and name not in {"annotations", "TYPE_CHECKING", "Any"}
    }
    assert public <= exported, public - exported
    for name in exported:
        assert getattr(jotkit, name) is not None


@pytest.mark.parametrize(
    "payload",
    [rb'{"sub":"\ud800"}', rb'{"\udc00":1}', rb'{"a":["x",{"b":"\uDBFF"}]}'],
)
def test_lone_surrogates_are_malformed_rfc7493_2_1(payload):
    token = jotkit.jws_sign(payload, HS)
    with pytest.raises(jotkit.MalformedToken, match="surrogate"):
        jotkit.decode(token, HS, algorithms=["HS256"], require=())


def test_paired_surrogates_and_escapes_are_fine():
    token = jotkit.jws_sign(rb'{"sub":"\ud83d\ude00 \u00e9"}', HS)
    assert jotkit.decode(token, HS, algorithms=["HS256"], require=())["sub"] == "\U0001f600 é"


def test_subclasses_of_key_and_keyset_are_accepted():
    class MyKeySet(KeySet):
        pass

    token = jotkit.encode({"sub": "x"}, ES, expires_in=60)
    assert jotkit.decode(token, MyKeySet([ES.public()]), algorithms=["ES256"])["sub"] == "x"
    resolved = jotkit.decode(token, lambda header: MyKeySet([ES.public()]), algorithms=["ES256"])
    assert resolved["sub"] == "x"


# --------------------------------------------------------------------------- one policy path

_EXPIRED = jotkit.encode({"sub": "u"}, HS, now=NOW - 3600, expires_in=60, issuer="i", audience="a")
_FRESH = jotkit.encode(
    {"sub": "u"},
    HS,
    now=NOW - 10,
    expires_in=60,
    issuer="i",
    audience="a",
    headers={"typ": "at+jwt"},
)
_OPTIONS = [
    ({}, _FRESH),
    ({}, _EXPIRED),
    ({"leeway": float("nan")}, _EXPIRED),
    ({"leeway": float("inf")}, _EXPIRED),
    ({"leeway": float("-inf")}, _EXPIRED),
    ({"leeway": -1}, _FRESH),
    ({"leeway": 10**400}, _EXPIRED),
    ({"leeway": 1e300}, _EXPIRED),
    ({"leeway": "inf"}, _EXPIRED),
    ({"leeway": "nan"}, _EXPIRED),
    ({"leeway": "1e400"}, _EXPIRED),
    ({"leeway": "2h"}, _EXPIRED),
    ({"leeway": "bogus"}, _FRESH),
    ({"leeway": True}, _FRESH),
    ({"leeway": None}, _FRESH),
    ({"leeway": timedelta(hours=2)}, _EXPIRED),
    ({"leeway": timedelta(seconds=-1)}, _FRESH),
    ({"max_age": float("nan")}, _FRESH),
    ({"max_age": float("inf")}, _FRESH),
    ({"max_age": -5}, _FRESH),
    ({"max_age": "5s"}, _FRESH),
    ({"max_age": "1m"}, _FRESH),
    ({"issuer": "i", "audience": "a"}, _FRESH),
    ({"issuer": "x"}, _FRESH),
    ({"issuer": []}, _FRESH),
    ({"issuer": [5]}, _FRESH),
    ({"issuer": 5}, _FRESH),
    ({"audience": ["a", "b"]}, _FRESH),
    ({"audience": []}, _FRESH),
    ({"audience": b"a"}, _FRESH),
    ({"subject": "u"}, _FRESH),
    ({"subject": "v"}, _FRESH),
    ({"subject": 5}, _FRESH),
    ({"require": "exp"}, _FRESH),
    ({"require": ("exp", "jti")}, _FRESH),
    ({"require": [5]}, _FRESH),
    ({"require": ()}, _FRESH),
    ({"typ": "at+jwt"}, _FRESH),
    ({"typ": "application/AT+JWT"}, _FRESH),
    ({"typ": "JWT"}, _FRESH),
    ({"typ": 5}, _FRESH),
    ({"algorithms": []}, _FRESH),
    ({"algorithms": ["none"]}, _FRESH),
    ({"algorithms": "HS256"}, _FRESH),
    ({"algorithms": ["ES256"]}, _FRESH),
    ({"max_size": 10}, _FRESH),
    ({"max_size": 0}, _FRESH),
    ({"max_size": -1}, _FRESH),
    ({"max_size": "big"}, _FRESH),
    ({"max_size": 1.5}, _FRESH),
    ({"key": "not a key"}, _FRESH),
    ({"key": b"s" * 32}, _FRESH),
]


def _outcome(call):
    try:
        claims = call()
    except jotkit.InvalidToken as exc:
        return ("rejected", type(exc).__name__, exc.code)
    except (TypeError, ValueError) as exc:
        return ("misuse", type(exc).__name__)
    return ("accepted", claims)


@pytest.mark.parametrize(
    ("options", "token"),
    _OPTIONS,
    ids=[
        f"{i}-{repr(o)[:40]}-{'fresh' if t is _FRESH else 'expired'}"
        for i, (o, t) in enumerate(_OPTIONS)
    ],
)
def test_decode_and_verifier_give_identical_outcomes_for_every_option(options, token):
    """The one-shot and the prepared API build the same ClaimsPolicy with the same checks, so
    the same options give the same outcome: accepted, or the same error type and code."""
    opts = {"algorithms": ["HS256"], **options}
    key = opts.pop("key", HS)
    one_shot = _outcome(lambda: jotkit.decode(token, key, now=NOW, **opts))
    complete = _outcome(lambda: jotkit.decode_complete(token, key, now=NOW, **opts).claims)
    prepared = _outcome(lambda: jotkit.Verifier(key, **opts).decode(token, now=NOW))
    assert one_shot == prepared == complete


@pytest.mark.parametrize(
    "leeway",
    [float("nan"), float("inf"), "inf", "nan", 10**400],
    ids=["nan", "inf", "s-inf", "s-nan", "e400"],
)
def test_leeway_nan_or_inf_cannot_accept_an_expired_token(leeway):
    """nan compares false with everything, and inf swallows any exp: both used to make
    jotkit.decode accept an expired token (Verifier refused them). Both are caller errors now."""
    with pytest.raises(ValueError):
        jotkit.decode(_EXPIRED, HS, algorithms=["HS256"], now=NOW, leeway=leeway)
    with pytest.raises(ValueError):
        jotkit.Verifier(HS, algorithms=["HS256"], leeway=leeway)


def test_decode_and_verifier_build_the_policy_through_claims_policy_create(monkeypatch):
    """One constructor for the policy, one (compiled) check function, for both APIs."""
    from jotkit import claims as claims_module

    created: list[jotkit.ClaimsPolicy] = []
    checked: list[jotkit.ClaimsPolicy] = []
    create = claims_module.ClaimsPolicy.create.__func__  # type: ignore[attr-defined]
    compile_checks = claims_module._compile

    def spy_create(cls, **kw):
        created.append(create(cls, **kw))
        return created[-1]

    def spy_compile(policy):
        check = compile_checks(policy)

        def spy_check(header, payload, now):
            checked.append(policy)
            return check(header, payload, now)

        return spy_check

    monkeypatch.setattr(claims_module.ClaimsPolicy, "create", classmethod(spy_create))
    monkeypatch.setattr(claims_module, "_compile", spy_compile)
    jwt_module._prepared_cache.clear()  # decode reuses prepared options across calls
    jotkit.decode(_FRESH, HS, algorithms=["HS256"], now=NOW, issuer="i", audience="a")
    jotkit.Verifier(HS, algorithms=["HS256"], issuer="i", audience="a").decode(_FRESH, now=NOW)
    assert len(created) == 2 and created[0] == created[1]
    assert checked == created
