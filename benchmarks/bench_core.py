"""Core benchmark: jotkit against PyJWT, joserfc, jwcrypto, authlib, python-jose and a floor.

Operations, per algorithm (HS256, RS256, PS256, ES256, EdDSA with Ed25519):

* ``verify``: verify the signature AND validate ``exp``/``iss``/``aud`` of one shared token
  (made once by jotkit), returning the claims;
* ``sign``: build claims with ``iat``/``exp``/``iss``/``aud`` from the same base claims and
  sign them.

Every implementation's keys are prepared once (parsed key objects). Each verifier must
return the right ``sub`` and reject a bad signature, an expired token, a wrong ``iss``, a
wrong ``aud`` and a token without ``exp`` before it is timed; checks it skips are flagged
in the table. Each signer's token must verify with jotkit.

Timing: the median of N samples of a plain ``for`` loop (timeit style, many loops per
sample), with the garbage collector ENABLED (realistic), the implementations interleaved
sample by sample so that load changes hit all of them alike.

Usage::

    .venv/bin/python benchmarks/bench_core.py            # full run, writes results.md
    .venv/bin/python benchmarks/bench_core.py --quick --only HS256
    .venv/bin/python benchmarks/bench_core.py --json out.json
    .venv/bin/python benchmarks/bench_core.py --profile --only HS256,ES256
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import gc
import importlib.metadata
import itertools
import json
import os
import platform
import pstats
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import _floor  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402

import jotkit  # noqa: E402

ALGS = ("HS256", "RS256", "PS256", "ES256", "EdDSA")
OPS = ("verify", "sign")
ISSUER = "https://issuer.example.com"
AUDIENCE = "https://api.example.com"
SUBJECT = "user-1234"
#: The base claims every signer gets; iat/exp/iss/aud are added per call.
CLAIMS: dict[str, Any] = {"sub": SUBJECT, "scope": "read:items write:items", "tenant": "acme"}
LIFETIME = 3600
HS_SECRET = b"jotkit-benchmark-hs256-secret-0123456789"  # 40 bytes >= 32 (RFC 7518 §3.2)

PEERS = ("PyJWT", "joserfc", "jwcrypto", "authlib", "python-jose")
VERIFY_IMPLS = ("floor", "loose floor", "jotkit", "jotkit Verifier", *PEERS)
SIGN_IMPLS = ("floor", "loose floor", "jotkit", *PEERS)
DISTRIBUTIONS = {
    "jotkit": "jotkit",
    "cryptography": "cryptography",
    "PyJWT": "pyjwt",
    "joserfc": "joserfc",
    "jwcrypto": "jwcrypto",
    "authlib": "authlib",
    "python-jose": "python-jose",
}
REJECT_CASES = ("bad signature", "expired", "wrong iss", "wrong aud", "no exp")
#: What each implementation's verify call does besides the common work (fairness notes).
STATIC_NOTES = {
    "floor": "the TIGHT floor (benchmarks/_floor.py): prepared key, hmac object copied per "
    "call, prebuilt JSON decoder/encoder, cached header segment; only the per-token work; "
    "no size cap, no strict base64/JSON, no crit/typ handling: a yardstick only",
    "loose floor": "the floor used before issue 9: json.loads/dumps, base64.urlsafe_b64*, "
    "hmac.digest, the header parsed (verify) and encoded (sign) on every call",
    "jotkit": "jotkit.decode(token, key, algorithms=[...], issuer=, audience=); "
    "encode(claims, key, expires_in=3600, issuer=, audience=)",
    "jotkit Verifier": "jotkit.Verifier(key, algorithms=[...], issuer=, audience=).decode(token)",
    "PyJWT": "jwt.PyJWT(options={'require': ['exp']}).decode(token, key_object, algorithms=, "
    "issuer=, audience=); also checks iat/nbf",
    "joserfc": "jwt.decode(token, Key.import_key(...), algorithms=) + "
    "JWTClaimsRegistry(iss, aud, exp essential).validate(claims)",
    "jwcrypto": "jwt.JWT(jwt=token, key=JWK, algs=, check_claims={iss, aud, exp}, "
    "expected_type='JWS') + json.loads(t.claims); default leeway 60 s",
    "authlib": "JsonWebToken([alg]).decode(token, Key.import_key(...), claims_options="
    "{iss, aud, exp essential}) + claims.validate()",
    "python-jose": "jose.jwt.decode(token, jwk.construct(...), algorithms=, issuer=, "
    "audience=, options={'require_exp': True}); no PS256 or EdDSA support",
}

Verify = Callable[[str], Mapping[str, Any]]
Sign = Callable[[], str | bytes]


# --------------------------------------------------------------------------- material
@dataclass(frozen=True)
class Material:
    """Keys in every form the libraries want, the shared token and tokens to reject."""

    alg: str
    jot_private: jotkit.Key
    jot_public: jotkit.Key
    secret: bytes | None
    private_pem: bytes
    public_pem: bytes
    private_obj: Any  # cryptography private key object, or the HMAC secret
    public_obj: Any  # cryptography public key object, or the HMAC secret
    kty: str
    token: str
    reject: Mapping[str, str]


def _tamper(token: str) -> str:
    head, _, sig = token.rpartition(".")
    i = len(sig) // 2
    swapped = "A" if sig[i] != "A" else "B"
    return f"{head}.{sig[:i]}{swapped}{sig[i + 1 :]}"


def make_material(alg: str, private: jotkit.Key | None = None) -> Material:
    """Generate one key pair (or secret) for ``alg`` and the tokens the verifiers share;
    ``private`` supplies a fixed key instead (callgrind's RSA rows, which need the same key in
    every run)."""
    if alg.startswith("HS"):
        priv = jotkit.Key.from_secret(HS_SECRET, alg)
        pub = priv
        secret: bytes | None = HS_SECRET
        private_pem = public_pem = b""
        private_obj = public_obj = HS_SECRET
    else:
        priv = jotkit.Key.generate(alg) if private is None else private
        pub = priv.public()
        secret = None
        private_pem = priv.to_pem(private=True)
        public_pem = pub.to_pem()
        private_obj = serialization.load_pem_private_key(private_pem, password=None)
        public_obj = serialization.load_pem_public_key(public_pem)
    good = partial(jotkit.encode, CLAIMS, priv, subject=None)
    token = good(expires_in=LIFETIME, issuer=ISSUER, audience=AUDIENCE)
    reject = {
        "bad signature": _tamper(token),
        "expired": good(
            expires_in=LIFETIME, issuer=ISSUER, audience=AUDIENCE, now=time.time() - 2 * 86400
        ),
        "wrong iss": good(expires_in=LIFETIME, issuer="https://evil.example", audience=AUDIENCE),
        "wrong aud": good(expires_in=LIFETIME, issuer=ISSUER, audience="https://other.example"),
        "no exp": good(issuer=ISSUER, audience=AUDIENCE),
    }
    return Material(
        alg=alg,
        jot_private=priv,
        jot_public=pub,
        secret=secret,
        private_pem=private_pem,
        public_pem=public_pem,
        private_obj=private_obj,
        public_obj=public_obj,
        kty=priv.kty,
        token=token,
        reject=reject,
    )


def _payload() -> dict[str, Any]:
    """What a peer signer must build per call (jotkit.encode does the same internally)."""
    now = int(time.time())
    return {**CLAIMS, "iat": now, "exp": now + LIFETIME, "iss": ISSUER, "aud": AUDIENCE}


# --------------------------------------------------------------------------- adapters
# Each adapter returns (verify(token) -> claims, sign() -> token) for one Material, with
# keys prepared once, or raises when the library cannot do the algorithm.


def _adapt_floor(m: Material) -> tuple[Verify, Sign]:
    return (
        _floor.make_verify(m.alg, m.public_obj, ISSUER, AUDIENCE),
        _floor.make_sign(m.alg, m.private_obj, CLAIMS, ISSUER, AUDIENCE, LIFETIME),
    )


def _adapt_loose_floor(m: Material) -> tuple[Verify, Sign]:
    return (
        _floor.make_verify_loose(m.alg, m.public_obj, ISSUER, AUDIENCE),
        _floor.make_sign_loose(m.alg, m.private_obj, CLAIMS, ISSUER, AUDIENCE, LIFETIME),
    )


def _adapt_jotkit(m: Material) -> tuple[Verify, Sign]:
    verify = partial(
        jotkit.decode, key=m.jot_public, algorithms=[m.alg], issuer=ISSUER, audience=AUDIENCE
    )
    sign = partial(
        jotkit.encode, CLAIMS, m.jot_private, expires_in=LIFETIME, issuer=ISSUER, audience=AUDIENCE
    )
    return verify, sign


def _adapt_jotkit_verifier(m: Material) -> tuple[Verify, Sign]:
    verifier = jotkit.Verifier(m.jot_public, algorithms=[m.alg], issuer=ISSUER, audience=AUDIENCE)
    return verifier.decode, _unsupported("Verifier only verifies")


def _adapt_pyjwt(m: Material) -> tuple[Verify, Sign]:
    import jwt

    inst = jwt.PyJWT(options={"require": ["exp"]})
    algs = [m.alg]
    verify = partial(
        inst.decode, key=m.public_obj, algorithms=algs, issuer=ISSUER, audience=AUDIENCE
    )
    encode, priv, alg = inst.encode, m.private_obj, m.alg

    def sign() -> str:
        return encode(_payload(), priv, algorithm=alg)

    return verify, sign


def _adapt_joserfc(m: Material) -> tuple[Verify, Sign]:
    from joserfc import jwt
    from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey

    if m.secret is not None:
        priv = pub = OctKey.import_key(m.secret)
    else:
        cls: Any = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}[m.kty]
        priv, pub = cls.import_key(m.private_pem), cls.import_key(m.public_pem)
    registry = jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": AUDIENCE},
        exp={"essential": True},
    )
    algs = [m.alg]
    header = {"alg": m.alg, "typ": "JWT"}
    decode, encode, validate = jwt.decode, jwt.encode, registry.validate

    def verify(token: str) -> Mapping[str, Any]:
        claims = decode(token, pub, algorithms=algs).claims
        validate(claims)
        return claims

    def sign() -> str:
        return encode(header, _payload(), priv, algorithms=algs)

    return verify, sign


def _adapt_jwcrypto(m: Material) -> tuple[Verify, Sign]:
    from jwcrypto import jwk, jwt

    if m.secret is not None:
        k = base64.urlsafe_b64encode(m.secret).rstrip(b"=").decode()
        priv = pub = jwk.JWK(kty="oct", k=k)
    else:
        priv, pub = jwk.JWK.from_pem(m.private_pem), jwk.JWK.from_pem(m.public_pem)
    check = {"iss": ISSUER, "aud": AUDIENCE, "exp": None}
    algs = [m.alg]
    header = {"alg": m.alg, "typ": "JWT"}
    jwt_cls, loads = jwt.JWT, json.loads

    def verify(token: str) -> Mapping[str, Any]:
        t = jwt_cls(jwt=token, key=pub, algs=algs, check_claims=check, expected_type="JWS")
        return loads(t.claims)  # type: ignore[no-any-return]

    def sign() -> str:
        t = jwt_cls(header=header, claims=_payload())
        t.make_signed_token(priv)
        return t.serialize()  # type: ignore[no-any-return]

    return verify, sign


def _adapt_authlib(m: Material) -> tuple[Verify, Sign]:
    import authlib.deprecate  # noqa: F401 - installs an "always" filter; ours must come after

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from authlib.jose import ECKey, JsonWebToken, OctKey, OKPKey, RSAKey

    if m.secret is not None:
        priv = pub = OctKey.import_key(m.secret)
    else:
        cls: Any = {"RSA": RSAKey, "EC": ECKey, "OKP": OKPKey}[m.kty]
        priv, pub = cls.import_key(m.private_pem), cls.import_key(m.public_pem)
    options = {
        "iss": {"essential": True, "value": ISSUER},
        "aud": {"essential": True, "value": AUDIENCE},
        "exp": {"essential": True},
    }
    inst = JsonWebToken([m.alg])
    header = {"alg": m.alg, "typ": "JWT"}
    decode, encode = inst.decode, inst.encode

    def verify(token: str) -> Mapping[str, Any]:
        claims = decode(token, pub, claims_options=options)
        claims.validate()
        return claims  # type: ignore[no-any-return]

    def sign() -> bytes:
        return encode(header, _payload(), priv)  # type: ignore[no-any-return]

    return verify, sign


def _adapt_python_jose(m: Material) -> tuple[Verify, Sign]:
    from jose import jwk, jwt

    if m.secret is not None:
        priv = pub = jwk.construct(m.secret, m.alg)
    else:
        priv, pub = jwk.construct(m.private_pem, m.alg), jwk.construct(m.public_pem, m.alg)
    verify = partial(
        jwt.decode,
        key=pub,
        algorithms=[m.alg],
        issuer=ISSUER,
        audience=AUDIENCE,
        options={"require_exp": True},
    )
    encode, alg = jwt.encode, m.alg

    def sign() -> str:
        return encode(_payload(), priv, algorithm=alg)  # type: ignore[no-any-return]

    return verify, sign


def _unsupported(reason: str) -> Sign:
    def sign() -> str:
        raise NotImplementedError(reason)

    return sign


ADAPTERS: dict[str, Callable[[Material], tuple[Verify, Sign]]] = {
    "floor": _adapt_floor,
    "loose floor": _adapt_loose_floor,
    "jotkit": _adapt_jotkit,
    "jotkit Verifier": _adapt_jotkit_verifier,
    "PyJWT": _adapt_pyjwt,
    "joserfc": _adapt_joserfc,
    "jwcrypto": _adapt_jwcrypto,
    "authlib": _adapt_authlib,
    "python-jose": _adapt_python_jose,
}


# --------------------------------------------------------------------------- cells
@dataclass
class Cell:
    """One implementation x operation x algorithm: the checked call and its timings."""

    op: str
    alg: str
    impl: str
    call: Callable[[], Any] | None = None
    na: str | None = None
    skipped_checks: tuple[str, ...] = ()
    loops: int = 0
    samples_us: list[float] = field(default_factory=list)

    @property
    def median_us(self) -> float | None:
        """Median microseconds per operation, or None when not measured."""
        return statistics.median(self.samples_us) if self.samples_us else None

    def stat(self, kind: str) -> float | None:
        """``median`` (the reported figure) or ``min`` (the best sample, for reference)."""
        if not self.samples_us:
            return None
        return min(self.samples_us) if kind == "min" else statistics.median(self.samples_us)

    def to_json(self) -> dict[str, Any]:
        """A plain-data view for --json."""
        out: dict[str, Any] = {"op": self.op, "alg": self.alg, "impl": self.impl}
        if self.na is not None:
            out["na"] = self.na
            return out
        samples = sorted(self.samples_us)
        out.update(
            median_us=self.median_us,
            min_us=samples[0] if samples else None,
            max_us=samples[-1] if samples else None,
            loops_per_sample=self.loops,
            samples_us=self.samples_us,
            skipped_checks=list(self.skipped_checks),
        )
        return out


def _reason(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".replace("|", "/").replace("\n", " ")
    return text if len(text) <= 90 else text[:87] + "..."


def check_verify(verify: Verify, m: Material) -> tuple[str, ...]:
    """Run ``verify`` on the shared token (must return sub) and on every token it must
    reject; return the names of the checks it did NOT enforce."""
    claims = verify(m.token)
    if claims["sub"] != SUBJECT or claims["iss"] != ISSUER:
        raise AssertionError(f"wrong claims returned: {dict(claims)!r}")
    skipped = []
    for case in REJECT_CASES:
        try:
            verify(m.reject[case])
        except Exception:  # any rejection counts
            continue
        skipped.append(case)
    return tuple(skipped)


def check_sign(sign: Sign, m: Material) -> None:
    """The signer's token must verify and validate with jotkit."""
    token = sign()
    if isinstance(token, bytes):
        token = token.decode("ascii")
    claims = jotkit.decode(
        token, m.jot_public, algorithms=[m.alg], issuer=ISSUER, audience=AUDIENCE
    )
    if claims["sub"] != SUBJECT or claims["exp"] - claims["iat"] != LIFETIME:
        raise AssertionError(f"wrong claims signed: {claims!r}")


