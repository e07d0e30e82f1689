"""Issuing, revoking and listing API tokens (``billing tokens ...``), and the demo token."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from billing.domain.api_tokens import (
    SECRET_PREFIX,
    SERVER_DEFAULTS,
    ApiToken,
    Scope,
    TokenLimits,
    digest,
    parse_scopes,
    validate_token,
)
from billing.domain.errors import NotFound

DEMO_TOKEN_NAME = "demo"  # noqa: S105 (a name, not a secret)
# What the README's commands need: quotes, and reading the catalog (grpcurl, listings).
DEMO_SCOPES = (Scope.QUOTE, Scope.BILLING_READ)


class TokenStore(Protocol):
    async def add(
        self, name: str, token_digest: bytes, scopes: frozenset[Scope], limits: TokenLimits
    ) -> ApiToken: ...

    async def revoke(self, name_or_id: str) -> ApiToken | None: ...

    async def list(self) -> list[ApiToken]: ...

    async def live_by_digest(self, token_digest: bytes) -> ApiToken | None: ...


@dataclass(frozen=True)
class IssuedToken:
    token: ApiToken
    secret: str  # shown once; only its digest is stored


async def issue_token(
    store: TokenStore, name: str, scopes: Iterable[str], limits: TokenLimits = SERVER_DEFAULTS
) -> IssuedToken:
    parsed = parse_scopes(scopes)
    validate_token(name, limits)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    return IssuedToken(await store.add(name, digest(secret), parsed, limits), secret)


async def revoke_token(store: TokenStore, name_or_id: str) -> ApiToken:
    revoked = await store.revoke(name_or_id)
    if revoked is None:
        raise NotFound(f"no live token named or with id {name_or_id!r}")
    return revoked


async def list_tokens(store: TokenStore) -> list[ApiToken]:
    return await store.list()


async def ensure_demo_token(store: TokenStore, remembered: str | None) -> str:
    """The development token: ``remembered`` again while it is live, else a fresh one (the
    store keeps only digests, so a secret that was not remembered cannot be shown again)."""
    if remembered and await store.live_by_digest(digest(remembered)) is not None:
        return remembered
    await store.revoke(DEMO_TOKEN_NAME)
    return (await issue_token(store, DEMO_TOKEN_NAME, DEMO_SCOPES)).secret
