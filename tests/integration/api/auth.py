"""Tokens and authorized channels for tests that call a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from typing import Any

import grpc

from billing.domain.api_tokens import SERVER_DEFAULTS, TokenLimits
from billing.store.api_tokens import PostgresTokenStore
from billing.store.database import create_pool
from rating.usecases.tokens import issue_token, revoke_token


async def issue(url: str, name: str, scopes: Iterable[str], limits: TokenLimits = SERVER_DEFAULTS) -> str:
    """A new token's secret, stored in the database at ``url``."""
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        return (await issue_token(PostgresTokenStore(pool), name, scopes, limits)).secret
    finally:
        await pool.close()


async def revoke(url: str, name: str) -> None:
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        await revoke_token(PostgresTokenStore(pool), name)
    finally:
        await pool.close()


def bearer(secret: str) -> tuple[tuple[str, str]]:
    """Call metadata carrying ``secret``."""
    return (("authorization", f"Bearer {secret}"),)


def authorized_channel(
    target: str, secret: str, options: Sequence[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A loopback channel that sends ``secret`` on every call. Local channel credentials are
    what lets gRPC attach call credentials to a plaintext loopback connection."""
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(), grpc.access_token_call_credentials(secret)
    )
    return grpc.aio.secure_channel(target, credentials, options=options)


async def until_known(target: str, secret: str, within: float = 10.0) -> None:
    """Wait until the server at ``target`` has loaded ``secret`` (its watcher reloads tokens on
    NOTIFY, or when its poll sees a newer version)."""
    async with grpc.aio.insecure_channel(target) as channel:
        # Quote with an empty cart: cheap, and anything but UNAUTHENTICATED means "known".
        probe = channel.unary_unary("/billing.v1.RatingService/Quote")
        deadline = time.monotonic() + within
        while True:
            try:
                await probe(b"", metadata=bearer(secret), timeout=5)
                return
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNAUTHENTICATED:
                    return
            assert time.monotonic() < deadline, "the server never loaded the token"
            await asyncio.sleep(0.05)
