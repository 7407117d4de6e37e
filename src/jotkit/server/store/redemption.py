"""Authorization-code redemption (RFC 6749 §4.1.2: a code is used once) as SQL text and one
plain function over an ``execute(sql, params)`` callable, like :mod:`.rotation`: the same
steps run on the SQL store's own ``sqlite3`` thread, through SQLAlchemy (no fast path), and,
on PostgreSQL, as one compare-and-set statement on asyncpg (:data:`REDEEM_IF_UNSPENT`).

The code is spent by a conditional ``UPDATE … WHERE redeemed_at IS NULL AND expires_at >
now``: of concurrent redemptions (one process or several instances sharing the database)
exactly one changes the row, and it opens the grant (refresh family, first refresh token,
``oauth_grants`` row) and records the access token in the same transaction or statement. A
loser reads the row to tell a replay (the caller revokes the winner's grant) from an
expired or unknown code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from .base import CodeRecord, ConsumeOutcome, ConsumeResult, FamilyRecord, GrantRecord

__all__ = [
    "CODE_COLUMNS",
    "READ_CODE",
    "REDEEM_IF_UNSPENT",
    "lost",
    "open_grant",
    "parse_code",
    "redeem",
    "redeemed",
    "sa_executor",
]

#: The columns of ``oauth_codes`` in :func:`parse_code`'s order.
CODE_COLUMNS = (
    "code_hash, client_id, user_id, redirect_uri, code_challenge, scope, nonce, auth_time, "
    "sid, resource, created_at, expires_at, redeemed_at, family_id, dpop_jkt"
)
#: The code and whether its user is active (the last column: NULL when the user is gone).
READ_CODE = (
    "SELECT c.code_hash, c.client_id, c.user_id, c.redirect_uri, c.code_challenge, c.scope, "
    "c.nonce, c.auth_time, c.sid, c.resource, c.created_at, c.expires_at, c.redeemed_at, "
    "c.family_id, c.dpop_jkt, u.disabled FROM oauth_codes c LEFT JOIN users u ON u.id = c.user_id "
    "WHERE c.code_hash = ?"
)
SPEND_CODE = (
    "UPDATE oauth_codes SET redeemed_at = ?, family_id = ? "
    "WHERE code_hash = ? AND redeemed_at IS NULL AND expires_at > ?"
)
INSERT_FAMILY = (
    "INSERT INTO refresh_families (id, user_id, created_at, last_used_at, idle_expires_at, "
    "absolute_expires_at, revoked_at, revoke_reason, user_agent, client_ip, client_id) "
    "VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?, ?)"
)
INSERT_REFRESH = (
    "INSERT INTO refresh_tokens (token_hash, family_id, created_at, spent_at, spent_by) "
    "VALUES (?, ?, ?, NULL, NULL)"
)
INSERT_GRANT = (
    "INSERT INTO oauth_grants (family_id, client_id, user_id, scope, resource, sid, "
    "auth_time, nonce) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
RECORD = "INSERT INTO access_tokens (jti, family_id, user_id, exp) VALUES (?, ?, ?, ?)"
#: PostgreSQL: the whole redemption in one statement (atomic without ``BEGIN``/``COMMIT``):
#: spend the code if unspent and unexpired, then open the grant from the spent row; returns
#: the spent row (none: the caller reads it with :data:`READ_CODE`). Parameters: code hash,
#: now, family id, created, last used, idle expiry, absolute expiry, user agent, client ip,
#: refresh hash, jti (NULL: none), exp. Foreign keys are checked at the statement's end,
#: after the family row exists.
REDEEM_IF_UNSPENT = (
    "WITH spent AS (UPDATE oauth_codes SET redeemed_at = $2, family_id = $3 "
    "WHERE code_hash = $1 AND redeemed_at IS NULL AND expires_at > $2 "
    "RETURNING code_hash, client_id, user_id, redirect_uri, code_challenge, scope, nonce, "
    "auth_time, sid, resource, created_at, expires_at, redeemed_at, family_id, dpop_jkt), "
    "family AS (INSERT INTO refresh_families (id, user_id, created_at, last_used_at, "
    "idle_expires_at, absolute_expires_at, revoked_at, revoke_reason, user_agent, client_ip, "
    "client_id) SELECT $3, user_id, $4, $5, $6, $7, NULL, NULL, $8, $9, client_id FROM spent), "
    "refresh AS (INSERT INTO refresh_tokens (token_hash, family_id, created_at, spent_at, "
    "spent_by) SELECT $10, $3, $2, NULL, NULL FROM spent), "
    "grantrow AS (INSERT INTO oauth_grants (family_id, client_id, user_id, scope, resource, "
    "sid, auth_time, nonce) SELECT $3, client_id, user_id, scope, resource, sid, auth_time, "
    "nonce FROM spent), "
    "record AS (INSERT INTO access_tokens (jti, family_id, user_id, exp) "
    "SELECT $11::varchar, $3, user_id, $12::double precision FROM spent "
    "WHERE $11::varchar IS NOT NULL) "
    "SELECT s.code_hash, s.client_id, s.user_id, s.redirect_uri, s.code_challenge, s.scope, "
    "s.nonce, s.auth_time, s.sid, s.resource, s.created_at, s.expires_at, s.redeemed_at, "
    "s.family_id, s.dpop_jkt, u.disabled FROM spent s LEFT JOIN users u ON u.id = s.user_id"
)

_Execute = Callable[[str, tuple[Any, ...]], Any]  # execute(sql with ?, params) -> cursor


def _tuple(text: str) -> tuple[str, ...]:
    return tuple(str(v) for v in json.loads(text))


def parse_code(values: Sequence[Any]) -> CodeRecord:
    """A :class:`CodeRecord` from the columns of :data:`CODE_COLUMNS`, in order (a row of
    :data:`READ_CODE` or :data:`REDEEM_IF_UNSPENT`)."""
    return CodeRecord(
        code_hash=values[0],
        client_id=values[1],
        user_id=values[2],
        redirect_uri=values[3],
        code_challenge=values[4],
        scope=_tuple(values[5]),
        nonce=values[6],
        auth_time=values[7],
        sid=values[8],
        resource=_tuple(values[9]),
        created_at=values[10],
        expires_at=values[11],
        redeemed_at=values[12],
        family_id=values[13],
        dpop_jkt=values[14],
    )


def lost(values: Sequence[Any] | None) -> ConsumeResult:
    """The outcome for a redemption that spent nothing, from the code's row (or None)."""
    if values is None:
        return ConsumeResult(ConsumeOutcome.NOT_FOUND)
    code = parse_code(values)
    if code.redeemed_at is None:
        return ConsumeResult(ConsumeOutcome.EXPIRED, code)
    return ConsumeResult(ConsumeOutcome.REPLAYED, code)


