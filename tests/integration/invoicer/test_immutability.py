"""A finalized invoice and its lines are immutable for the application role, every time (DESIGN.md §6).

The role below is what the services log in as: it may read and write every table, but owns none,
so it can neither drop nor disable the triggers that guard finalized invoices.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from tests import invoicer_world as world
from tests.integration.invoicer.conftest import config, eventually, running

ATTEMPTS = 5

FORBIDDEN = [
    "UPDATE invoices SET total = total + 1, subtotal = subtotal + 1 WHERE id = $1",
    "UPDATE invoices SET status = 'draft', number = NULL, number_seq = NULL WHERE id = $1",
    "UPDATE invoices SET number = 'INV-999999' WHERE id = $1",
    "UPDATE invoices SET customer_id = customer_id, amount_due = 0, status = 'paid' WHERE id = $1",
    "DELETE FROM invoices WHERE id = $1",
    "UPDATE invoice_lines SET amount = amount + 1 WHERE invoice_id = $1",
    "UPDATE invoice_lines SET description = 'edited' WHERE invoice_id = $1",
    "DELETE FROM invoice_lines WHERE invoice_id = $1",
    "INSERT INTO invoice_lines (invoice_id, position, kind, amount_unrounded, amount, period_start, "
    "period_end, line) SELECT $1, 99, 'fee', '1/1', 1, now(), now(), '{}'",
]


def _as(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def _finalized_invoice(url: str, pool: asyncpg.Pool[Any]) -> str:
    ids = await world.simple_catalog(pool)
    catalog = await world.snapshot(pool)
    customers = await world.customers(pool, 1)
    await world.subscribe(pool, catalog, customers, start=world.month_ago(), seats=[3],
                          prices=[ids.seat_price, ids.message_price])  # fmt: skip

    async def finalized() -> bool:
        return bool(await pool.fetchval("SELECT count(*) FROM invoices WHERE status = 'open'"))

    async with running(url, config(grace=timedelta(0))):
        assert await eventually(finalized)
    invoice_id: str = await pool.fetchval("SELECT id FROM invoices WHERE status = 'open'")
    return invoice_id


@pytest.fixture
async def app_connection(invoicer_url: str, pool: asyncpg.Pool[Any]) -> Any:
    role = f"billing_app_{secrets.token_hex(4)}"
    await pool.execute(f"CREATE ROLE {role} LOGIN")
    await pool.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO {role}"
    )
    connection = await asyncpg.connect(_as(invoicer_url, role))
    yield connection
    await connection.close()
    await pool.execute(f"DROP OWNED BY {role}")
    await pool.execute(f"DROP ROLE {role}")


@pytest.mark.parametrize("statement", FORBIDDEN)
async def test_a_finalized_invoice_and_its_lines_refuse_every_change(
    invoicer_url: str, pool: asyncpg.Pool[Any], app_connection: Any, statement: str
) -> None:
    invoice_id = await _finalized_invoice(invoicer_url, pool)
    before = await pool.fetchrow("SELECT * FROM invoices WHERE id = $1", invoice_id)
    lines = await pool.fetch(
        "SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position", invoice_id
    )
    for _ in range(ATTEMPTS):
        with pytest.raises(asyncpg.CheckViolationError, match="finalized"):
            await app_connection.execute(statement, invoice_id)
    assert await pool.fetchrow("SELECT * FROM invoices WHERE id = $1", invoice_id) == before
    assert (
        await pool.fetch("SELECT * FROM invoice_lines WHERE invoice_id = $1 ORDER BY position", invoice_id)
        == lines
    )


async def test_the_application_role_can_neither_truncate_nor_switch_the_guards_off(
    invoicer_url: str, pool: asyncpg.Pool[Any], app_connection: Any
) -> None:
    await _finalized_invoice(invoicer_url, pool)
    for _ in range(ATTEMPTS):
        with pytest.raises(asyncpg.CheckViolationError, match="truncated"):
            await app_connection.execute("TRUNCATE invoice_lines, invoices CASCADE")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_connection.execute("ALTER TABLE invoices DISABLE TRIGGER invoices_immutable")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await app_connection.execute("SET session_replication_role = replica")
    assert await pool.fetchval("SELECT count(*) FROM invoice_lines") > 0


async def test_an_open_invoice_may_only_move_to_paid_void_or_uncollectible(
    invoicer_url: str, pool: asyncpg.Pool[Any], app_connection: Any
) -> None:
    invoice_id = await _finalized_invoice(invoicer_url, pool)
    await app_connection.execute(
        "UPDATE invoices SET status = 'uncollectible', marked_uncollectible_at = now(), "
        "status_changed_at = now() WHERE id = $1",
        invoice_id,
    )
    await app_connection.execute(
        "UPDATE invoices SET status = 'paid', paid_at = now(), payment_reference = 'pi_1' WHERE id = $1",
        invoice_id,
    )
    with pytest.raises(asyncpg.CheckViolationError, match="cannot become"):
        await app_connection.execute("UPDATE invoices SET status = 'void' WHERE id = $1", invoice_id)
    with pytest.raises(asyncpg.CheckViolationError, match="cannot become"):
        await app_connection.execute("UPDATE invoices SET status = 'open' WHERE id = $1", invoice_id)
