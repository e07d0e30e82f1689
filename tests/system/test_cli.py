"""The `billing` command as an operator uses it: real processes, a real database."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from rating.server import ServerConfig, serving


async def _billing(*args: str, url: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "billing.cli", *args,
        env={**os.environ, "DATABASE_URL": url, "BILLING_LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
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
    async with serving(url, ServerConfig(port=0, grace_seconds=1)) as server:
        cart = (
            "--target", f"127.0.0.1:{server.port}", "--plan", "essential-monthly", "--seats", "5",
            "--usage", "conversation.message:channel=whatsapp=1200",
            "--usage", "ai_agent.conversation:outcome=resolved=300", "--coupon", "LAUNCH20",
        )  # fmt: skip
        code, table, _ = await _billing("quote", *cart, url=url)
        assert code == 0
        # Seats 5 x 19.00 = 95.00 less 20 % = 76.00; WhatsApp 1000 x 0.025 + 200 x 0.018 = 28.60;
        # resolved 300 x 0.99 = 297.00. Total 76.00 + 28.60 + 297.00 = 401.60.
        assert "Total 401.60 USD" in table
        code, as_json, _ = await _billing("quote", *cart, "--json", url=url)
        assert json.loads(as_json)["total"] == "40160"
        code, _, error = await _billing(
            "quote", "--target", f"127.0.0.1:{server.port}", "--plan", "nope", url=url
        )
        assert code == 1
        assert error.startswith("NOT_FOUND")
