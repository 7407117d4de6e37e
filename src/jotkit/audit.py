"""Security audit of a JSON Web Token: what is wrong with it, and how to fix it.

``audit(token)`` parses the token without trusting it and returns a list of
:class:`Finding` objects, each with a stable ``code``, a severity, a one-line
explanation and a fix hint. The rules (codes, severities, texts, regular
expressions and the list of common weak HMAC secrets) live in the package data
file ``audit_rules.json``; the debugger page runs the same rules in the browser
from the same file, so both audits agree.

The checks follow RFC 8725 (JWT Best Current Practices), RFC 7515 (JWS) and
RFC 7519 (JWT). The audit never raises on a bad token: a token that cannot be
parsed is itself the finding ``malformed``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jotkit import Key, KeySet

__all__ = ["SEVERITIES", "Finding", "audit", "load_rules", "luhn_ok", "rules_text"]

#: Severities from most to least serious; findings are sorted in this order.
SEVERITIES = ("critical", "high", "medium", "low", "info")

_HASHES = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


@dataclass(frozen=True)
class Finding:
    """One audit finding.

    ``code`` is stable (see ``docs/tools.md``); ``why`` is one sentence on why
    it matters, ``fix`` says what to do, ``detail`` names the specific claim,
    value or secret that triggered it.
    """

    code: str
    severity: str
    title: str
    why: str
    fix: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready dict of the finding."""
        return {
            "code": self.code,
            "severity": self.severity,
            "title": self.title,
            "why": self.why,
            "fix": self.fix,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class _Pattern:
    code: str
    name: str
    regex: re.Pattern[str]


@dataclass(frozen=True)
class _Rules:
    raw: dict[str, Any]
    texts: dict[str, dict[str, str]]
    known_algorithms: frozenset[str]
    min_secret: dict[str, int]
    max_lifetime: float
    max_bytes: int
    skew: float
    kid_path: re.Pattern[str]
    kid_sql: re.Pattern[str]
    key_patterns: tuple[_Pattern, ...]
    value_patterns: tuple[_Pattern, ...]
    card: re.Pattern[str]
    card_min: int
    card_max: int
    secrets: tuple[bytes, ...]


def rules_text() -> str:
    """The raw text of the bundled ``audit_rules.json`` (single source of truth)."""
    return resources.files("jotkit").joinpath("audit_rules.json").read_text("utf-8")


def _compile(spec: dict[str, Any]) -> re.Pattern[str]:
    # Patterns are written in the subset shared by Python re and JS RegExp;
    # re.ASCII makes \d, \w and \b mean what they mean in JavaScript.
    flags = re.ASCII
    for f in spec.get("flags", ""):
        if f != "i":
            raise ValueError(f"unsupported regex flag {f!r} in audit rules")
        flags |= re.IGNORECASE
    return re.compile(spec["pattern"], flags)


@functools.lru_cache(maxsize=1)
def load_rules() -> _Rules:
    """Parse and compile the bundled rules (cached; the data is immutable)."""
    raw = json.loads(rules_text())
    pats = raw["patterns"]
    limits = raw["limits"]
    return _Rules(
        raw=raw,
        texts={r["code"]: r for r in raw["rules"]},
        known_algorithms=frozenset(raw["expected_algorithms"]),
        min_secret=dict(raw["hmac_min_secret_bytes"]),
        max_lifetime=float(limits["max_access_lifetime_seconds"]),
        max_bytes=int(limits["max_token_bytes"]),
        skew=float(limits["clock_skew_seconds"]),
        kid_path=_compile(pats["kid_path"]),
        kid_sql=_compile(pats["kid_sql"]),
        key_patterns=tuple(
            _Pattern(p["code"], p.get("name", p["code"]), _compile(p))
            for p in pats["sensitive_keys"]
        ),
        value_patterns=tuple(
            _Pattern(p["code"], p.get("name", p["code"]), _compile(p))
            for p in pats["sensitive_values"]
        ),
        card=_compile(pats["card_number"]),
        card_min=int(pats["card_number"]["min_digits"]),
        card_max=int(pats["card_number"]["max_digits"]),
        secrets=tuple(s.encode("utf-8") for s in raw["common_secrets"]),
    )



def _key_source_checks(rules: _Rules, header: Mapping[str, Any]) -> Iterator[Finding]:
    """Findings on where a verifier might look for the key: URL/embedded-key headers (RFC 8725
    §3.10) and a ``kid`` shaped like a path or SQL (JWS and JWE headers alike)."""
    for name in ("jku", "x5u", "jwk", "x5c"):
        if name in header:
            yield _finding(rules, f"header_{name}", f"{name} present")
    kid = header.get("kid")
    if isinstance(kid, str):
        if rules.kid_path.search(kid):
            yield _finding(rules, "kid_path", f"kid {_js(kid)}")
        if rules.kid_sql.search(kid):
            yield _finding(rules, "kid_sql", f"kid {_js(kid)}")

def _finding(rules: _Rules, code: str, detail: str = "") -> Finding:
    t = rules.texts[code]
    return Finding(code, t["severity"], t["title"], t["why"], t["fix"], detail)


def _now_seconds(now: float | datetime | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.timestamp()
    return float(now)


def _js(value: str) -> str:
    """A string quoted as JSON.stringify quotes it (so the page shows the same detail)."""
    return json.dumps(value, ensure_ascii=False)


def _kind(value: object) -> str:
    """The JSON type of a value, as both audits name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "a non-finite number"


def _alg_text(alg: object) -> str:
    if alg is _MISSING:
        return "alg is missing"
    if isinstance(alg, str):
        return f"alg is {_js(alg)}"
    return f"alg is {_kind(alg)}"


_MISSING = object()


def _is_number(v: object) -> bool:
    """A finite JSON number that fits a float (an integer of ~309+ digits does not; the
    debugger page's ``JSON.parse`` turns it into Infinity, so both call it non-finite)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:
        return False


def _fmt_duration(seconds: float) -> str:
    s = int(abs(seconds))
    if s >= 86400:
        return f"{s // 86400} d {s % 86400 // 3600} h"
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    if s >= 60:
        return f"{s // 60} min"
    return f"{s} s"


def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check (ISO/IEC 7812-1)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _walk(value: object, path: str) -> Iterator[tuple[str, str, object]]:
    """Yield (path, member name, value) for every member of nested objects/arrays."""
    if isinstance(value, dict):
        for k, v in value.items():
            p = f"{path}/{k}"
            yield p, k, v
            yield from _walk(v, p)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            p = f"{path}/{i}"
            yield p, "", v
            yield from _walk(v, p)


def _scalar_text(v: object) -> str | None:
    if isinstance(v, str):
        return v
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) <= 2**53 - 1:
        return str(v)
    return None


def _sensitive(rules: _Rules, payload: dict[str, Any]) -> Iterator[Finding]:
    """Sensitive data by member name or value shape; one finding per (code, claim path)."""
    seen: set[tuple[str, str]] = set()
    for path, name, value in _walk(payload, ""):
        hits: list[tuple[str, str]] = []
        text = _scalar_text(value)
        has_value = value not in (None, "", [], {}) and not isinstance(value, bool)
        if name and has_value:
            hits.extend(
                (p.code, f"claim {path}") for p in rules.key_patterns if p.regex.search(name)
            )
        if text is not None:
            hits.extend(
                (p.code, f"{p.name} in {path}")
                for p in rules.value_patterns
                if p.regex.search(text)
            )
            if rules.card.search(text):
                digits = "".join(c for c in text if c in "0123456789")
                if rules.card_min <= len(digits) <= rules.card_max and luhn_ok(digits):
                    hits.append(("sensitive_card_number", f"Luhn-valid number in {path}"))
        for code, detail in hits:
            if (code, path) not in seen:
                seen.add((code, path))
                yield _finding(rules, code, detail)


def _hmac_ok(alg: str, secret: bytes, signing_input: bytes, signature: bytes) -> bool:
    mac = hmac.new(secret, signing_input, _HASHES[alg]).digest()
    return hmac.compare_digest(mac, signature)


def _split(token: str) -> tuple[bytes, bytes]:
    from jotkit._b64 import b64decode

    head, _, sig = token.rpartition(".")
    return head.encode("ascii"), b64decode(sig)


def _weak_secret(rules: _Rules, alg: str, token: str) -> Iterator[Finding]:
    try:
        signing_input, signature = _split(token)
    except ValueError:
        return
    for secret in rules.secrets:
        if _hmac_ok(alg, secret, signing_input, signature):
            shown = "the empty secret" if not secret else f'"{secret.decode("utf-8")}"'
            yield _finding(rules, "weak_secret", f"signed with {shown}")
            return


def _check_key(
    rules: _Rules,
    token: str,
    header: dict[str, Any],
    key: Key | KeySet | None,
    secret: bytes | None,
) -> Iterator[Finding]:
    import jotkit

    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none":
        return
    if secret is not None:
        if alg not in _HASHES:
            yield _finding(rules, "signature_invalid", f"a secret cannot verify {alg}")
            return
        try:
            signing_input, signature = _split(token)
        except ValueError:
            return
        if not _hmac_ok(alg, secret, signing_input, signature):
            yield _finding(rules, "signature_invalid", "bad_signature: the secret does not match")
        elif len(secret) < rules.min_secret[alg]:
            need = rules.min_secret[alg]
            yield _finding(
                rules, "short_secret", f"{len(secret)} bytes, {alg} needs at least {need}"
            )
    if key is not None:
        try:
            single = key
            if isinstance(key, jotkit.KeySet):
                kid = header.get("kid")
                single = key.select(alg, kid if isinstance(kid, str) else None)
            jotkit.jws_verify(token, single, algorithms=[alg])
        except jotkit.InvalidToken as exc:
            yield _finding(rules, "signature_invalid", f"{exc.code}: {exc.message}")


def audit(
    token: str,
    *,
    key: Key | KeySet | None = None,
    secret: bytes | str | None = None,
    expected_algorithms: Iterable[str] | None = None,
    now: float | datetime | None = None,
) -> list[Finding]:
    """Audit ``token`` and return findings sorted by severity, then code.

    ``key`` (a :class:`jotkit.Key` or :class:`jotkit.KeySet`) or ``secret``
    (raw HMAC secret) add a signature check; ``expected_algorithms`` narrows
    the accepted ``alg`` values (RFC 8725 §3.1); ``now`` (epoch seconds or an
    aware datetime) fixes the clock for the time checks (RFC 7519 §4.1.4-6).
    The token itself is never sent anywhere.
    """
    import jotkit

    rules = load_rules()
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    now_s = _now_seconds(now)
    token = token.strip()
    out: list[Finding] = []
    size = len(token.encode("utf-8"))
    if size > rules.max_bytes:
        out.append(_finding(rules, "token_oversized", f"{size} bytes > {rules.max_bytes}"))
    if token.count(".") == 4:  # a JWE (RFC 7516 §7.1): only its header can be audited
        out.extend(_jwe_checks(rules, token))
        return _sorted(out)
    try:
        header, payload = jotkit.decode_unverified(token)
    except jotkit.InvalidToken as exc:
        out.append(_finding(rules, "malformed", exc.message))
        return _sorted(out)
    out.extend(_header_checks(rules, token, header, expected_algorithms))
    out.extend(_time_checks(rules, payload, now_s))
    out.extend(_sensitive(rules, payload))
    if key is not None or secret is not None:
        out.extend(_check_key(rules, token, header, key, secret))
    return _sorted(out)


def _header_checks(
    rules: _Rules, token: str, header: dict[str, Any], expected: Iterable[str] | None
) -> Iterator[Finding]:
    alg = header.get("alg", _MISSING)
    allowed = frozenset(expected) if expected is not None else rules.known_algorithms
    if isinstance(alg, str) and alg.lower() == "none":
        yield _finding(rules, "alg_none", _alg_text(alg))
    elif not isinstance(alg, str) or alg not in allowed:
        yield _finding(rules, "alg_unexpected", _alg_text(alg))
    if isinstance(alg, str) and alg in _HASHES:
        yield from _weak_secret(rules, alg, token)
    yield from _key_source_checks(rules, header)
    if "typ" not in header:
        yield _finding(rules, "typ_missing")


def _time_checks(rules: _Rules, payload: dict[str, Any], now: float) -> Iterator[Finding]:
    times: dict[str, float] = {}
    for name in ("exp", "nbf", "iat"):
        if name in payload:
            v = payload[name]
            if _is_number(v):
                times[name] = float(v)
            else:
                yield _finding(rules, "claim_type", f"{name} is {_kind(v)}")
    exp = times.get("exp")
    if "exp" not in payload:
        yield _finding(rules, "exp_missing")
    if exp is not None:
        start = times.get("iat", times.get("nbf", now))
        if exp - start > rules.max_lifetime:
            yield _finding(rules, "lifetime_too_long", f"lifetime {_fmt_duration(exp - start)}")
        if exp <= now:
            yield _finding(rules, "expired", f"expired {_fmt_duration(now - exp)} ago")
        nbf = times.get("nbf")
        if nbf is not None and nbf > exp:
            yield _finding(rules, "nbf_after_exp")
    iat = times.get("iat")
    if iat is not None and iat > now + rules.skew:
        yield _finding(rules, "iat_in_future", f"{_fmt_duration(iat - now)} ahead")


def _sorted(findings: Sequence[Finding]) -> list[Finding]:
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    unique = dict.fromkeys(findings)
    return sorted(unique, key=lambda f: (rank[f.severity], f.code, f.detail))


def _jwe_checks(rules: _Rules, token: str) -> Iterator[Finding]:
    """A JWE's protected header: RSA1_5, PBES2 p2c, zip, enc, key headers (RFC 7516, 8725)."""
    from jotkit import _json
    from jotkit._b64 import b64decode

    try:
        header = _json.loads_object(b64decode(token.split(".", 1)[0]))
    except ValueError as exc:
        yield _finding(rules, "malformed", f"the JWE protected header is not a JSON object: {exc}")
        return
    spec = rules.raw["jwe"]
    alg, enc = header.get("alg", _MISSING), header.get("enc", _MISSING)
    if not isinstance(alg, str) or alg not in spec["key_management"]:
        yield _finding(rules, "alg_unexpected", _alg_text(alg))
    if not isinstance(enc, str) or enc not in spec["content_encryption"]:
        shown = (
            f"enc is {_js(enc)}"
            if isinstance(enc, str)
            else "enc is missing"
            if enc is _MISSING
            else f"enc is {_kind(enc)}"
        )
        yield _finding(rules, "jwe_enc_unexpected", shown)
    if alg == "RSA1_5":
        yield _finding(rules, "jwe_rsa1_5")
    p2c = header.get("p2c")
    if isinstance(alg, str) and alg.startswith("PBES2") and _is_number(p2c):
        if p2c < spec["pbes2_min_p2c"]:
            yield _finding(rules, "jwe_p2c_low", f"p2c {p2c} < {spec['pbes2_min_p2c']}")
        if p2c > spec["pbes2_max_p2c"]:
            yield _finding(rules, "jwe_p2c_high", f"p2c {p2c} > {spec['pbes2_max_p2c']}")
    if "zip" in header:
        nested = str(header.get("cty", "")).upper() in ("JWT", "APPLICATION/JWT")
        yield _finding(rules, "jwe_zip", "zip on a nested JWT" if nested else "zip present")
    yield from _key_source_checks(rules, header)
    yield _finding(rules, "jwe_payload_hidden")
