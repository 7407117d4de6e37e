"""The OAuth stores on every backend (SQLite, PostgreSQL, PostgreSQL + Redis): clients, the
single-use code redemption (also from two store objects, as two instances), grants and the
client-assertion replay store; and 100 concurrent redemptions of one code across two real
``jotkit serve`` processes on PostgreSQL + Redis."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from jotkit.server.clock import SystemClock
from jotkit.server.oauth.clients import hash_secret, new_client
from jotkit.server.oauth.codes import AuthorizationRequest, hash_code, issue_code, pkce_s256
from jotkit.server.store.base import CodeRecord, ConsumeOutcome, FamilyRecord

from .util import (
    add_user,
    two_instances,
)

T0 = 1_800_000_000.0
REDIRECT = "https://app.example/cb"


def _family(now: float = T0) -> FamilyRecord:
    return FamilyRecord(
        id=secrets.token_urlsafe(12), user_id="", created_at=now, last_used_at=now,
        idle_expires_at=now + 3600, absolute_expires_at=now + 86400,
    )


async def _code(store: Any, user_id: str, client_id: str, now: float = T0) -> str:
    code = secrets.token_urlsafe(32)
    await store.codes.create(CodeRecord(
        code_hash=hash_code(code), client_id=client_id, user_id=user_id, redirect_uri=REDIRECT,
        code_challenge=pkce_s256("v" * 43), scope=("openid",), nonce=None, auth_time=now,
        sid="sso-1", resource=(), created_at=now, expires_at=now + 60,
    ))
    return code


@pytest.mark.anyio
@pytest.mark.postgres
async def test_clients_round_trip_on_every_backend(store: Any):
    record, secret = new_client("web", now=T0, redirect_uris=(REDIRECT,), scopes=("a", "b"),
                                resources=("https://api.example/",), first_party=True)
    await store.clients.create(record)
    assert await store.clients.get(record.client_id) == record
    assert [c.client_id for c in await store.clients.list()] == [record.client_id]
    with pytest.raises(ValueError):
        await store.clients.create(record)
    assert await store.clients.set_secret(record.client_id, hash_secret("new"))
    assert (await store.clients.get(record.client_id)).secret_hash == hash_secret("new")
    public, none = new_client("spa", now=T0, redirect_uris=(REDIRECT,), public=True)
    assert none is None
    await store.clients.create(public)
    assert not await store.clients.set_secret(public.client_id, hash_secret("x"))  # no secret
    assert await store.clients.delete(record.client_id)
    assert await store.clients.get(record.client_id) is None
    assert not await store.clients.delete(record.client_id)
    assert secret is not None and replace(record, secret_hash=None).secret_hash is None


@pytest.mark.anyio
@pytest.mark.postgres
async def test_code_redeemed_once_across_two_store_objects(store: Any, store_factory: Any):
    other = await store_factory()  # a second instance on the same database / Redis
    try:
        user_id = secrets.token_hex(16)
        await store.users.create(user_id, f"{user_id}@example.com", "h", ["user"], T0)
        code = await _code(store, user_id, "c1")
        attempts = [
            (store if i % 2 else other).codes.consume(
                hash_code(code), T0 + 1, _family(), secrets.token_hex(32),
                access=(secrets.token_urlsafe(8), T0 + 900))
            for i in range(20)
        ]
        results = await asyncio.gather(*attempts)
        outcomes = [r.outcome for r in results]
        assert outcomes.count(ConsumeOutcome.REDEEMED) == 1
        assert outcomes.count(ConsumeOutcome.REPLAYED) == 19
        winner = next(r for r in results if r.outcome is ConsumeOutcome.REDEEMED)
        family_id = winner.code.family_id
        assert all(r.code.family_id == family_id for r in results)  # replays find the grant
        grant = await store.codes.grant(family_id)
        assert grant is not None and grant.client_id == "c1" and grant.user_id == user_id
        family = await store.sessions.get_family(family_id)
        assert family is not None and family.client_id == "c1" and family.user_id == user_id
        outstanding = await store.sessions.revoke_family(family_id, T0 + 2, "code_replay")
        assert len(outstanding) == 1  # the winner's access token, recorded with the redemption
        late = await _code(store, user_id, "c1")
        assert (await store.codes.consume(hash_code(late), T0 + 61, _family(), "x" * 64)
                ).outcome is ConsumeOutcome.EXPIRED
        assert (await store.codes.consume("0" * 64, T0, _family(), "y" * 64)
                ).outcome is ConsumeOutcome.NOT_FOUND
        assert await store.codes.purge(T0 + 2 * 86400) >= 2
    finally:
        await other.close()


@pytest.mark.anyio
@pytest.mark.postgres
async def test_token_exchange_policy_and_access_token_lookup_on_every_backend(store: Any):
    """RFC 8693: the client's exchange policy round-trips (migration 0008); an exchanged
    token is bound to its subject's family through the subject's ``access_tokens`` row."""
    from jotkit.server.oauth.clients import TOKEN_EXCHANGE
    from jotkit.server.store.base import AccessTokenRecord

    record, _ = new_client("svc", now=T0, grant_types=(TOKEN_EXCHANGE,),
                           exchange_audiences=("https://b.example", "urn:c"),
                           exchange_scopes=("orders:read",), exchange_actors=("gw",))
    await store.clients.create(record)
    stored = await store.clients.get(record.client_id)
    assert stored == record and stored.exchange_audiences == ("https://b.example", "urn:c")
    plain, _ = new_client("plain", now=T0, grant_types=("client_credentials",))
    await store.clients.create(plain)
    assert (await store.clients.get(plain.client_id)).exchange_audiences == ()
    user_id = secrets.token_hex(16)
    await store.users.create(user_id, f"{user_id}@example.com", "h", ["user"], T0)
    family = replace(_family(), user_id=user_id)
    await store.sessions.create_family(family, secrets.token_hex(32))
    assert await store.sessions.access_token("nope") is None
    assert await store.sessions.record_access_token(
        AccessTokenRecord("jti-subject", family.id, user_id, T0 + 900))
    found = await store.sessions.access_token("jti-subject")
    assert found == AccessTokenRecord("jti-subject", family.id, user_id, T0 + 900)
    assert await store.sessions.record_access_token(
        AccessTokenRecord("jti-exchanged", found.family_id, user_id, T0 + 900))
    outstanding = await store.sessions.revoke_family(family.id, T0 + 1, "logout")
    assert {r.jti for r in outstanding} == {"jti-subject", "jti-exchanged"}
    # a revoked family binds nothing more
    assert not await store.sessions.record_access_token(
        AccessTokenRecord("jti-late", family.id, user_id, T0 + 900))


@pytest.mark.anyio
@pytest.mark.postgres
async def test_private_key_jwt_replay_store_on_every_backend(store: Any):
    assert await store.assertions.use("c1", "jti-1", T0 + 60, T0)
    assert not await store.assertions.use("c1", "jti-1", T0 + 60, T0 + 1)
    assert await store.assertions.use("c2", "jti-1", T0 + 60, T0)  # per client
    assert await store.assertions.use("c1", "jti-1", T0 + 200, T0 + 61)  # expired: reusable
    assert await store.assertions.purge(T0 + 1000) == 2


# -- two real instances on PostgreSQL + Redis --------------------------------------------
@pytest.fixture(scope="module")
def cluster(postgres_url: str, redis_url: str, pg_template: str,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    tmp = tmp_path_factory.mktemp("oauth-cluster")
    with two_instances(postgres_url, redis_url, pg_template, tmp, "o") as pair:
        yield SimpleNamespace(url=pair.url, a=pair.a, b=pair.b)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.slow
@pytest.mark.xdist_group("backend-processes")
def test_100_concurrent_redemptions_across_two_instances_exactly_one_succeeds(cluster):
    from jotkit.server.store.sql import SqlStore

    verifier = secrets.token_urlsafe(48)

    async def setup() -> tuple[str, str, str]:
        user_id = await add_user(cluster.url, f"{secrets.token_hex(5)}@example.com")
        store = SqlStore(cluster.url)
        try:
            record, secret = new_client("web", now=time.time(), redirect_uris=(REDIRECT,))
            await store.clients.create(record)
            service = SimpleNamespace(clock=SystemClock(), store=store)
            code = await issue_code(service, AuthorizationRequest(  # type: ignore[arg-type]
                client_id=record.client_id, user_id=user_id, redirect_uri=REDIRECT,
                code_challenge=pkce_s256(verifier), scope=("openid", "offline_access"),
                nonce=None, auth_time=time.time(), sid="sso-x", resource=()))
            assert secret is not None
            return record.client_id, secret, code
        finally:
            await store.close()

    client_id, secret, code = asyncio.run(setup())
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": verifier}

    async def race() -> list[httpx.Response]:
        auth = httpx.BasicAuth(client_id, secret)
        async with httpx.AsyncClient(timeout=60) as c:
            return list(await asyncio.gather(*(
                c.post((cluster.a if i % 2 else cluster.b).url + "/oauth/token", data=data,
                       auth=auth)
                for i in range(100))))

    responses = asyncio.run(race())
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 1, sorted(statuses)
    assert all(r.json()["error"] == "invalid_grant" for r in responses if r.status_code != 200)
    winner = next(r for r in responses if r.status_code == 200).json()
    # the replays revoked the winner's grant: both instances refuse its tokens
    for node in (cluster.a, cluster.b):
        r = httpx.post(node.url + "/oauth/token", auth=httpx.BasicAuth(client_id, secret),
                       data={"grant_type": "refresh_token",
                             "refresh_token": winner["refresh_token"]})
        assert r.status_code == 400 and r.json()["error"] == "invalid_grant"
