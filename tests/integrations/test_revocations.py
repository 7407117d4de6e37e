"""The sans-IO parts of the revocation feed subscriber: the event-stream parser (HTML Living
Standard §9.2.6) and the deny-set. The subscriber over real HTTP: test_revocation_feed.py."""

from __future__ import annotations

import pytest

from jotkit.integrations import TokenVerifier
from jotkit.integrations._revocations import DenySet, SseEvent, SseParser


def _events(*lines: str) -> list[SseEvent]:
    parser = SseParser()
    return [e for e in (parser.feed(line) for line in lines) if e is not None]


def test_sse_fields_comments_and_multiline_data() -> None:
    """HTML §9.2.6: ``data`` lines join with newlines, one leading space is dropped,
    comments are ignored, the last ``id`` sticks, a blank line dispatches."""
    events = _events(": keep-alive", "", "id: 7", "event: revocations", "data: a",
                     "data:b", "", "data: c", "")
    assert events == [SseEvent("revocations", "a\nb", "7"), SseEvent("message", "c", "7")]


def test_sse_retry_and_ids_with_nul_are_ignored() -> None:
    parser = SseParser(last_id="3")
    for line in ("retry: 2500", "id: 4\0", "data: x"):
        assert parser.feed(line) is None
    assert parser.feed("") == SseEvent("message", "x", "3")
    assert parser.retry == 2.5


def _apply(deny: DenySet, event: str, data: str, event_id: str | None = None) -> None:
    deny.apply(SseEvent(event, data, event_id), now=1000.0)


def test_deny_set_refuses_revoked_jti_and_tokens_issued_before_a_marker() -> None:
    deny = DenySet()
    _apply(deny, "revocations",
           '{"entries":[{"jti":"j1","exp":2000},{"sub":"u1","before":500,"exp":2000}]}', "2")
    assert deny.reason({"jti": "j1", "sub": "u2", "iat": 900}) == "revoked"
    assert deny.reason({"jti": "j2", "sub": "u1", "iat": 499}) == "revoked"
    assert deny.reason({"jti": "j2", "sub": "u1"}) == "revoked"  # no iat: cannot be after
    assert deny.reason({"jti": "j2", "sub": "u1", "iat": 500}) is None
    assert deny.reason({"jti": "j3", "sub": "u3", "iat": 1}) is None
    assert (deny.cursor, deny.version, deny.synced) == ("2", 1, False)
    _apply(deny, "ready", '{"cursor":2}', "2")
    assert deny.synced


def test_deny_set_reset_drops_everything_and_junk_is_skipped() -> None:
    deny = DenySet()
    _apply(deny, "revocations", '{"entries":[{"jti":"j1","exp":2000}]}', "1")
    for junk in ("not json", "[]", '{"entries":{}}', '{"entries":[1,{"jti":"x"},{"sub":"u"}]}'):
        _apply(deny, "revocations", junk, "1")
    assert deny.denied == {"j1": 2000.0} and deny.markers == {}
    _apply(deny, "reset", "{}")
    assert deny.denied == {} and deny.cursor is None


def test_deny_set_prune_forgets_expired_entries() -> None:
    deny = DenySet()
    _apply(deny, "revocations", '{"entries":[{"jti":"old","exp":100},{"jti":"new","exp":5000},'
                                '{"sub":"u","before":50,"exp":100}]}', "3")
    deny.prune(now=1000.0)
    assert deny.denied == {"new": 5000.0} and deny.markers == {}


def test_the_feed_url_must_be_https_off_loopback() -> None:
    """The subscription sends the client secret: plain http only on loopback (like the JWKS
    client and introspection)."""
    from jotkit import Key

    key = Key.generate("ES256", kid="k")
    with pytest.raises(ValueError):
        TokenVerifier(key.public(), revocations="http://auth.example/oauth/revocations",
                      revocations_auth=("rs", "secret"))
