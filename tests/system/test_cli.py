"""The `billing` command as an operator uses it: real processes, a real database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path

from rating.server import ServerConfig, serving

# seed-demo writes var/demo-token under the working directory: not into the checkout's.
WORKDIR = Path(tempfile.mkdtemp(prefix="billing-cli-test-"))


async def _billing(*args: str, url: str, token: str | None = None) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != "BILLING_TOKEN"}
    env.update(DATABASE_URL=url, BILLING_LOG_FORMAT="json")
    if token:
        env["BILLING_TOKEN"] = token
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "billing.cli", *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=WORKDIR,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_migrate_and_seed_demo_are_idempotent(create_database) -> None:  # type: ignore[no-untyped-def]
    url = await create_database()
    first = await _billing("migrate", url=url)
    second = await _billing("migrate", url=url)
    assert (first[0], second[0]) == (0, 0)
    assert "applied: 0001" in first[2]
    assert "none (up to date)" in second[2]
    seeded = await _billing("seed-demo", url=url)
    again = await _billing("seed-demo", url=url)
    assert "demo catalog loaded" in seeded[2]
    assert "not loaded" in again[2]


async def test_quote_prints_the_demo_cart_as_a_table_and_as_json(create_database) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    assert (await _billing("seed-demo", url=url))[0] == 0
    token = (WORKDIR / "var" / "demo-token").read_text().strip()
    async with serving(url, ServerConfig(port=0, grace_seconds=1)) as server:
        cart = (
            "--target", f"127.0.0.1:{server.port}", "--plan", "essential-monthly", "--seats", "5",
            "--usage", "conversation.message:channel=whatsapp=1200",
            "--usage", "ai_agent.conversation:outcome=resolved=300", "--coupon", "LAUNCH20",
        )  # fmt: skip
        code, table, _ = await _billing("quote", *cart, url=url, token=token)
        assert code == 0
        # Seats 5 x 19.00 = 95.00 less 20 % = 76.00; WhatsApp 1000 x 0.025 + 200 x 0.018 = 28.60;
        # resolved 300 x 0.99 = 297.00. Total 76.00 + 28.60 + 297.00 = 401.60.
        assert "Total 401.60 USD" in table
        code, as_json, _ = await _billing("quote", *cart, "--json", "--token", token, url=url)
        assert json.loads(as_json)["total"] == "40160"
        code, _, error = await _billing(
            "quote", "--target", f"127.0.0.1:{server.port}", "--plan", "nope", url=url, token=token
        )
        assert code == 1
        assert error.startswith("NOT_FOUND")
        code, _, error = await _billing("quote", *cart, "--token", "bt_wrong", url=url)
        assert code == 1
        assert error.startswith("UNAUTHENTICATED")
        code, _, error = await _billing("quote", *cart, url=url)
        assert code == 1
        assert "BILLING_TOKEN" in error


async def test_seed_demo_keeps_its_token_while_it_is_live(create_database) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    assert (await _billing("seed-demo", url=url))[0] == 0
    first = (WORKDIR / "var" / "demo-token").read_text()
    assert (await _billing("seed-demo", url=url))[0] == 0
    assert (WORKDIR / "var" / "demo-token").read_text() == first
    assert oct((WORKDIR / "var" / "demo-token").stat().st_mode & 0o777) == "0o600"
    assert (await _billing("tokens", "revoke", "demo", url=url))[0] == 0
    assert (await _billing("seed-demo", url=url))[0] == 0
    assert (WORKDIR / "var" / "demo-token").read_text() != first


async def test_tokens_are_created_listed_and_revoked_and_secrets_never_listed(create_database) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    code, secret, _ = await _billing(
        "tokens", "create", "--name", "checkout-web", "--scope", "quote", "--rate", "50", url=url
    )
    assert code == 0
    secret = secret.strip()
    assert secret.startswith("bt_")
    assert len(secret) > 40
    code, _, error = await _billing("tokens", "create", "--name", "checkout-web", "--scope", "quote", url=url)
    assert (code, "revoke it first" in error) == (1, True)
    code, listed, _ = await _billing("tokens", "list", "--json", url=url)
    (token,) = json.loads(listed)
    assert (token["name"], token["scopes"], token["rate_per_second"]) == ("checkout-web", ["quote"], 50)
    assert token["revoked_at"] is None
    code, table, _ = await _billing("tokens", "list", url=url)
    assert secret not in listed + table
    assert secret[3:20] not in listed + table
    assert (await _billing("tokens", "revoke", token["id"], url=url))[0] == 0
    code, _, error = await _billing("tokens", "revoke", "checkout-web", url=url)
    assert (code, "no live token" in error) == (1, True)
    code, listed, _ = await _billing("tokens", "list", "--json", url=url)
    assert json.loads(listed)[0]["revoked_at"] is not None
    code, _, error = await _billing("tokens", "create", "--name", "Bad Name", "--scope", "quote", url=url)
    assert (code, "name" in error) == (1, True)
