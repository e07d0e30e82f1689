"""Token use cases against an in-memory store."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from billing.domain.api_tokens import ApiToken, Scope, TokenLimits, digest
from billing.domain.errors import AlreadyExists, InvalidArgument, NotFound
from rating.usecases.tokens import DEMO_TOKEN_NAME, ensure_demo_token, issue_token, list_tokens, revoke_token

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class FakeTokenStore:
    def __init__(self) -> None:
        self.rows: list[tuple[bytes, ApiToken]] = []

    async def add(
        self, name: str, token_digest: bytes, scopes: frozenset[Scope], limits: TokenLimits
    ) -> ApiToken:
        if any(t.name == name and t.active for _, t in self.rows):
            raise AlreadyExists(name)
        token = ApiToken(f"tok_{len(self.rows)}", name, scopes, limits, NOW)
        self.rows.append((token_digest, token))
        return token

    async def revoke(self, name_or_id: str) -> ApiToken | None:
        for index, (stored, token) in enumerate(self.rows):
            if name_or_id in (token.id, token.name) and token.active:
                self.rows[index] = (stored, replace(token, revoked_at=NOW))
                return self.rows[index][1]
        return None

    async def list(self) -> list[ApiToken]:
        return [token for _, token in self.rows]

    async def live_by_digest(self, token_digest: bytes) -> ApiToken | None:
        return next((t for d, t in self.rows if d == token_digest and t.active), None)


async def test_a_token_is_stored_as_the_digest_of_a_long_random_secret() -> None:
    store = FakeTokenStore()
    issued = await issue_token(store, "checkout-web", ["quote"])
    other = await issue_token(store, "ingest", ["usage:write"])
    assert issued.secret.startswith("bt_")
    assert len(issued.secret) >= 3 + 43  # 32 random bytes, base64url
    assert issued.secret != other.secret
    assert store.rows[0][0] == digest(issued.secret)
    assert issued.secret.encode() not in store.rows[0][0]
    assert issued.token.scopes == {Scope.QUOTE}


async def test_admin_grants_every_scope_and_nothing_else_implies_another() -> None:
    store = FakeTokenStore()
    admin = (await issue_token(store, "ops", ["billing:admin"])).token
    writer = (await issue_token(store, "catalog", ["catalog:write"])).token
    assert admin.granted == frozenset(Scope)
    assert writer.granted == {Scope.CATALOG_WRITE}


@pytest.mark.parametrize(
    ("name", "scopes", "limits", "field"),
    [
        ("ok", [], TokenLimits(), "scopes"),
        ("ok", ["quote", "everything"], TokenLimits(), "scopes"),
        ("Has Space", ["quote"], TokenLimits(), "name"),
        ("", ["quote"], TokenLimits(), "name"),
        ("ok", ["quote"], TokenLimits(rate_per_second=0), "rate_per_second"),
        ("ok", ["quote"], TokenLimits(max_streams=-1), "max_streams"),
    ],
)
async def test_bad_tokens_are_refused_with_the_field(
    name: str, scopes: list[str], limits: TokenLimits, field: str
) -> None:
    with pytest.raises(InvalidArgument) as error:
        await issue_token(FakeTokenStore(), name, scopes, limits)
    assert field in {v.field for v in error.value.violations}


async def test_revoking_an_unknown_or_revoked_token_is_not_found() -> None:
    store = FakeTokenStore()
    await issue_token(store, "gone", ["quote"])
    assert (await revoke_token(store, "gone")).revoked_at == NOW
    with pytest.raises(NotFound):
        await revoke_token(store, "gone")
    assert [t.name for t in await list_tokens(store)] == ["gone"]


async def test_the_demo_token_is_kept_while_live_and_replaced_once_revoked() -> None:
    store = FakeTokenStore()
    first = await ensure_demo_token(store, None)
    assert await ensure_demo_token(store, first) == first
    await revoke_token(store, DEMO_TOKEN_NAME)
    second = await ensure_demo_token(store, first)
    assert second != first
    assert await store.live_by_digest(digest(second)) is not None
    forgotten = await ensure_demo_token(store, "bt_forgotten")  # a secret the store never had
    assert await store.live_by_digest(digest(forgotten)) is not None
    live = [t for t in await list_tokens(store) if t.active]
    assert [t.name for t in live] == [DEMO_TOKEN_NAME]
    assert live[0].scopes == {Scope.QUOTE, Scope.BILLING_READ}
