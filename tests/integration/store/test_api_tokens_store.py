"""API tokens in PostgreSQL: only revocation changes a row, and every change bumps the version."""

from __future__ import annotations

import asyncpg
import pytest

from billing.domain.api_tokens import Scope, TokenLimits, digest
from billing.domain.errors import AlreadyExists
from billing.store.api_tokens import PostgresTokenStore, load_tokens, stored_version
from billing.store.database import create_pool


@pytest.fixture(scope="module")
async def pool(create_database):  # type: ignore[no-untyped-def]
    pool = await create_pool(await create_database(migrated=True), min_size=1, max_size=2)
    yield pool
    await pool.close()


async def test_the_snapshot_follows_issue_and_revoke(pool: asyncpg.Pool) -> None:
    store = PostgresTokenStore(pool)
    before = await stored_version(pool)
    token = await store.add("web", digest("bt_a"), frozenset({Scope.QUOTE}), TokenLimits(rate_per_second=5))
    snapshot = await load_tokens(pool)
    assert snapshot.version > before
    assert snapshot.by_digest[digest("bt_a")] == token
    assert token.limits == TokenLimits(5, None, None)
    revoked = await store.revoke("web")
    assert revoked is not None
    assert revoked.revoked_at is not None
    after = await load_tokens(pool)
    assert after.version > snapshot.version
    assert after.by_digest[digest("bt_a")].revoked_at is not None
    assert await store.live_by_digest(digest("bt_a")) is None


async def test_a_live_name_is_unique_but_may_be_reused_after_revocation(pool: asyncpg.Pool) -> None:
    store = PostgresTokenStore(pool)
    await store.add("rotating", digest("bt_1"), frozenset({Scope.QUOTE}), TokenLimits())
    with pytest.raises(AlreadyExists):
        await store.add("rotating", digest("bt_2"), frozenset({Scope.QUOTE}), TokenLimits())
    await store.revoke("rotating")
    await store.add("rotating", digest("bt_2"), frozenset({Scope.QUOTE}), TokenLimits())


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE api_tokens SET scopes = '{billing:admin}' WHERE name = 'fixed'",
        "UPDATE api_tokens SET token_digest = sha256('other') WHERE name = 'fixed'",
        "UPDATE api_tokens SET revoked_at = NULL WHERE name = 'fixed-revoked'",
        "DELETE FROM api_tokens WHERE name = 'fixed'",
    ],
)
async def test_the_database_refuses_any_change_but_revocation(pool: asyncpg.Pool, statement: str) -> None:
    store = PostgresTokenStore(pool)
    if not await pool.fetchval("SELECT count(*) FROM api_tokens WHERE name LIKE 'fixed%'"):
        await store.add("fixed", digest("bt_fixed"), frozenset({Scope.QUOTE}), TokenLimits())
        await store.add("fixed-revoked", digest("bt_fixed_r"), frozenset({Scope.QUOTE}), TokenLimits())
        await store.revoke("fixed-revoked")
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(statement)


async def test_a_scope_unknown_to_this_build_grants_nothing(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "INSERT INTO api_tokens (id, name, token_digest, scopes) VALUES ('tok_new', 'future', $1, $2)",
        digest("bt_future"),
        ["quote", "subscriptions:write"],
    )
    assert (await load_tokens(pool)).by_digest[digest("bt_future")].scopes == {Scope.QUOTE}