def redeemed(values: Sequence[Any]) -> ConsumeResult:
    """The outcome for the winner, from the spent code's row (read after the spend)."""
    disabled = values[15]
    return ConsumeResult(ConsumeOutcome.REDEEMED, parse_code(values),
                         user_active=disabled is not None and not disabled)


def redeem(
    execute: _Execute,
    code_hash: str,
    now: float,
    family: FamilyRecord,
    refresh_hash: str,
    access: tuple[str, float] | None,
) -> ConsumeResult:
    """Spend the code and open its grant, inside a write transaction (see the module
    docstring); ``family.user_id`` and ``client_id`` come from the code."""
    won = execute(SPEND_CODE, (now, family.id, code_hash, now)).rowcount == 1
    values = execute(READ_CODE, (code_hash,)).fetchone()
    if not won or values is None:
        return lost(values)
    code = parse_code(values)
    open_grant(execute, family, refresh_hash, now, access, GrantRecord(
        family_id=family.id, client_id=code.client_id, user_id=code.user_id, scope=code.scope,
        resource=code.resource, sid=code.sid, auth_time=code.auth_time, nonce=code.nonce,
    ))
    return redeemed(values)


def open_grant(
    execute: _Execute,
    family: FamilyRecord,
    refresh_hash: str,
    now: float,
    access: tuple[str, float] | None,
    grant: GrantRecord,
) -> None:
    """Insert what a redeemed code (or device code, RFC 8628) opens, inside the caller's write
    transaction: the refresh family of ``grant.user_id`` / ``grant.client_id``, its first
    refresh token, the grant and the winner's access token ``(jti, exp)``."""
    execute(INSERT_FAMILY, (
        family.id, grant.user_id, family.created_at, family.last_used_at,
        family.idle_expires_at, family.absolute_expires_at, family.user_agent,
        family.client_ip, grant.client_id,
    ))
    execute(INSERT_REFRESH, (refresh_hash, family.id, now))
    execute(INSERT_GRANT, (
        family.id, grant.client_id, grant.user_id, json.dumps(list(grant.scope)),
        json.dumps(list(grant.resource)), grant.sid, grant.auth_time, grant.nonce,
    ))
    if access is not None:
        execute(RECORD, (access[0], family.id, grant.user_id, access[1]))


def sa_executor(conn: Any) -> _Execute:
    """An ``execute(sql, params)`` over a synchronous SQLAlchemy connection, for the
    statements of this module and :mod:`.rotation` (``?`` placeholders)."""
    import sqlalchemy as sa

    from .rotation import numbered

    def execute(sql: str, params: tuple[Any, ...]) -> Any:
        named = numbered(sql)
        for i in range(len(params), 0, -1):
            named = named.replace(f"${i}", f":p{i}")
        return conn.execute(sa.text(named), {f"p{i}": v for i, v in enumerate(params, 1)})

    return execute