def build_cells(op: str, m: Material, impls: Sequence[str] | None = None) -> list[Cell]:
    """Prepare and correctness-check every implementation of ``op`` for ``m.alg``.

    An implementation that cannot be built, lacks the algorithm or fails a check becomes
    an n/a cell with the reason; nothing is timed here.
    """
    names = impls if impls is not None else (VERIFY_IMPLS if op == "verify" else SIGN_IMPLS)
    cells = []
    for name in names:
        cell = Cell(op, m.alg, name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                verify, sign = ADAPTERS[name](m)
            except ImportError as exc:
                cell.na = f"not installed ({exc.name})"
            except Exception as exc:
                cell.na = f"cannot prepare a key for {m.alg}: {_reason(exc)}"
            else:
                try:
                    if op == "verify":
                        cell.skipped_checks = check_verify(verify, m)
                        cell.call = partial(verify, m.token)
                    else:
                        check_sign(sign, m)
                        cell.call = sign
                except Exception as exc:
                    cell.na = f"failed the correctness check: {_reason(exc)}"
        cells.append(cell)
    return cells


# --------------------------------------------------------------------------- timing
#: ``cpu``: this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), which leaves out the time the
#: process waits for a CPU on a busy machine; ``wall``: ``perf_counter``.
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


def _run(
    call: Callable[[], Any], loops: int, clock: Callable[[], float] = time.thread_time
) -> float:
    repeat = itertools.repeat(None, loops)
    start = clock()
    for _ in repeat:
        call()
    return clock() - start


def calibrate(
    call: Callable[[], Any], sample_time: float, clock: Callable[[], float] = time.thread_time
) -> int:
    """Loops per sample so that one sample lasts about ``sample_time`` seconds."""
    loops = 1
    while True:
        elapsed = _run(call, loops, clock)
        if elapsed >= sample_time / 10 or loops >= 10_000_000:
            return max(1, round(loops * sample_time / max(elapsed, 1e-9)))
        loops *= 10


def time_cells(
    cells: Sequence[Cell],
    samples: int,
    sample_time: float,
    clock: Callable[[], float] = time.thread_time,
) -> None:
    """Fill ``samples_us``: the cells are interleaved sample by sample (rotating the
    order) so that changes in machine load affect every implementation alike."""
    live = [c for c in cells if c.call is not None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
        for cell in live:
            assert cell.call is not None
            cell.loops = calibrate(cell.call, sample_time, clock)
        for i in range(samples):
            shift = i % max(1, len(live))
            for cell in live[shift:] + live[:shift]:
                assert cell.call is not None
                cell.samples_us.append(_run(cell.call, cell.loops, clock) / cell.loops * 1e6)


# --------------------------------------------------------------------------- report
def environment() -> dict[str, Any]:
    """Date, Python, library versions, CPU model and load average."""
    versions = {}
    for label, dist in DISTRIBUTIONS.items():
        try:
            versions[label] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[label] = "not installed"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "versions": versions,
        "gc_enabled": gc.isenabled(),
    }


def _fmt(us: float | None) -> str:
    if us is None:
        return "n/a"
    if us >= 100:
        return f"{us:.0f}"
    if us >= 10:
        return f"{us:.1f}"
    return f"{us:.2f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _fmt_ratio(r: float | None) -> str:
    return "—" if r is None else f"{r:.2f}×"


def index(cells: Sequence[Cell]) -> dict[tuple[str, str, str], Cell]:
    """Cells by (op, alg, impl)."""
    return {(c.op, c.alg, c.impl): c for c in cells}


def median_of(
    idx: Mapping[tuple[str, str, str], Cell], op: str, alg: str, impl: str, kind: str = "median"
) -> float | None:
    """The median (or ``kind``) of one cell, or None."""
    cell = idx.get((op, alg, impl))
    return None if cell is None else cell.stat(kind)


TABLE_IMPLS = ("floor", "loose floor", "jotkit", "jotkit Verifier", *PEERS)


def render_table(
    cells: Sequence[Cell],
    algs: Sequence[str],
    ops: Sequence[str],
    kind: str = "median",
    footnotes: bool = True,
) -> str:
    """The markdown results table plus footnotes for n/a cells and skipped checks."""
    idx = index(cells)
    head = [
        "operation",
        "floor µs",
        "loose floor µs",
        "jotkit µs",
        "jotkit Verifier µs",
        *(f"{p} µs" for p in PEERS),
        "jotkit / floor",
        "Verifier / floor",
        "jotkit / loose floor",
        "Verifier / loose floor",
        "PyJWT / jotkit",
        "PyJWT / Verifier",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    notes: list[str] = []
    for op in ops:
        for alg in algs:
            row = [f"{op} {alg}"]
            for impl in TABLE_IMPLS:
                cell = idx.get((op, alg, impl))
                if cell is None:
                    row.append("—")
                    continue
                if cell.na is not None:
                    notes.append(f"{len(notes) + 1}. {op} {alg}, {impl}: n/a — {cell.na}")
                    row.append(f"n/a [{len(notes)}]")
                    continue
                text = _fmt(cell.stat(kind))
                if cell.skipped_checks:
                    notes.append(
                        f"{len(notes) + 1}. {op} {alg}, {impl}: does NOT reject "
                        + ", ".join(cell.skipped_checks)
                        + " (does less work than the others)"
                    )
                    text += f" † [{len(notes)}]"
                row.append(text)
            floor = median_of(idx, op, alg, "floor", kind)
            loose = median_of(idx, op, alg, "loose floor", kind)
            jot = median_of(idx, op, alg, "jotkit", kind)
            ver = median_of(idx, op, alg, "jotkit Verifier", kind)
            pyjwt = median_of(idx, op, alg, "PyJWT", kind)
            row += [
                _fmt_ratio(_ratio(jot, floor)),
                _fmt_ratio(_ratio(ver, floor)),
                _fmt_ratio(_ratio(jot, loose)),
                _fmt_ratio(_ratio(ver, loose)),
                _fmt_ratio(_ratio(pyjwt, jot)),
                _fmt_ratio(_ratio(pyjwt, ver)),
            ]
            lines.append("| " + " | ".join(row) + " |")
    if notes and footnotes:
        lines += ["", *notes]
    return "\n".join(lines)


@dataclass(frozen=True)
class Target:
    """One performance target from issue 2: ``impl`` vs ``ref`` for one row."""

    label: str
    op: str
    alg: str
    impl: str
    ref: str
    kind: str  # "max-ratio": impl/ref <= bound; "min-speedup": ref/impl >= bound
    bound: float


def targets(algs: Sequence[str], ops: Sequence[str]) -> list[Target]:
    """The targets of issue 10 §4 (verify, against the tight floor) and issue 2 (sign), for
    the rows this run measured."""
    out = []
    for alg in algs:
        if "verify" in ops:
            if alg == "HS256":
                out += [
                    Target("verify HS256: jotkit Verifier ≤ 1.1× floor",
                           "verify", alg, "jotkit Verifier", "floor", "max-ratio", 1.1),
                    Target("verify HS256: jotkit.decode ≤ 1.3× floor",
                           "verify", alg, "jotkit", "floor", "max-ratio", 1.3),
                ]  # fmt: skip
                for impl in ("jotkit", "jotkit Verifier"):
                    out.append(
                        Target(f"verify HS256: {impl} ≥ 5× faster than PyJWT",
                               "verify", alg, impl, "PyJWT", "min-speedup", 5.0)
                    )  # fmt: skip
            else:
                for impl in ("jotkit Verifier", "jotkit"):
                    out.append(
                        Target(f"verify {alg}: {impl} ≤ 1.05× floor",
                               "verify", alg, impl, "floor", "max-ratio", 1.05)
                    )  # fmt: skip
        if "sign" in ops:
            limit = 1.2 if alg == "HS256" else 1.15
            out.append(
                Target(f"sign {alg}: jotkit.encode ≤ {limit}× floor",
                       "sign", alg, "jotkit", "floor", "max-ratio", limit)
            )  # fmt: skip
    return out


def evaluate(
    cells: Sequence[Cell], algs: Sequence[str], ops: Sequence[str]
) -> list[dict[str, Any]]:
    """Pass/fail per target (None when a side was not measured)."""
    idx = index(cells)
    results = []
    for t in targets(algs, ops):
        values = []
        for kind in ("median", "min"):
            mine = median_of(idx, t.op, t.alg, t.impl, kind)
            ref = median_of(idx, t.op, t.alg, t.ref, kind)
            values.append(_ratio(mine, ref) if t.kind == "max-ratio" else _ratio(ref, mine))
        value, best = values
        if value is None:
            ok = None
        else:
            ok = value <= t.bound if t.kind == "max-ratio" else value >= t.bound
        results.append({"target": t.label, "value": value, "pass": ok, "value_min": best})
    return results


def render_targets(results: Sequence[Mapping[str, Any]]) -> str:
    """The targets as a markdown table."""
    lines = [
        "| target | measured (medians) | result | same ratio of best samples |",
        "|---|---|---|---|",
    ]
    for r in results:
        verdict = "n/a" if r["pass"] is None else ("PASS" if r["pass"] else "FAIL")
        lines.append(
            f"| {r['target']} | {_fmt_ratio(r['value'])} | {verdict} "
            f"| {_fmt_ratio(r.get('value_min'))} |"
        )
    return "\n".join(lines)


def spread_note(cells: Sequence[Cell]) -> str:
    """The noisiest cell: (max - min) / median over its samples."""
    worst: tuple[float, Cell] | None = None
    for cell in cells:
        med = cell.median_us
        if med:
            spread = (max(cell.samples_us) - min(cell.samples_us)) / med
            if worst is None or spread > worst[0]:
                worst = (spread, cell)
    if worst is None:
        return "no samples"
    s, c = worst
    return f"largest sample spread (max-min)/median: {s:.0%} ({c.op} {c.alg}, {c.impl})"


def samples_text(cells: Sequence[Cell], args: argparse.Namespace) -> str:
    """'21 samples', or the range when the time budget made some rows use fewer."""
    counts = {len(c.samples_us) for c in cells if c.samples_us}
    if not counts or counts == {args.samples}:
        return f"{args.samples} samples"
    return (
        f"{min(counts)}–{max(counts)} samples (fewer than {args.samples} on some rows to keep "
        f"within the {args.budget:g} s budget on a busy machine)"
    )


def render_report(
    env: Mapping[str, Any],
    cells: Sequence[Cell],
    algs: Sequence[str],
    ops: Sequence[str],
    args: argparse.Namespace,
    target_results: Sequence[Mapping[str, Any]],
) -> str:
    """The whole markdown document (also printed)."""
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    load0, load1 = env["load_start"], env["load_end"]
    clock_name = "thread CPU time" if args.clock == "cpu" else "wall time"
    lines = [
        "# jotkit core benchmark",
        "",
        f"- Date: {env['date']}; wall time {env['wall_s']:.0f} s",
        f"- Command: `{env['command']}`",
        f"- Python: {env['python']} on {env['platform']}",
        f"- CPU: {env['cpu']} ({env['cpus']} logical CPUs, shared with other work)",
        f"- Load average (1/5/15 min) at start: {load0[0]:.2f} / {load0[1]:.2f} / {load0[2]:.2f}; "
        f"at end: {load1[0]:.2f} / {load1[1]:.2f} / {load1[2]:.2f}",
        f"- Versions: {versions}",
        f"- Method: median of {samples_text(cells, args)} per cell, each ≈{args.sample_time:g} s "
        f"({clock_name}) of back-to-back calls (loop count calibrated per cell); "
        "implementations interleaved sample by sample; garbage collector "
        + ("ENABLED" if env["gc_enabled"] else "disabled")
        + "; keys prepared once per library; all verifiers check the same token.",
        f"- {spread_note(cells)}",
        "- Columns: µs per operation (lower is better); 'floor' is the tight floor, 'loose "
        "floor' the one used before issue 9 (both in this run); ratios > 1 in 'jotkit / floor' "
        "mean slower than the floor; 'PyJWT / jotkit' is jotkit's speed-up over PyJWT. "
        "For sign rows the jotkit column is `jotkit.encode`.",
        "",
        render_table(cells, algs, ops),
        "",
        "## Targets (issue 10 §4 for verify, issue 2 for sign; against the tight floor)",
        "",
        "Judged on the medians above; the last column is the same ratio computed from each "
        "cell's best (minimum) sample, a lower-noise reference on a busy machine.",
        "",
        render_targets(target_results),
        "",
        "## Best sample (minimum) µs, for reference",
        "",
        render_table(cells, algs, ops, kind="min", footnotes=False),
        "",
        "## What each column calls",
        "",
        *(f"- **{k}**: {v}" for k, v in STATIC_NOTES.items()),
        "",
        "Every verifier was first run on the shared token (must return the right `sub`) and "
        f"on tokens it must reject ({', '.join(REJECT_CASES)}); † marks a verifier that "
        "accepted one of them. Every signer's token was verified by jotkit before timing.",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- profile
def _short(func: tuple[str, int, str]) -> str:
    filename, line, name = func
    if filename == "~":
        return name  # a built-in
    parts = Path(filename).parts
    where = "/".join(parts[parts.index("src") + 1 :]) if "src" in parts else Path(filename).name
    return f"{where}:{line}({name})"


def profile_table(prof: cProfile.Profile, calls: int, per_op_us: float, top: int) -> str:
    """The ``top`` functions by own time: share of the profiled time, that share of the
    unprofiled µs/op (an estimate: cProfile's overhead is per Python call), calls per op."""
    stats = pstats.Stats(prof)
    entries = stats.stats.items()  # type: ignore[attr-defined]
    total = sum(v[2] for _, v in entries) or 1.0
    rows = sorted(entries, key=lambda kv: kv[1][2], reverse=True)
    lines = ["   own %   ≈own µs/op    cum %   calls/op  function"]
    for func, (_cc, ncalls, tottime, cumtime, _callers) in rows[:top]:
        lines.append(
            f"  {tottime / total:6.1%}   {tottime / total * per_op_us:9.2f}   "
            f"{min(cumtime / total, 1.0):6.1%}   {ncalls / calls:8.1f}  {_short(func)}"
        )
    return "\n".join(lines)


def profile(algs: Sequence[str], seconds: float = 1.5, top: int = 20) -> str:
    """cProfile of jotkit's Verifier.decode, decode and encode per algorithm, sorted by
    own time (tottime). cProfile's per-call overhead inflates Python functions relative
    to C ones, so the µs column is an estimate; the unprofiled µs/op is the real cost."""
    out: list[str] = []
    for alg in algs:
        m = make_material(alg)
        verifier = jotkit.Verifier(m.jot_public, algorithms=[alg], issuer=ISSUER, audience=AUDIENCE)
        jot_verify, jot_sign = _adapt_jotkit(m)
        targets_ = {
            "jotkit.Verifier(...).decode(token)": partial(verifier.decode, m.token),
            "jotkit.decode(token, ...)": partial(jot_verify, m.token),
            "jotkit.encode(claims, ...)": jot_sign,
        }
        for name, call in targets_.items():
            loops = calibrate(call, seconds / 6)
            per = statistics.median(_run(call, loops) / loops * 1e6 for _ in range(5))
            prof = cProfile.Profile()
            prof.enable()
            _run(call, loops)
            prof.disable()
            out.append(
                f"\n=== {name} {alg}: {per:.2f} µs/op unprofiled (median of 5), "
                f"{loops} ops profiled; top {top} by own time ==="
            )
            out.append(profile_table(prof, loops, per, top))
    return "\n".join(out)


# --------------------------------------------------------------------------- main
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="3 short samples per cell (smoke run)")
    p.add_argument("--only", default="", help=f"comma-separated algorithms from {', '.join(ALGS)}")
    p.add_argument("--ops", default="verify,sign", help="comma-separated: verify,sign")
    p.add_argument("--json", metavar="PATH", help="also write raw results as JSON")
    p.add_argument("--output", metavar="PATH",
                   help="markdown output (default benchmarks/results.md for full runs; "
                   "--quick/--only runs only print unless this is given)")  # fmt: skip
    p.add_argument(
        "--clock",
        choices=sorted(CLOCKS),
        default="cpu",
        help="cpu: thread CPU time (default; robust on a shared machine); wall: perf_counter",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=200.0,
        help="wall-time budget in seconds (default 200; 0 = none): under heavy load later rows "
        f"get fewer samples (not below {MIN_SAMPLES}), then shorter ones",
    )
    p.add_argument("--samples", type=int, help="samples per cell (default 21, quick 3)")
    p.add_argument(
        "--sample-time", type=float, help="seconds per sample (default 0.05, quick 0.01)"
    )
    p.add_argument("--profile", action="store_true",
                   help="print cProfile of jotkit decode/Verifier/encode and exit")  # fmt: skip
    args = p.parse_args(argv)
    args.algs = [a for a in args.only.split(",") if a] or list(ALGS)
    for alg in args.algs:
        if alg not in ALGS:
            p.error(f"unknown algorithm {alg!r}; choose from {', '.join(ALGS)}")
    args.op_list = [o for o in args.ops.split(",") if o]
    for op in args.op_list:
        if op not in OPS:
            p.error(f"unknown operation {op!r}")
    if args.samples is None:
        args.samples = 3 if args.quick else 21
    if args.sample_time is None:
        args.sample_time = 0.01 if args.quick else 0.05
    if args.samples < 1 or args.sample_time <= 0:
        p.error("--samples and --sample-time must be positive")
    return args


MIN_SAMPLES = 7


def plan(
    budget_left: float,
    groups_left: int,
    cells: int,
    unit_s: float | None,
    want: int,
    sample_time: float,
) -> tuple[int, float]:
    """Samples and sample time for the next group so that the run keeps to its wall-time
    budget on a busy machine: fewer samples first (never below 7), then shorter ones.

    ``unit_s`` is the wall time one cell-sample has cost so far (contention included).
    """
    if unit_s is None or budget_left == float("inf"):
        return want, sample_time
    allowance = max(budget_left, 0.0) / max(groups_left, 1)
    fits = int(allowance / (cells * unit_s)) if cells else want
    least = min(MIN_SAMPLES, want)
    if fits >= want:
        return want, sample_time
    if fits >= least:
        return fits, sample_time
    return least, max(0.01, sample_time * max(fits, 1) / least)


def run(args: argparse.Namespace) -> tuple[dict[str, Any], list[Cell], list[dict[str, Any]]]:
    """Build, check and time every cell; return (environment, cells, target results)."""
    env = environment()
    env["load_start"] = os.getloadavg()
    env["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    started = time.perf_counter()
    deadline = started + args.budget if args.budget > 0 else float("inf")
    groups_left = len(args.algs) * len(args.op_list)
    unit_costs: list[float] = []  # wall seconds per cell-sample, per group (normalized)
    cells: list[Cell] = []
    for alg in args.algs:
        m = make_material(alg)
        for op in args.op_list:
            group = build_cells(op, m)
            live = sum(c.call is not None for c in group)
            unit = statistics.median(unit_costs) if unit_costs else None
            samples, sample_time = plan(
                deadline - time.perf_counter(),
                groups_left,
                live,
                unit,
                args.samples,
                args.sample_time,
            )
            t0 = time.perf_counter()
            time_cells(group, samples, sample_time, CLOCKS[args.clock])
            if live:  # normalize to the configured sample time
                spent = time.perf_counter() - t0
                unit_costs.append(spent / (live * samples) * args.sample_time / sample_time)
            groups_left -= 1
            cells += group
            done = ", ".join(f"{c.impl} {_fmt(c.median_us)}" for c in group)
            note = "" if samples == args.samples else f" [{samples} samples of {sample_time:g} s]"
            print(f"# {op} {alg}{note}: {done}", file=sys.stderr, flush=True)
    env["load_end"] = os.getloadavg()
    env["wall_s"] = time.perf_counter() - started
    return env, cells, evaluate(cells, args.algs, args.op_list)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for ``make bench``."""
    args = parse_args(argv)
    if args.profile:
        print(profile(args.algs if args.only else ["HS256", "ES256"]))
        return 0
    env, cells, target_results = run(args)
    report = render_report(env, cells, args.algs, args.op_list, args, target_results)
    print(report)
    output = args.output
    if output is None and not args.quick and not args.only:
        output = str(HERE / "results.md")
    if output:
        Path(output).write_text(report, encoding="utf-8")
        print(f"wrote {output}", file=sys.stderr)
    if args.json:
        data = {
            "environment": env,
            "samples": args.samples,
            "sample_time_s": args.sample_time,
            "cells": [c.to_json() for c in cells],
            "targets": target_results,
        }
        Path(args.json).write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
