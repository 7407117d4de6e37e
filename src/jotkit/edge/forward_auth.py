"""The forward-auth service: a raw ASGI app that answers a reverse proxy's auth subrequest.

nginx ``auth_request``, Traefik ``forwardAuth``, Caddy ``forward_auth`` and Envoy
``ext_authz`` (HTTP) send each client request's headers here first. The bearer token
(RFC 6750 §2.1) is verified by the one :class:`jotkit.integrations.TokenVerifier` (JWKS
client, verified-token cache, scope and role checks), and the answer is:

* **200** with ``X-Auth-Subject``, ``X-Auth-Scope`` (space-separated), ``X-Auth-Roles``
  (comma-separated), ``X-Auth-Claims`` (base64url of the claims JSON, RFC 4648 §5) and one
  header per configured claim mapping; the proxy copies them to the upstream request;
* **401** with ``WWW-Authenticate: Bearer ...`` (RFC 6750 §3) for a missing, malformed,
  invalid or expired token;
* **403** ``insufficient_scope`` (RFC 6750 §3.1) when a required scope or role is missing,
  and, when per-path rules are configured, ``invalid_request`` for a request URI that cannot
  be matched to a rule;
* **503** with ``Retry-After`` only when the signing keys cannot be fetched.

Nothing a client sends leads to another status: gateways treat any status but 2xx, 401 and
403 as an error of their own (nginx answers 500). Header values are printable ASCII: any
other character, ``%`` and space are percent-encoded as UTF-8 (RFC 3986 §2.1).

DPoP (RFC 9449 §7): ``Authorization: DPoP <token>`` with one ``DPoP`` proof header is
checked by the verifier (signature, ``typ``, ``alg``, ``htm``/``htu``, ``iat`` window,
``ath``, ``cnf.jkt``, ``jti`` replay) against the ORIGINAL request as the proxy reports it
(:func:`original_request`): the method from ``X-Forwarded-Method`` / ``X-Original-Method``,
the URL from the configured ``public_url`` (else ``X-Forwarded-Proto`` +
``X-Forwarded-Host``) and ``X-Forwarded-Uri`` / ``X-Original-URI``. A proof is single-use,
so a DPoP request is never answered from the memo of allow decisions. Its refusals carry
a ``WWW-Authenticate: DPoP ..., algs="..."`` challenge (RFC 9449 §7.1). A DPoP-bound token
sent as ``Bearer`` is refused (RFC 9449 §7.2).

The request's path for per-prefix rules comes from ``X-Forwarded-Uri`` / ``X-Original-URI``
(else the request's own path, as Envoy sends it); when several are sent they must agree, so a
client-supplied copy cannot pick a laxer rule. The app is a plain ASGI callable (no
framework): the cost of a cached token is a dictionary lookup and the time checks.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote

from jotkit.integrations import (
    BearerError,
    RevocationSubscriber,
    TokenVerifier,
    claim_roles,
    claim_scopes,
)

from ._config import ForwardAuthConfig, PathRule, normalize_path
from ._head import PREPARED_HEAD, prepare_head

__all__ = ["ForwardAuthApp", "build_verifier", "claim_headers", "original_request"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_log = logging.getLogger("jotkit.edge.forward_auth")

# printable ASCII but "%" (the escape) and space (trimmed by HTTP parsers, the scope separator)
_PLAIN = re.compile(r"[\x21-\x24\x26-\x7e]*")
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "%")
_URI_HEADERS = (b"x-forwarded-uri", b"x-original-uri")
_MAX_LOGGED = 512
_MEMO_MAX = 4096
# a decision to allow: (200 headers, decided at, reusable until (epoch seconds), the ASGI
# response start message, sent as is: uvicorn only reads it, the revocation deny-set's
# version when decided: any change of the deny-set sends the token to the verifier again)
_Granted = tuple[list[tuple[bytes, bytes]], float, float, dict[str, Any], int]
_EMPTY_BODY: dict[str, Any] = {"type": "http.response.body", "body": b""}
_UNSEEN, _BAD = object(), object()
# the headers that tell forward-auth the client's original request (RFC 9449 §4.3 steps 8-9)
_FORWARDED_REQUEST = {
    b"x-forwarded-method": "method", b"x-original-method": "method",
    b"x-forwarded-uri": "uri", b"x-original-uri": "uri",
    b"x-forwarded-proto": "proto", b"x-forwarded-host": "host",
}  # fmt: skip
_FORWARDED_NAMES = {
    "method": "X-Forwarded-Method or X-Original-Method",
    "uri": "X-Forwarded-Uri or X-Original-URI",
    "proto": "X-Forwarded-Proto",
    "host": "X-Forwarded-Host",
}
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}")  # RFC 9110 §9.1: a token
_ORIGIN_FORM = re.compile(r"/[\x21-\x7e]*")  # RFC 9112 §3.2.1, printable ASCII only
# RFC 3986 §3.2.2-3.2.3: a reg-name of unreserved characters or a bracketed IPv6 literal
_HOST = re.compile(r"(?:[A-Za-z0-9\-._~]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _encode(text: str, also: str = "") -> str:
    """``text`` as a safe header value: unchanged when plain, else percent-encoded UTF-8."""
    if _PLAIN.fullmatch(text) and not (also and any(c in text for c in also)):
        return text
    safe = _SAFE.translate({ord(c): None for c in also}) if also else _SAFE
    return quote(text, safe=safe, encoding="utf-8", errors="surrogatepass")


def _claim_value(value: Any) -> str | None:
    if isinstance(value, str):
        return _encode(value)
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ",".join(_encode(v, ",") for v in value)
    if value is None:
        return None
    return _encode(json.dumps(value, separators=(",", ":"), ensure_ascii=False))


def claim_headers(
    claims: Mapping[str, Any], mapping: tuple[tuple[str, str], ...] = ()
) -> list[tuple[bytes, bytes]]:
    """The identity headers of a 200 answer for verified ``claims`` (ASGI byte pairs).

    Scopes (RFC 8693 §4.2) and roles (RFC 9068 §7.2.1.1) are sorted; a mapped claim missing
    from the token gives an empty header, which replaces a client-sent one in every proxy
    (nginx then sends none; Caddy 2.6 would copy its placeholder text for an absent one).
    """
    out: list[tuple[bytes, bytes]] = []
    sub = claims.get("sub")
    if isinstance(sub, str):
        out.append((b"x-auth-subject", _encode(sub).encode("ascii")))
    scopes = " ".join(_encode(s) for s in sorted(claim_scopes(claims)))
    out.append((b"x-auth-scope", scopes.encode("ascii")))
    roles = ",".join(_encode(r, ",") for r in sorted(claim_roles(claims)))
    out.append((b"x-auth-roles", roles.encode("ascii")))
    blob = json.dumps(claims, separators=(",", ":"), ensure_ascii=False, sort_keys=True)
    packed = base64.urlsafe_b64encode(blob.encode("utf-8", "surrogatepass")).rstrip(b"=")
    out.append((b"x-auth-claims", packed))
    for claim, header in mapping:
        value = _claim_value(claims.get(claim)) or ""
        out.append((header.lower().encode("ascii"), value.encode("ascii")))
    return out


def _no_original_request(description: str, reason: str, algs: Iterable[str]) -> BearerError:
    return BearerError(401, "invalid_dpop_proof", description, reason=reason,
                       dpop_algs=sorted(algs))  # fmt: skip


def original_request(
    headers: Iterable[tuple[bytes, bytes]],
    public_url: str | None = None,
    *,
    algorithms: Iterable[str] = ("ES256",),
) -> tuple[str, str]:
    """The method and URL of the client's request, which a DPoP proof's ``htm``/``htu``
    must name (RFC 9449 §4.3 steps 8-9), from the headers the proxy set on the auth request.

    The method comes from ``X-Forwarded-Method`` / ``X-Original-Method``, the path and
    query from ``X-Forwarded-Uri`` / ``X-Original-URI``, the origin from ``public_url``
    when configured, else from ``X-Forwarded-Proto`` + ``X-Forwarded-Host``. A header that
    is missing, several that disagree (a client-sent copy next to the proxy's) or a value
    that cannot be part of a URL is a 401 ``invalid_dpop_proof`` :class:`BearerError` whose
    challenge names ``algorithms`` (RFC 9449 §7.1): fail closed, never guess.
    """
    seen: dict[str, set[bytes]] = {}
    for name, value in headers:
        kind = _FORWARDED_REQUEST.get(name)
        if kind is not None:
            seen.setdefault(kind, set()).add(value)

    def one(kind: str) -> str:
        values = seen.get(kind)
        if not values:
            raise _no_original_request(
                f"The gateway did not send {_FORWARDED_NAMES[kind]}: the DPoP proof cannot "
                "be checked", "dpop_no_forwarded_request", algorithms)  # fmt: skip
        if len(values) > 1:
            raise _no_original_request(
                f"Conflicting {_FORWARDED_NAMES[kind]} headers", "dpop_conflicting_forwarded",
                algorithms)  # fmt: skip
        return next(iter(values)).decode("latin-1")

    method, uri = one("method"), one("uri")
    if public_url is not None:
        origin = public_url
    else:
        proto, host = one("proto").lower(), one("host")
        if proto not in ("http", "https") or not _HOST.fullmatch(host):
            raise _no_original_request("The forwarded scheme or host is not a URL origin",
                                       "dpop_bad_forwarded_request", algorithms)
        origin = f"{proto}://{host}"
    if not _METHOD.fullmatch(method) or not _ORIGIN_FORM.fullmatch(uri):
        raise _no_original_request("The forwarded method or URI is malformed",
                                   "dpop_bad_forwarded_request", algorithms)
    return method, origin + uri


def build_verifier(config: ForwardAuthConfig) -> TokenVerifier:
    """The TokenVerifier for ``config``: a JWKS client, issuer, audience, required grants.

    ``sub`` is required besides ``exp`` (RFC 9068 §2.2): the answer names the subject.
    With ``revocations`` the verifier subscribes to the issuer's revocation feed.
    """
    from jotkit.jwks_client import JWKSClient

    jwks = JWKSClient(config.jwks_url, allow_insecure_http=config.allow_insecure_http)
    options: dict[str, Any] = {
        "issuer": config.issuer,
        "audience": config.audience,
        "require": ("exp", "sub"),
        "scopes": config.require_scopes,
        "roles": config.require_roles,
    }
    if config.revocations is not None:
        assert config.revocations_client_id is not None  # load_config requires both
        assert config.revocations_client_secret is not None
        options.update(
            revocations=config.revocations,
            revocations_auth=(config.revocations_client_id, config.revocations_client_secret),
            revocations_fail_open=config.revocations_fail_open,
            revocations_allow_insecure_http=config.allow_insecure_http,
        )
    return TokenVerifier(jwks, **options)


class _Decisions:
    """Answers by (status, reason), exported as one Prometheus counter.

    A plain dict of ints bumped on the event loop (one thread) and read by a collector at
    scrape time: a labelled ``prometheus_client.Counter`` takes a lock per increment, which
    was the largest cost of a cached token after the verifier itself.
    """

    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry

        self.counts: dict[tuple[str, str], int] = {}
        self.ok = 0  # 200 answers, the hot path's one attribute
        self.registry = registry if registry is not None else CollectorRegistry()
        self.registry.register(self)

    def add(self, status: int, reason: str) -> None:
        key = (str(status), reason)
        self.counts[key] = self.counts.get(key, 0) + 1

    def collect(self) -> Any:
        """Yield ``jotkit_forward_auth_decisions_total{status,reason}`` (prometheus_client)."""
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "jotkit_forward_auth_decisions",
            "Forward-auth answers by status and reason code.",
            labels=["status", "reason"],
        )
        counts = self.counts.copy()
        if self.ok:
            counts[("200", "ok")] = self.ok
        for (status, reason), count in sorted(counts.items()):
            family.add_metric([status, reason], count)
        yield family

    def describe(self) -> Any:
        """No fixed description: the registry calls :meth:`collect` (prometheus_client)."""
        return []


class _FeedMetrics:
    """The revocation feed subscription's health as Prometheus metrics (read at scrape)."""

    def __init__(self, subscriber: RevocationSubscriber, registry: Any) -> None:
        self.subscriber = subscriber
        registry.register(self)

    def collect(self) -> Any:
        """Yield the ``jotkit_forward_auth_revocations_*`` families (prometheus_client)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        status = self.subscriber.status()
        prefix = "jotkit_forward_auth_revocations"
        yield GaugeMetricFamily(
            f"{prefix}_synced", "1 while the revocation feed is connected and caught up.",
            value=1.0 if status.synced else 0.0,
        )
        yield GaugeMetricFamily(
            f"{prefix}_sync_age_seconds",
            "Seconds since the revocation feed last confirmed the deny-set (-1: never).",
            value=-1.0 if status.sync_age is None else status.sync_age,
        )
        yield GaugeMetricFamily(
            f"{prefix}_denied", "Revoked jti values held.", value=float(status.denied)
        )
        yield CounterMetricFamily(
            f"{prefix}_unsynced_accepts",
            "Tokens accepted while the feed was not synced (fail open).",
            value=float(status.unsynced_accepts),
        )
        yield CounterMetricFamily(
            f"{prefix}_disconnects", "Times the feed connection was lost.",
            value=float(status.disconnects),
        )

    def describe(self) -> Any:
        """No fixed description: the registry calls :meth:`collect` (prometheus_client)."""
        return []


class ForwardAuthApp:
    """The ASGI callable (HTTP and lifespan). Every path and method is an auth check.

    ``verifier`` defaults to :func:`build_verifier` of ``config``; ``registry`` is a
    ``prometheus_client.CollectorRegistry`` (a new one by default, see :attr:`registry`).
    """

    def __init__(
        self,
        config: ForwardAuthConfig,
        *,
        verifier: TokenVerifier | None = None,
        registry: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Prepare the app; see the class docstring."""
        self.config = config
        self.verifier = verifier if verifier is not None else build_verifier(config)
        self._decisions = _Decisions(registry)
        self.registry = self._decisions.registry
        self._clock = clock
        self._rules = bool(config.paths)
        # memos, bounded: (Authorization, rule) -> 200 headers; raw URI -> rule
        self._granted: dict[tuple[bytes, str | None], _Granted] = {}
        self._rule_of: dict[bytes | None, object] = {}
        feed = self.verifier.revocations
        self._deny_set = feed.deny_set if feed is not None else None
        if feed is not None:
            _FeedMetrics(feed, self.registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point; the fast path answers a decision made moments ago."""
        if scope["type"] != "http":
            await self._other(scope, receive, send)
            return
        raw_headers = scope["headers"]
        headers = dict(raw_headers)
        authorization = headers.get(b"authorization")
        if authorization is not None and len(headers) == len(raw_headers):  # no name twice
            rule: Any = None
            if self._rules:
                raw = headers.get(b"x-forwarded-uri")
                if raw is None:
                    raw = headers.get(b"x-original-uri", scope.get("raw_path"))
                elif b"x-original-uri" in headers:
                    raw = None  # both URI headers: the slow path checks that they agree
                rule = self._rule_of.get(raw, _UNSEEN)
            if rule is not _UNSEEN and rule is not _BAD:
                hit = self._granted.get((authorization, rule.prefix if rule else None))
                if hit is not None and hit[1] <= self._clock() < hit[2] and (
                    self._deny_set is None or hit[4] == self._deny_set.version
                ):
                    await send(hit[3])
                    await send(_EMPTY_BODY)
                    self._decisions.ok += 1
                    if _log.isEnabledFor(logging.DEBUG):
                        sent = [v for n, v in raw_headers if n in _URI_HEADERS]
                        self._log(logging.DEBUG, scope, sent, 200, "ok", hit[0])
                    return
        authorization = None
        several = False
        uris: list[bytes] = []
        for name, value in raw_headers:
            if name == b"authorization":
                several = authorization is not None
                authorization = value
            elif name in _URI_HEADERS:
                uris.append(value)
        await self._http(scope, send, authorization, several, uris)

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.verifier.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        elif scope["type"] == "websocket":  # an upgrade is not an auth check: refuse it
            await send({"type": "websocket.close", "code": 1008})

    async def _http(
        self, scope: Scope, send: Send, authorization: bytes | None, several: bool,
        uris: list[bytes],
    ) -> None:  # fmt: skip
        try:
            rule = self._rule(scope, uris) if self._rules else None  # else: URI only logged
            if several:
                raise BearerError(
                    401, "invalid_request", "Several Authorization headers",
                    reason="malformed_header",
                )  # fmt: skip
            if authorization is not None and authorization[:5].lower() == b"dpop ":
                start = await self._allow_dpop(scope, authorization, rule)
            else:
                start = await self._allow(authorization, rule)
        except BearerError as exc:
            await self._deny(scope, send, exc, uris)
            return
        except Exception:  # a bug, not bad input: fail closed, loudly
            _log.exception("forward-auth failed")
            await self._deny(scope, send, _internal_error(), uris)
            return
        await send(start)
        await send(_EMPTY_BODY)
        self._decisions.ok += 1
        if _log.isEnabledFor(logging.DEBUG):
            self._log(logging.DEBUG, scope, uris, 200, "ok", start["headers"])

    def _rule(self, scope: Scope, uris: list[bytes]) -> PathRule | None:
        """The rule of the request's original path (the URI headers must agree)."""
        if len(uris) == 1:
            raw = uris[0]
        elif uris:
            paths = {normalize_path(u.decode("latin-1")) for u in uris}
            if len(paths) != 1:
                raise _bad_uri("Conflicting X-Forwarded-Uri / X-Original-URI headers")
            raw = uris[0]
        else:
            raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        rule = self._rule_of.get(raw, _UNSEEN)
        if rule is _UNSEEN:
            path = normalize_path(raw.decode("latin-1"))
            rule = _BAD if path is None else self.config.rule_for(path)
            _bounded_put(self._rule_of, raw, rule)
        if rule is _BAD:
            raise _bad_uri("The request URI is not a valid path")
        return rule  # type: ignore[return-value]

    async def _allow(
        self, authorization: bytes | None, rule: PathRule | None
    ) -> dict[str, Any]:
        """The 200 response start, or BearerError: the verifier's decision, reused briefly.

        A token's claims never change, so its grants for a rule are decided once. The
        verifier itself (``exp``, withdrawn keys, its own cache) is asked again once the
        decision is ``decision_ttl`` old, and never past the token's ``exp``.
        """
        prefix = rule.prefix if rule is not None else None
        now = self._clock()
        hit = self._granted.get((authorization, prefix)) if authorization is not None else None
        version = self._deny_set.version if self._deny_set is not None else 0
        if hit is not None and hit[1] <= now < hit[2] and hit[4] == version:
            return hit[3]
        verifier = self.verifier
        token = verifier.extract(
            authorization.decode("latin-1") if authorization is not None else None
        )
        claims = await verifier.averify(token)
        assert authorization is not None  # extract raised otherwise
        if hit is not None:
            rendered, start = hit[0], hit[3]  # the same answer, prepared once
        else:
            verifier.authorize(
                claims,
                scopes=rule.scopes if rule is not None else (),
                roles=rule.roles if rule is not None else (),
            )
            rendered = [
                (b"content-length", b"0"),
                *claim_headers(claims, self.config.claim_headers),
            ]
            start = {"type": "http.response.start", "status": 200, "headers": rendered,
                     PREPARED_HEAD: prepare_head(200, rendered)}  # fmt: skip
        until = min(now + self.config.decision_ttl, float(claims["exp"]))
        _bounded_put(
            self._granted, (authorization, prefix), (rendered, now, until, start, version)
        )
        return start

    async def _allow_dpop(
        self, scope: Scope, authorization: bytes, rule: PathRule | None
    ) -> dict[str, Any]:
        """The 200 response start for ``Authorization: DPoP``, or BearerError (RFC 9449 §7).

        Every request is checked in full: a proof is single-use (its ``jti`` goes into the
        verifier's replay cache), so no decision is remembered or reused. Refusals get the
        DPoP challenge with the accepted algorithms (RFC 9449 §7.1)."""
        verifier = self.verifier
        algs = sorted(verifier.dpop.algorithms)
        raw_headers = scope["headers"]
        try:
            method, url = original_request(raw_headers, self.config.public_url, algorithms=algs)
            claims = await verifier.aauthenticate(
                authorization.decode("latin-1"),
                dpop=[v.decode("latin-1") for n, v in raw_headers if n == b"dpop"],
                method=method,
                url=url,
                scopes=rule.scopes if rule is not None else (),
                roles=rule.roles if rule is not None else (),
            )
        except BearerError as exc:
            if exc.dpop_algs or exc.status >= 500:
                raise
            raise BearerError(exc.status, exc.error, exc.description, scope=exc.scope,
                              reason=exc.reason, dpop_algs=algs) from None  # fmt: skip
        rendered = [(b"content-length", b"0"), *claim_headers(claims, self.config.claim_headers)]
        return {"type": "http.response.start", "status": 200, "headers": rendered}

    async def _deny(self, scope: Scope, send: Send, exc: BearerError, uris: list[bytes]) -> None:
        # a malformed request is still "no valid token" to a gateway: 401, never 400
        status = 401 if exc.status == 400 else exc.status
        body = json.dumps(exc.body(), separators=(",", ":")).encode()
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in exc.headers(self.verifier.realm).items()
        ]
        headers.append((b"content-type", b"application/json"))
        if scope.get("method") == "HEAD":
            body = b""
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        reason = exc.reason or exc.error or "missing_token"
        self._decisions.add(status, reason)
        level = logging.WARNING if status >= 500 else logging.INFO
        if _log.isEnabledFor(level):
            self._log(level, scope, uris, status, reason, None)

    def _log(
        self,
        level: int,
        scope: Scope,
        uris: list[bytes],
        status: int,
        reason: str,
        rendered: list[tuple[bytes, bytes]] | None,
    ) -> None:
        method = scope.get("method", "")
        for name, value in scope["headers"]:
            if name == b"x-forwarded-method":
                method = value.decode("latin-1")
        uri = uris[0].decode("latin-1") if uris else scope.get("path", "")
        event: dict[str, Any] = {
            "ts": round(self._clock(), 3),
            "event": "forward_auth",
            "status": status,
            "reason": reason,
            "method": method[:16],
            "uri": uri[:_MAX_LOGGED],
        }
        if rendered is not None:
            event["sub"] = dict(rendered).get(b"x-auth-subject", b"").decode()
        _log.log(level, json.dumps(event, separators=(",", ":"), ensure_ascii=True))


def _bounded_put(memo: dict[Any, Any], key: Any, value: Any) -> None:
    """Insert into a memo of at most ``_MEMO_MAX`` entries, dropping the oldest."""
    if len(memo) >= _MEMO_MAX:
        del memo[next(iter(memo))]
    memo[key] = value


def _bad_uri(description: str) -> BearerError:
    return BearerError(403, "invalid_request", description, reason="bad_uri")


def _internal_error() -> BearerError:
    return BearerError(
        503, "temporarily_unavailable", "Internal error", reason="internal", retry_after=5
    )
