"""JWS JSON serialization (RFC 7515 §7.2), unencoded payloads (RFC 7797) and detached content.

Re-exported from :mod:`jotkit.jws`: :func:`sign_json`, :func:`verify_json`,
:func:`sign_detached`, :func:`verify_detached`.

Verification checks, in order: size cap -> strict JSON (or the compact
``header..signature`` shape) -> each signature's header: disjoint protected and
unprotected parts, ``alg`` on the allow-list, ``crit`` naming only ``b64``
(RFC 7797 §6) -> key resolution -> signature. With several signatures, the
first one that verifies with an allowed key wins and is reported
(RFC 7515 §7.2.1 leaves the policy to the application; jotkit's is "any").
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import _json
from ._b64 import _decode_checked, b64encode, is_canonical
from .algorithms import ALGORITHMS
from .errors import InvalidSignature, InvalidToken, MalformedToken, UnsupportedAlgorithm
from .jws import DEFAULT_MAX_SIZE, KeyLike, check_algorithms, load_segment, resolve_key
from .keys import Key

__all__ = [
    "MAX_SIGNATURES",
    "VerifiedJWS",
    "sign_detached",
    "sign_json",
    "verify_detached",
    "verify_json",
]

#: The JSON serialization is refused with more signatures than this.
MAX_SIGNATURES = 16
#: Header parameters registered by RFC 7515 §4.1; ``crit`` may not name them.
_REGISTERED = frozenset(
    {"alg", "jku", "jwk", "kid", "x5u", "x5c", "x5t", "x5t#S256", "typ", "cty", "crit"}
)
#: Extensions jotkit understands when a token lists them in ``crit``.
_UNDERSTOOD = frozenset({"b64"})
_DETACHED = re.compile(r"([A-Za-z0-9_-]+)\.\.([A-Za-z0-9_-]+)", re.ASCII)


@dataclass(frozen=True, slots=True)
class VerifiedJWS:
    """A JWS whose signature (one of them, for the general form) verified."""

    payload: bytes
    header: dict[str, Any]
    """The JOSE header of the signature that verified: protected and unprotected members."""
    protected_header: dict[str, Any]
    key: Key
    """The key that verified it."""
    signature_index: int
    """Which signature verified (0 for the flattened and compact forms)."""


# --------------------------------------------------------------------------- signing


def _protected(key: Key, extra: Mapping[str, Any] | None, b64: bool) -> dict[str, Any]:
    header: dict[str, Any] = {"alg": key.alg}
    if key.kid is not None:
        header["kid"] = key.kid
    if extra:
        if "alg" in extra and extra["alg"] != key.alg:
            raise ValueError(
                f"the key is for {key.alg}; headers cannot set alg to {extra['alg']!r}"
            )
        if "b64" in extra or "crit" in extra:
            raise ValueError("pass b64=False instead of setting 'b64'/'crit' yourself")
        header.update(extra)
    if not b64:
        header["b64"] = False  # RFC 7797 §3, §6: integrity protected and critical
        header["crit"] = ["b64"]
    return header


def _per_key(
    value: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None, count: int, name: str
) -> list[Mapping[str, Any] | None]:
    if value is None or isinstance(value, Mapping):
        return [value] * count
    out = list(value)
    if len(out) != count:
        raise ValueError(f"{name} needs one entry per key")
    return out


def _signing_key(key: Any) -> Key:
    if not isinstance(key, Key):
        raise TypeError("keys must be jotkit.Key objects")
    if not key.is_private or key.is_encryption_key:
        raise ValueError(f"key {key.kid!r} cannot sign")
    return key


def sign_json(
    payload: bytes,
    keys: Key | Sequence[Key],
    *,
    headers: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
    unprotected: Mapping[str, Any] | Sequence[Mapping[str, Any] | None] | None = None,
    flattened: bool | None = None,
    b64: bool = True,
    detached: bool = False,
) -> dict[str, Any]:
    """Sign ``payload`` with one or more keys in the JWS JSON serialization (RFC 7515 §7.2).

    Each signature's protected header holds ``alg`` and ``kid`` from its key and
    ``headers`` (one mapping for all keys, or one per key); ``unprotected`` adds
    per-signature unprotected members. The flattened form is the default for a
    single key. ``b64=False`` signs the payload unencoded (RFC 7797; ``b64`` and
    ``crit`` go in every protected header); ``detached=True`` leaves the payload
    out (RFC 7515 Appendix F), to be passed to :func:`verify_json`.
    """
    signers = [_signing_key(k) for k in ([keys] if isinstance(keys, Key) else list(keys))]
    if not signers:
        raise ValueError("sign_json needs at least one key")
    if len(signers) > MAX_SIGNATURES:
        raise ValueError(f"at most {MAX_SIGNATURES} signatures")
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be bytes")
    payload = bytes(payload)
    if flattened is None:
        flattened = len(signers) == 1
    if flattened and len(signers) != 1:
        raise ValueError("the flattened form has exactly one signature")
    if b64:
        payload_member = b64encode(payload)
        payload_input = payload_member.encode("ascii")
    else:
        payload_input = payload
        try:
            payload_member = payload.decode("utf-8")
        except UnicodeDecodeError:
            if not detached:
                raise ValueError(
                    "an unencoded (b64=False) payload in JSON must be UTF-8; detach it instead"
                ) from None
            payload_member = ""
    entries = []
    for key, extra, shared in zip(
        signers,
        _per_key(headers, len(signers), "headers"),
        _per_key(unprotected, len(signers), "unprotected"),
        strict=True,
    ):
        protected = _protected(key, extra, b64)
        if shared and protected.keys() & shared.keys():
            raise ValueError("protected and unprotected headers must not share names")
        protected_b64 = b64encode(_json.dumps(protected))
        signature = key.sign(protected_b64.encode("ascii") + b"." + payload_input)
        entry: dict[str, Any] = {"protected": protected_b64}
        if shared:
            entry["header"] = dict(shared)
        entry["signature"] = b64encode(signature)
        entries.append(entry)
    out: dict[str, Any] = {} if detached else {"payload": payload_member}
    if flattened:
        out.update(entries[0])
    else:
        out["signatures"] = entries
    return out


def sign_detached(
    payload: bytes, key: Key, *, headers: Mapping[str, Any] | None = None, b64: bool = True
) -> str:
    """A compact JWS with detached content, ``header..signature`` (RFC 7515 Appendix F).

    ``b64=False`` signs the raw payload octets (RFC 7797 §5.2 recommends
    detaching unencoded payloads in the compact form; jotkit only does that).
    """
    signer = _signing_key(key)
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be bytes")
    protected_b64 = b64encode(_json.dumps(_protected(signer, headers, b64)))
    payload_input = b64encode(bytes(payload)).encode("ascii") if b64 else bytes(payload)
    signature = signer.sign(protected_b64.encode("ascii") + b"." + payload_input)
    return f"{protected_b64}..{b64encode(signature)}"


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True, slots=True)
class _Signature:
    protected_b64: str
    protected: dict[str, Any]
    header: dict[str, Any]
    signature: bytes


def _b64_member(obj: Mapping[str, Any], name: str) -> str:
    value = obj.get(name)
    if type(value) is not str or not is_canonical(value):
        raise MalformedToken(f"the {name!r} member must be canonical base64url text")
    return value


def _signature_entry(entry: Any) -> _Signature:
    if type(entry) is not dict:
        raise MalformedToken("a signature must be a JSON object")
    protected_b64 = _b64_member(entry, "protected") if "protected" in entry else ""
    header = entry.get("header", {})
    if type(header) is not dict:
        raise MalformedToken("the 'header' member must be a JSON object")
    sig = _b64_member(entry, "signature")
    protected = load_segment(protected_b64, "protected header") if protected_b64 else {}
    return _Signature(protected_b64, protected, header, _decode_checked(sig))


def _joint(sig: _Signature) -> dict[str, Any]:
    """The JOSE header of one signature (RFC 7515 §7.2.1) with ``crit``/``b64`` checked."""
    joint = dict(sig.protected)
    for name, value in sig.header.items():
        if name in joint:
            raise MalformedToken(f"the header parameter {name!r} appears twice")
        joint[name] = value
    if type(joint.get("alg")) is not str:
        raise MalformedToken("the JOSE header has no 'alg' string (RFC 7515 §4.1.1)")
    for name in ("kid", "typ", "cty"):
        if name in joint and type(joint[name]) is not str:
            raise MalformedToken(f"the {name!r} header must be a string")
    crit: list[str] = []
    if "crit" in joint:
        crit = joint["crit"]
        if "crit" not in sig.protected:
            raise MalformedToken("'crit' must be in the protected header (RFC 7515 §4.1.11)")
        if type(crit) is not list or not crit or not all(type(c) is str for c in crit):
            raise MalformedToken("'crit' must be a non-empty array of strings")
        if any(c in _REGISTERED for c in crit):
            raise MalformedToken("'crit' must not list registered header names")
        unknown = [c for c in crit if c not in _UNDERSTOOD]
        if unknown:
            raise UnsupportedAlgorithm(
                f"unsupported critical header extension(s): {', '.join(unknown)}",
                code="unknown_crit",
            )
        missing = [c for c in crit if c not in joint]
        if missing:
            raise MalformedToken(f"'crit' names absent header(s): {', '.join(missing)}")
    if "b64" in joint:
        if type(joint["b64"]) is not bool:
            raise MalformedToken("'b64' must be a boolean (RFC 7797 §3)")
        if "b64" not in sig.protected or "b64" not in crit:
            raise MalformedToken("'b64' must be protected and listed in 'crit' (RFC 7797 §6)")
    return joint


def _parse(token: Any, max_size: int) -> tuple[Any, list[_Signature]]:
    """``(payload member or None, signatures)`` of the general or flattened form."""
    if isinstance(token, Mapping):
        try:
            text = _json.dumps(dict(token)).decode("ascii")
        except (TypeError, ValueError, RecursionError):
            raise MalformedToken("the JWS mapping is not JSON data") from None
    elif isinstance(token, (str, bytes, bytearray)):
        if len(token) > max_size:
            raise MalformedToken(
                f"the token is larger than {max_size} bytes", code="token_too_large"
            )
        try:
            text = token if isinstance(token, str) else bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedToken("the token is not UTF-8 text") from None
    else:
        raise MalformedToken(f"a token must be text or a mapping, not {type(token).__name__}")
    if len(text) > max_size:
        raise MalformedToken(f"the token is larger than {max_size} bytes", code="token_too_large")
    try:
        obj = _json.loads_object(text.encode("utf-8"))
    except ValueError as exc:
        raise MalformedToken(f"the JWS JSON serialization is not a JSON object: {exc}") from None
    if "signatures" in obj:
        if any(name in obj for name in ("protected", "header", "signature")):
            raise MalformedToken("'signatures' cannot be mixed with flattened members")
        entries = obj["signatures"]
        if type(entries) is not list or not entries:
            raise MalformedToken("'signatures' must be a non-empty array")
        if len(entries) > MAX_SIGNATURES:
            raise MalformedToken(f"more than {MAX_SIGNATURES} signatures")
    else:
        entries = [{k: obj[k] for k in ("protected", "header", "signature") if k in obj}]
    return obj.get("payload"), [_signature_entry(e) for e in entries]


def _payload_input(member: Any, detached: bytes | None, b64: bool) -> tuple[bytes, bytes]:
    """``(payload octets, payload part of the signing input)`` (RFC 7515 §5.2, RFC 7797 §3)."""
    if detached is not None:
        if member is not None and member != "":
            raise MalformedToken("the JWS carries a payload, but a detached one was given")
        data = bytes(detached)
        return data, (b64encode(data).encode("ascii") if b64 else data)
    if member is None:
        raise MalformedToken("the JWS has no payload (detached content needs payload=)")
    if type(member) is not str:
        raise MalformedToken("the 'payload' member must be a string")
    if b64:
        if not is_canonical(member):
            raise MalformedToken("the payload is not canonical base64url")
        return _decode_checked(member), member.encode("ascii")
    raw = member.encode("utf-8")
    return raw, raw


def _verify_signatures(
    payload_member: Any,
    signatures: list[_Signature],
    key: KeyLike,
    allowed: Collection[str],
    detached: bytes | None,
) -> VerifiedJWS:
    joints = [_joint(s) for s in signatures]
    modes = {j.get("b64", True) for j in joints}
    if len(modes) != 1:
        raise MalformedToken("the signatures disagree on 'b64' (RFC 7797 §3)")
    payload, payload_input = _payload_input(payload_member, detached, modes.pop())
    failure: InvalidToken | None = None
    for index, (sig, joint) in enumerate(zip(signatures, joints, strict=True)):
        try:
            alg = joint["alg"]
            if alg not in allowed:
                raise UnsupportedAlgorithm(
                    f"the algorithm {alg} is not allowed here"
                    if alg in ALGORITHMS
                    else f"unsupported algorithm {alg!r}",
                    code="alg_none" if alg.lower() == "none" else None,
                )
            chosen = resolve_key(key, joint)
            if not chosen.verify(
                sig.protected_b64.encode("ascii") + b"." + payload_input, sig.signature
            ):
                raise InvalidSignature("the signature does not verify")
        except InvalidToken as exc:
            if failure is None or isinstance(exc, InvalidSignature):
                failure = exc
            continue
        return VerifiedJWS(payload, joint, sig.protected, chosen, index)
    assert failure is not None
    raise failure


def verify_json(
    token: str | bytes | Mapping[str, Any],
    key: KeyLike,
    *,
    algorithms: Collection[str],
    payload: bytes | None = None,
    max_size: int = DEFAULT_MAX_SIZE,
) -> VerifiedJWS:
    """Verify a JWS in the JSON serialization, general or flattened (RFC 7515 §7.2, §5.2).

    Succeeds when any signature verifies with an allowed algorithm and a key from
    ``key`` (a :class:`Key`, :class:`KeySet` or resolver); the result says which.
    ``payload`` supplies detached content (RFC 7515 Appendix F). Unencoded
    payloads (RFC 7797 ``b64: false``, listed in ``crit``) are understood; any
    other critical extension is refused. Raises :class:`InvalidToken` subclasses only.
    """
    allowed = check_algorithms(algorithms)
    member, signatures = _parse(token, max_size)
    return _verify_signatures(member, signatures, key, allowed, payload)


def verify_detached(
    token: str | bytes,
    payload: bytes,
    key: KeyLike,
    *,
    algorithms: Collection[str],
    max_size: int = DEFAULT_MAX_SIZE,
) -> VerifiedJWS:
    """Verify a compact JWS with detached content, ``header..signature`` (RFC 7515 Appendix F).

    The payload may be unencoded (RFC 7797 ``b64: false`` in a protected
    ``crit``). Raises :class:`InvalidToken` subclasses only.
    """
    allowed = check_algorithms(algorithms)
    if isinstance(token, (bytes, bytearray)):
        token = bytes(token).decode("ascii", "replace")
    if not isinstance(token, str):
        raise MalformedToken(f"a token must be a string, not {type(token).__name__}")
    if len(token) > max_size:
        raise MalformedToken(f"the token is larger than {max_size} bytes", code="token_too_large")
    if not isinstance(payload, (bytes, bytearray)):
        raise TypeError("payload must be bytes")
    match = _DETACHED.fullmatch(token)
    if match is None:
        raise MalformedToken("a detached JWS has the shape header..signature (RFC 7515 Appendix F)")
    protected_b64, sig_b64 = match.groups()
    if not (is_canonical(protected_b64) and is_canonical(sig_b64)):
        raise MalformedToken("a detached JWS segment is not canonical base64url")
    protected = load_segment(protected_b64, "protected header")
    sig = _Signature(protected_b64, protected, {}, _decode_checked(sig_b64))
    return _verify_signatures(None, [sig], key, allowed, bytes(payload))
