"""The hot-path shortcuts agree with the general code they shortcut (hypothesis).

* :func:`jotkit.claims._compile` specialises a :class:`~jotkit.ClaimsPolicy` into a closure that
  accepts the usual token shape on its own; over unbounded claim sets and policies it must
  accept exactly what the general checks (:func:`check_typ` then ``_check_claims``) accept,
  and fail with the same error type and code.
* :func:`jotkit._json.loads_object` keeps the hook-free C parse only with a proof from the
  text that no member name repeats; over arbitrary JSON texts it must agree with the decoder
  that has the duplicate-member hook (RFC 7515 §5.2, RFC 8725 §3.3).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jotkit import _json, claims
from jotkit.errors import InvalidToken

NOW = 1_800_000_000.0
NAMES = ("exp", "nbf", "iat", "iss", "aud", "sub", "jti", "scope")
STRINGS = ("i", "i2", "a", "a2", "s", "", "https://issuer.example.com")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=int(NOW) - 400, max_value=int(NOW) + 400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=NOW - 400, max_value=NOW + 400),
    st.sampled_from(STRINGS),
    st.text(max_size=5),
)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner)
)
claim_sets = st.dictionaries(st.sampled_from(NAMES), values | st.sampled_from(STRINGS))
names = st.none() | st.sampled_from(STRINGS) | st.lists(st.sampled_from(STRINGS), min_size=1)
policies = st.builds(
    claims.ClaimsPolicy.create,
    issuer=names,
    audience=names,
    subject=st.none() | st.sampled_from(STRINGS),
    leeway=st.sampled_from([0, 0.5, 30, "1m"]),
    require=st.sampled_from([("exp",), (), ("exp", "sub"), ("iat",), ("jti", "exp")]),
    max_age=st.none() | st.sampled_from([0, 60, 300]),
    typ=st.none() | st.sampled_from(["JWT", "at+jwt"]),
)
headers = st.fixed_dictionaries(
    {"alg": st.just("HS256")},
    optional={"typ": st.sampled_from(["JWT", "application/at+JWT", "at+jwt", 7])},
)
nows = st.sampled_from([NOW, NOW - 0.5, NOW + 0.25]) | st.floats(NOW - 500, NOW + 500)


def _outcome(call: Any) -> tuple[str, str | None]:
    try:
        call()
    except InvalidToken as exc:
        return type(exc).__name__, exc.code
    return "accepted", None


def _general(policy: claims.ClaimsPolicy, header: Any, payload: Any, now: float) -> None:
    claims.check_typ(header, policy.typ)
    claims._check_claims(
        payload,
        now,
        policy.issuer,
        policy.audience,
        policy.subject,
        policy.leeway,
        policy.require,
        policy.max_age,
    )


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(policy=policies, header=headers, payload=claim_sets, now=nows)
def test_compiled_claims_checker_equals_the_general_checks(policy, header, payload, now):
    """No claim check is skipped or weakened by the specialised checker."""
    compiled = _outcome(lambda: policy.check(header, payload, now))
    general = _outcome(lambda: _general(policy, header, payload, now))
    assert compiled == general


USUAL = {"iss": "i", "aud": "a", "sub": "s", "iat": int(NOW) - 10, "exp": int(NOW) + 10}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"exp": int(NOW)}, "expired"),
        ({"exp": True}, "invalid_claim"),
        ({"exp": 10**400}, "invalid_claim"),
        ({"iat": int(NOW) + 1}, "iat_in_future"),
        ({"iss": "evil"}, "invalid_issuer"),
        ({"aud": "other"}, "invalid_audience"),
        ({"aud": ["other", 1]}, "invalid_claim"),
        ({"sub": 5}, "invalid_claim"),
        ({"jti": 5}, "invalid_claim"),
        ({"nbf": int(NOW) + 5}, "not_yet_valid"),
    ],
)
def test_usual_token_shape_with_one_bad_claim_is_refused_by_the_fast_check(change, code):
    """The shape the compiled checker accepts on its own, with one claim wrong each time."""
    policy = claims.ClaimsPolicy.create(issuer="i", audience="a")
    policy.check({}, dict(USUAL), NOW)  # the unchanged shape is accepted
    with pytest.raises(InvalidToken) as caught:
        policy.check({}, {**USUAL, **change}, NOW)
    assert caught.value.code == _outcome(lambda: _general(policy, {}, {**USUAL, **change}, NOW))[1]
    assert caught.value.code == code


def _hooked(data: bytes) -> tuple[str, Any]:
    try:
        text = data.decode("utf-8")
        obj = _json._decode(text)
    except (ValueError, RecursionError) as exc:
        return "error", type(exc).__name__
    if type(obj) is not dict:
        return "error", "not an object"
    return "ok", obj


def _fast(data: bytes) -> tuple[str, Any]:
    try:
        return "ok", _json.loads_object(data)
    except ValueError:
        return "error", None


json_texts = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=':{}" \t\\a', max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(st.tuples(st.text(alphabet=':{"a b', max_size=3), inner), max_size=4)
    ),
)


def _render(value: Any, sep: str) -> str:
    """JSON text that may repeat member names (a list of pairs renders as an object)."""
    if isinstance(value, list) and all(isinstance(p, tuple) for p in value) and value:
        return "{" + ",".join(f"{json.dumps(k)}{sep}:{_render(v, sep)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_render(v, sep) for v in value) + "]"
    return json.dumps(value)


@settings(max_examples=1500, deadline=None, derandomize=True)
@given(
    members=st.lists(st.tuples(st.sampled_from(["a", "b", ":", "a:", ""]), json_texts), max_size=6),
    sep=st.sampled_from(["", " ", "\t", "\n", "  "]),
)
def test_json_fast_path_equals_the_duplicate_hook_decoder(members, sep):
    """Duplicate member names are refused on the fast path too, at any depth and spacing."""
    text = _render([*members, ("z", 0)], sep).encode()
    fast, hooked = _fast(text), _hooked(text)
    assert fast[0] == hooked[0]
    if fast[0] == "ok":
        assert fast[1] == hooked[1]


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1,"a":2}',
        '{"a":1,"a" :2}',
        '{"a":1,"a"\t:2}',
        '{"a":":x","a":2}',
        '{"a":{"b":1,"b":2}}',
        '{"a":[{"b":1,"b":2}]}',
        '{"a":1,"\\u0061":2}',
        '{"x":"\\":","a":1,"a":2}',
        '{"a" :1,"b":":","a":3}',
    ],
)
def test_duplicate_member_smuggled_past_the_fast_path_is_refused(text):
    """Each text tries to make the '":' count match the member count with a name repeated."""
    with pytest.raises(ValueError, match="duplicate"):
        _json.loads_object(text.encode())
