"""Refresh-token rotation decided over data (sans-IO): one rule set for every backend.

A store reads the presented token's row, its family and the family's user, hands that
:class:`RotationRow` to :func:`decide_refusal`, and then either rotates (spend the old token,
insert the successor, bump the idle expiry, record the access token) or, for the outcomes in
:data:`REVOKE_REASON`, revokes the family. The read and the writes are atomic: SQLite holds
the write lock of ``BEGIN IMMEDIATE`` throughout; PostgreSQL writes with a compare-and-set
statement (:data:`ROTATE_IF_UNCHANGED`) and, when that loses a race or the family is to be
revoked, reads and decides again under the family's row lock (:data:`LOCK_FAMILY`). The
store only executes; it never decides.

The rules (RFC 6749 §6 and RFC 9700 §4.14.2, refresh token rotation):

* unknown token: ``NOT_FOUND``;
* unspent token of a live family: rotate, unless the token was issued to another OAuth
  client (``WRONG_CLIENT``, RFC 6749 §6: a refresh token is bound to its client) or the user
  is disabled or gone (``USER_DISABLED``); both revoke the family;
* family revoked: ``REVOKED`` (spent or not);
* unspent token of a family past its idle or absolute lifetime: ``EXPIRED``;
* spent token presented again by the client that spent it, within the grace window:
  ``RETRY`` (a benign double submit; nothing changes);
* any other spent token: ``REUSED``, and the family is revoked (reuse detection).

The SQL text of the rotation lives here too, as data: the same statements serve SQLite
(``?`` placeholders) and PostgreSQL (:func:`numbered` turns them into ``$n``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .base import FamilyRecord, RotateOutcome, UserRecord

__all__ = [
    "BUMP",
    "INSERT",
    "LOCK_FAMILY",
    "OUTSTANDING",
    "READ",
    "RECORD",
    "REVOKE",
    "REVOKE_REASON",
    "ROTATE_IF_UNCHANGED",
    "SPEND",
    "RotationRow",
    "decide_refusal",
    "idle_expiry",
    "numbered",
    "parse_row",
    "within_grace",
]

#: Refusals that revoke the family in the same transaction, with the ``revoke_reason``.
REVOKE_REASON: Mapping[RotateOutcome, str] = MappingProxyType(
    {
        RotateOutcome.REUSED: "reuse",
        RotateOutcome.WRONG_CLIENT: "wrong_client",
        RotateOutcome.USER_DISABLED: "disabled",
    }
)


@dataclass(frozen=True, slots=True)
class RotationRow:
    """What a store read for the presented token (see the module docstring for when it
    holds the family)."""

    spent_at: float | None
    spent_by: str | None
    family: FamilyRecord
    user: UserRecord | None  # None: the family's user row is gone


def within_grace(
    spent_at: float | None, spent_by: str | None, now: float, grace: float, client: str
) -> bool:
    """True when a spent token comes back from the client that spent it, no later than
    ``grace`` seconds after (a benign retry, not a reuse)."""
    return spent_at is not None and spent_by == client and now - spent_at <= grace


def idle_expiry(family: FamilyRecord, now: float, idle_ttl: float) -> float:
    """The family's new idle expiry after a rotation: never past its absolute lifetime."""
    return min(now + idle_ttl, family.absolute_expires_at)


def decide_refusal(
    row: RotationRow | None,
    now: float,
    grace: float,
    *,
    client: str,
    client_id: str | None,
) -> RotateOutcome | None:
    """Why the presented token must not rotate, or None when it rotates (see the module
    docstring for the rules; ``client`` is the caller's fingerprint for the grace window,
    ``client_id`` the authenticated OAuth client, None for the first-party API)."""
    if row is None:
        return RotateOutcome.NOT_FOUND
    family = row.family
    if row.spent_at is None and family.active(now):
        if family.client_id != client_id:
            return RotateOutcome.WRONG_CLIENT
        if row.user is None or row.user.disabled:
            return RotateOutcome.USER_DISABLED
        return None
    if family.revoked_at is not None:
        return RotateOutcome.REVOKED
    if row.spent_at is None:
        return RotateOutcome.EXPIRED
    if within_grace(row.spent_at, row.spent_by, now, grace, client):
        return RotateOutcome.RETRY
    return RotateOutcome.REUSED


