"""API tokens in PostgreSQL: issuing, revoking, listing, and the snapshot the server holds.

Only digests are stored (see ``billing.domain.api_tokens``). A token row is never edited but to
revoke it, and never deleted; the migration's triggers enforce both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from billing.domain.api_tokens import ApiToken, Scope, TokenLimits, TokenSnapshot
from billing.domain.errors import AlreadyExists
from billing.store.ids import new_id
from billing.store.version_watch import watch_version

CHANNEL = "api_tokens_changed"

_COLUMNS = "id, name, scopes, rate_per_second, burst, max_streams, created_at, revoked_at"


def _token(row: asyncpg.Record) -> ApiToken:
    known = {scope.value for scope in Scope}
    return ApiToken(
        id=row["id"],
        name=row["name"],
        # A scope this build does not know (written by a newer release) grants nothing here.
        scopes=frozenset(Scope(s) for s in row["scopes"] if s in known),
        limits=TokenLimits(row["rate_per_second"], row["burst"], row["max_streams"]),
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class PostgresTokenStore:
    """The ``TokenStore`` port of ``rating.usecases.tokens``."""

    def __init__(self, pool: asyncpg.Pool[Any]) -> None:
        self._pool = pool

    async def add(
        self, name: str, token_digest: bytes, scopes: frozenset[Scope], limits: TokenLimits
    ) -> ApiToken:
        try:
            row = await self._pool.fetchrow(
                f"INSERT INTO api_tokens (id, name, token_digest, scopes, rate_per_second, burst,"
                f" max_streams) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {_COLUMNS}",
                new_id("tok"),
                name,
                token_digest,
                sorted(scopes),
                limits.rate_per_second,
                limits.burst,
                limits.max_streams,
            )
        except asyncpg.UniqueViolationError as error:
            raise AlreadyExists(f"a live token named {name!r} exists; revoke it first") from error
        assert row is not None
        return _token(row)

    async def revoke(self, name_or_id: str) -> ApiToken | None:
        """Revoke the live token with this id or name; ``None`` when there is none."""
        row = await self._pool.fetchrow(
            f"UPDATE api_tokens SET revoked_at = now()"
            f" WHERE (id = $1 OR name = $1) AND revoked_at IS NULL RETURNING {_COLUMNS}",
            name_or_id,
        )
        return None if row is None else _token(row)

    async def list(self) -> list[ApiToken]:
        rows = await self._pool.fetch(f"SELECT {_COLUMNS} FROM api_tokens ORDER BY id")
        return [_token(row) for row in rows]

    async def live_by_digest(self, token_digest: bytes) -> ApiToken | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM api_tokens WHERE token_digest = $1 AND revoked_at IS NULL",
            token_digest,
        )
        return None if row is None else _token(row)


async def load_tokens(pool: asyncpg.Pool[Any]) -> TokenSnapshot:
    async with (
        pool.acquire() as connection,
        connection.transaction(isolation="repeatable_read", readonly=True),
    ):
        version = await connection.fetchval("SELECT version FROM api_tokens_state")
        rows = await connection.fetch(f"SELECT token_digest, {_COLUMNS} FROM api_tokens")
    return TokenSnapshot(version=version, by_digest={bytes(row["token_digest"]): _token(row) for row in rows})


async def stored_version(pool: asyncpg.Pool[Any]) -> int:
    version: int = await pool.fetchval("SELECT version FROM api_tokens_state")
    return version


async def watch_tokens(
    pool: asyncpg.Pool[Any],
    current: Callable[[], int],
    publish: Callable[[TokenSnapshot], Awaitable[None] | None],
    *,
    poll_interval: float = 0.25,
) -> None:
    """Publish a new token snapshot whenever a token is issued or revoked. Runs forever."""
    await watch_version(
        pool,
        channel=CHANNEL,
        stored_version=stored_version,
        load=load_tokens,
        current=current,
        publish=publish,
        poll_interval=poll_interval,
    )
