"""``billing tokens create|revoke|list``, and the development token of ``seed-demo``.

``create`` prints the secret alone on stdout (``TOKEN=$(billing tokens create ...)``), once:
only its SHA-256 digest is stored. Nothing else ever prints a secret.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from billing.domain.api_tokens import ApiToken, Scope, TokenLimits
from billing.domain.errors import BillingError
from billing.store.api_tokens import PostgresTokenStore
from billing.store.database import create_pool

# Development only: the demo token's secret, kept beside the embedded database (git-ignored).
DEMO_TOKEN_FILE = Path("var") / "demo-token"


def add_token_commands(commands: Any) -> None:
    tokens = commands.add_parser("tokens", help="issue, revoke and list API tokens")
    actions = tokens.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="issue a token; prints its secret once")
    create.add_argument("--name", required=True, help="who holds it, e.g. checkout-web")
    create.add_argument(
        "--scope", action="append", required=True, choices=[s.value for s in Scope], help="repeatable"
    )
    create.add_argument("--rate", type=int, help="calls per second (default: the server's)")
    create.add_argument("--burst", type=int, help="calls allowed at once above the rate")
    create.add_argument("--max-streams", type=int, help="streaming calls open at once")
    revoke = actions.add_parser("revoke", help="revoke a live token by name or id")
    revoke.add_argument("token", metavar="NAME|ID")
    listing = actions.add_parser("list", help="every token, revoked ones too (never a secret)")
    listing.add_argument("--json", action="store_true")


@asynccontextmanager
async def _store(url: str) -> AsyncIterator[PostgresTokenStore]:
    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        yield PostgresTokenStore(pool)
    finally:
        await pool.close()


async def run_tokens(url: str, args: argparse.Namespace) -> int:
    from rating.usecases import tokens

    async with _store(url) as store:
        try:
            if args.action == "create":
                limits = TokenLimits(args.rate, args.burst, args.max_streams)
                issued = await tokens.issue_token(store, args.name, args.scope, limits)
                print(f"token {issued.token.id} ({issued.token.name}) issued; shown once:", file=sys.stderr)
                print(issued.secret)
            elif args.action == "revoke":
                revoked = await tokens.revoke_token(store, args.token)
                print(f"token {revoked.id} ({revoked.name}) revoked", file=sys.stderr)
            else:
                _print_tokens(await tokens.list_tokens(store), as_json=args.json)
        except BillingError as error:
            print(error.message, file=sys.stderr)
            return 1
    return 0


def _describe(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "scopes": sorted(token.scopes),
        "rate_per_second": token.limits.rate_per_second,
        "burst": token.limits.burst,
        "max_streams": token.limits.max_streams,
        "created_at": token.created_at.isoformat(),
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def _print_tokens(listed: list[ApiToken], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps([_describe(t) for t in listed], indent=2))
        return
    for token in listed:
        state = f"revoked {token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "live"
        print(f"{token.id}  {token.name:<24} {' '.join(sorted(token.scopes)):<40} {state}")


async def demo_token(url: str) -> Path:
    """Issue (or keep) the demo token and write its secret to ``var/demo-token``."""
    from rating.usecases.tokens import ensure_demo_token

    remembered = DEMO_TOKEN_FILE.read_text().strip() if DEMO_TOKEN_FILE.exists() else None
    async with _store(url) as store:
        secret = await ensure_demo_token(store, remembered)
    if secret != remembered:
        DEMO_TOKEN_FILE.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(DEMO_TOKEN_FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secret + "\n")
    return DEMO_TOKEN_FILE