# -- the statements (data) ---------------------------------------------------------------------
_COLUMNS = (
    "t.spent_at, t.spent_by, "
    "f.id, f.user_id, f.created_at, f.last_used_at, f.idle_expires_at, f.absolute_expires_at, "
    "f.revoked_at, f.revoke_reason, f.user_agent, f.client_ip, f.client_id, "
    "u.id, u.email, u.password_hash, u.roles, u.disabled, u.created_at"
)
_FROM = (
    "FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id "
    "LEFT JOIN users u ON u.id = f.user_id WHERE t.token_hash = ?"
)
#: The token, its family and user (SQLite: under ``BEGIN IMMEDIATE``; PostgreSQL: after
#: :data:`LOCK_FAMILY`, or unlocked before :data:`ROTATE_IF_UNCHANGED`).
READ = f"SELECT {_COLUMNS} {_FROM}"
#: PostgreSQL: lock the token's family row. Every writer of a family's tokens takes this lock
#: first (rotation, revocation), so under READ COMMITTED a :data:`READ` after it sees every
#: spend and revocation committed before, and one lock order rules out deadlocks.
LOCK_FAMILY = (
    "SELECT f.id FROM refresh_families f JOIN refresh_tokens t ON t.family_id = f.id "
    "WHERE t.token_hash = ? FOR UPDATE OF f"
)
#: The rotation's writes, under SQLite's write lock or PostgreSQL's family lock.
SPEND = "UPDATE refresh_tokens SET spent_at = ?, spent_by = ? WHERE token_hash = ?"
INSERT = (
    "INSERT INTO refresh_tokens (token_hash, family_id, created_at, spent_at, spent_by) "
    "VALUES (?, ?, ?, NULL, NULL)"
)
BUMP = "UPDATE refresh_families SET last_used_at = ?, idle_expires_at = ? WHERE id = ?"
RECORD = "INSERT INTO access_tokens (jti, family_id, user_id, exp) VALUES (?, ?, ?, ?)"
#: A refusal that revokes: the family, then its access tokens still to deny-list.
REVOKE = (
    "UPDATE refresh_families SET revoked_at = ?, revoke_reason = ? "
    "WHERE id = ? AND revoked_at IS NULL"
)
OUTSTANDING = (
    "SELECT jti, family_id, user_id, exp FROM access_tokens WHERE family_id = ? AND exp > ?"
)
#: PostgreSQL: a rotation decided on an unlocked :data:`READ`, written in one statement (a
#: compare-and-set). It locks the family row (``live``), and writes only while the family is
#: still unrevoked and the token still unspent: under READ COMMITTED both conditions are
#: re-checked on the newest row versions after any lock wait, so a concurrent rotation or
#: revocation makes it write nothing (0 rows), and the caller then decides again under the
#: lock. Of the rest the decision read, the client binding never changes; a user disabled
#: meanwhile is then revoked by ``revoke_user``, which takes the family lock after this
#: statement and so returns the access token it recorded (as with the locked path).
#: Parameters: now, client, old hash, new hash, family id, idle expiry, jti (NULL: none),
#: user id, exp. Returns how many tokens it spent (0 or 1).
ROTATE_IF_UNCHANGED = (
    "WITH live AS (SELECT id FROM refresh_families WHERE id = $5 AND revoked_at IS NULL "
    "FOR UPDATE), "
    "spend AS (UPDATE refresh_tokens SET spent_at = $1, spent_by = $2 "
    "WHERE token_hash = $3 AND spent_at IS NULL AND family_id IN (SELECT id FROM live) "
    "RETURNING family_id), "
    "successor AS (INSERT INTO refresh_tokens (token_hash, family_id, created_at, spent_at, "
    "spent_by) SELECT $4, family_id, $1, NULL, NULL FROM spend), "
    "bump AS (UPDATE refresh_families SET last_used_at = $1, idle_expires_at = $6 "
    "WHERE id IN (SELECT family_id FROM spend)), "
    "record AS (INSERT INTO access_tokens (jti, family_id, user_id, exp) "
    "SELECT $7::varchar, family_id, $8::varchar, $9::double precision FROM spend "
    "WHERE $7::varchar IS NOT NULL) "
    "SELECT count(*) FROM spend"
)


def numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (the statements above hold no ``?``
    other than placeholders)."""
    parts = sql.split("?")
    out = [parts[0]]
    for i, part in enumerate(parts[1:], start=1):
        out.append(f"${i}{part}")
    return "".join(out)


def parse_row(values: Sequence[Any]) -> RotationRow:
    """A :class:`RotationRow` from the columns of :data:`READ`, in order."""
    family = FamilyRecord(
        id=values[2],
        user_id=values[3],
        created_at=values[4],
        last_used_at=values[5],
        idle_expires_at=values[6],
        absolute_expires_at=values[7],
        revoked_at=values[8],
        revoke_reason=values[9],
        user_agent=values[10],
        client_ip=values[11],
        client_id=values[12],
    )
    user = None
    if values[13] is not None:
        user = UserRecord(
            id=values[13],
            email=values[14],
            password_hash=values[15],
            roles=tuple(json.loads(values[16])),
            disabled=bool(values[17]),
            created_at=values[18],
        )
    return RotationRow(values[0], values[1], family, user)
