"""The rotation rules over data (:mod:`jotkit.server.store.rotation`), RFC 6749 §6 and
RFC 9700 §4.14.2: every backend runs these through the same function."""

from __future__ import annotations

import pytest

from jotkit.server.store.base import FamilyRecord, RotateOutcome, UserRecord
from jotkit.server.store.rotation import (
    READ,
    REVOKE_REASON,
    RotationRow,
    decide_refusal,
    idle_expiry,
    numbered,
    parse_row,
    within_grace,
)

NOW = 1_800_000_000.0
GRACE = 5.0


def _family(**changes: object) -> FamilyRecord:
    values: dict[str, object] = {
        "id": "fam", "user_id": "u1", "created_at": NOW - 100, "last_used_at": NOW - 50,
        "idle_expires_at": NOW + 3600, "absolute_expires_at": NOW + 86400,
        "client_id": None,
    }
    values.update(changes)
    return FamilyRecord(**values)  # type: ignore[arg-type]


USER = UserRecord("u1", "a@example.com", "$argon2id$x", ("user",), False, NOW - 1000)


def _row(
    *, spent_at: float | None = None, spent_by: str | None = None,
    user: UserRecord | None = USER, **family: object,
) -> RotationRow:
    return RotationRow(spent_at, spent_by, _family(**family), user)


def _decide(row: RotationRow | None, client: str = "c1", client_id: str | None = None) -> object:
    return decide_refusal(row, NOW, GRACE, client=client, client_id=client_id)


def test_unspent_token_of_a_live_family_rotates() -> None:
    assert _decide(_row()) is None
    assert _decide(_row(client_id="app"), client_id="app") is None


def test_unknown_token_is_not_found() -> None:
    assert _decide(None) is RotateOutcome.NOT_FOUND


def test_refresh_token_of_another_client_is_refused() -> None:
    """RFC 6749 §6: a refresh token is bound to the client it was issued to."""
    assert _decide(_row(client_id="victim"), client_id="thief") is RotateOutcome.WRONG_CLIENT
    # an OAuth client's token at the first-party endpoint, and the other way round
    assert _decide(_row(client_id="victim"), client_id=None) is RotateOutcome.WRONG_CLIENT
    assert _decide(_row(client_id=None), client_id="thief") is RotateOutcome.WRONG_CLIENT
    assert REVOKE_REASON[RotateOutcome.WRONG_CLIENT] == "wrong_client"


def test_refresh_of_a_disabled_or_deleted_user_is_refused() -> None:
    disabled = UserRecord("u1", "a@example.com", "h", ("user",), True, NOW)
    assert _decide(_row(user=disabled)) is RotateOutcome.USER_DISABLED
    assert _decide(_row(user=None)) is RotateOutcome.USER_DISABLED
    assert REVOKE_REASON[RotateOutcome.USER_DISABLED] == "disabled"


def test_revoked_family_is_refused_spent_or_not() -> None:
    assert _decide(_row(revoked_at=NOW - 1)) is RotateOutcome.REVOKED
    spent = _row(spent_at=NOW - 1, spent_by="c1", revoked_at=NOW - 1)
    assert _decide(spent) is RotateOutcome.REVOKED  # no second revocation
    assert RotateOutcome.REVOKED not in REVOKE_REASON


@pytest.mark.parametrize("field", ["idle_expires_at", "absolute_expires_at"])
def test_unspent_token_of_an_expired_family_is_expired(field: str) -> None:
    assert _decide(_row(**{field: NOW})) is RotateOutcome.EXPIRED


def test_retry_by_the_same_client_within_grace_is_benign() -> None:
    assert _decide(_row(spent_at=NOW - GRACE, spent_by="c1")) is RotateOutcome.RETRY
    assert RotateOutcome.RETRY not in REVOKE_REASON


def test_reuse_after_grace_revokes_the_family() -> None:
    """RFC 9700 §4.14.2: a spent token presented again means it leaked."""
    assert _decide(_row(spent_at=NOW - GRACE - 0.001, spent_by="c1")) is RotateOutcome.REUSED
    assert REVOKE_REASON[RotateOutcome.REUSED] == "reuse"


def test_reuse_by_another_client_within_grace_revokes_the_family() -> None:
    assert _decide(_row(spent_at=NOW - 1, spent_by="c1"), client="c2") is RotateOutcome.REUSED
    # a spent token whose family has since expired is still a reuse
    late = _row(spent_at=NOW - 100, spent_by="c1", idle_expires_at=NOW - 10)
    assert _decide(late) is RotateOutcome.REUSED


def test_spent_token_of_another_oauth_client_is_reuse_not_a_second_rotation() -> None:
    row = _row(spent_at=NOW - 100, spent_by="c1", client_id="victim")
    assert _decide(row, client_id="thief") is RotateOutcome.REUSED


def test_grace_rule() -> None:
    assert within_grace(NOW - 1, "c1", NOW, GRACE, "c1")
    assert not within_grace(NOW - 1, "c2", NOW, GRACE, "c1")
    assert not within_grace(None, "c1", NOW, GRACE, "c1")
    assert not within_grace(NOW - 1, "c1", NOW, 0.0, "c1")


def test_idle_expiry_never_passes_the_absolute_lifetime() -> None:
    assert idle_expiry(_family(), NOW, 60) == NOW + 60
    assert idle_expiry(_family(absolute_expires_at=NOW + 30), NOW, 60) == NOW + 30


def test_row_columns_in_order() -> None:
    values = (0.5, "c1", "fam", "u1", 1.0, 2.0, 3.0, 4.0, None, None, "ua", "ip", "app",
              "u1", "a@example.com", "h", '["user","admin"]', 0, 9.0)
    row = parse_row(values)
    assert row.family == FamilyRecord("fam", "u1", 1.0, 2.0, 3.0, 4.0, None, None, "ua", "ip",
                                      "app")
    assert row.user == UserRecord("u1", "a@example.com", "h", ("user", "admin"), False, 9.0)
    assert parse_row(values[:13] + (None,) * 6).user is None


def test_numbered_placeholders() -> None:
    assert numbered("a = ? AND b = ?") == "a = $1 AND b = $2"
    assert "?" not in numbered(READ) and "$1" in numbered(READ)
