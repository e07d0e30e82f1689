"""The ``billing`` command: the operators' composition root (DESIGN.md §1).

    billing serve [--migrate] [--seed-demo]   run the rating gRPC server until SIGTERM/Ctrl-C
    billing migrate                           apply pending SQL migrations
    billing seed-demo                         load the demo catalog into an empty catalog
    billing quote --plan essential-monthly --seats 5 --usage conversation.message:channel=whatsapp=1200

Without ``DATABASE_URL`` every command uses the embedded PostgreSQL in ./var/pgdata.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

from billing.store.database import create_pool, resolve_database_url
from billing.store.migrate import migrate
from billing.store.unit_of_work import PostgresUnitOfWork
from billing.telemetry import configure_logging, configure_telemetry

DEFAULT_TARGET = "127.0.0.1:50051"

# The embedded PostgreSQL forks pg_ctl while grpc threads run. grpc's fork handlers serve
# children that use grpc after fork, which ours never do; they only print warnings.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


@contextlib.asynccontextmanager
async def _database() -> AsyncIterator[str]:
    url, embedded = resolve_database_url()
    try:
        yield url
    finally:
        if embedded is not None:
            embedded.stop()


async def _migrate(url: str) -> None:
    applied = await migrate(url)
    print(f"migrations applied: {', '.join(applied) if applied else 'none (up to date)'}", file=sys.stderr)


async def _seed(url: str) -> None:
    from rating.usecases.demo import seed_demo_catalog

    pool = await create_pool(url, min_size=1, max_size=1)
    try:
        async with PostgresUnitOfWork(pool) as uow:
            created = await seed_demo_catalog(uow)
            await uow.commit()
    finally:
        await pool.close()
    print("demo catalog loaded" if created else "catalog not empty: demo not loaded", file=sys.stderr)


async def _serve(args: argparse.Namespace) -> None:
    from rating.server import ServerConfig, serve_until_signal

    async with _database() as url:
        if args.migrate:
            await _migrate(url)
        if args.seed_demo:
            await _seed(url)
        config = ServerConfig(host=args.host, port=args.port, grace_seconds=args.grace_seconds)
        print(_HOW_TO_CALL.format(target=f"{args.host}:{args.port}"), file=sys.stderr)
        telemetry = configure_telemetry("billing-rating")
        try:
            await serve_until_signal(url, config)
        finally:
            telemetry.shutdown()  # flush the spans and metrics still buffered


async def _one_shot(action: str) -> None:
    async with _database() as url:
        if action == "migrate":
            await _migrate(url)
        else:
            await _seed(url)


_HOW_TO_CALL = """
Rating service on {target}. Try:
  billing quote --plan essential-monthly --seats 5 --usage conversation.message:channel=whatsapp=1200 \\
      --usage ai_agent.conversation:outcome=resolved=300 --coupon LAUNCH20
  billing quote --plan expert-yearly --seats 12 --json
Ctrl-C stops the server (and the embedded database).
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billing", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the rating gRPC server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=50051)
    serve.add_argument("--migrate", action="store_true", help="apply migrations first")
    serve.add_argument("--seed-demo", action="store_true", help="load the demo catalog if empty")
    serve.add_argument(
        "--grace-seconds", type=float, default=10.0, help="on SIGTERM, how long in-flight calls may finish"
    )
    commands.add_parser("migrate", help="apply pending migrations")
    commands.add_parser("seed-demo", help="load the demo catalog into an empty catalog")
    quote = commands.add_parser("quote", help="ask the rating server for a quote")
    _quote_arguments(quote)
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "serve":
        _run(_serve(args))
    elif args.command == "quote":
        from billing.cli_quote import run_quote

        return run_quote(args)
    else:
        _run(_one_shot(args.command))
    return 0


def _quote_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=DEFAULT_TARGET)
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--currency", help="ISO 4217 code (default USD unless --customer)")
    who.add_argument("--customer", help="customers/{id}: quote in the customer's currency")
    parser.add_argument("--plan", help="plan lookup key or plans/{id}")
    parser.add_argument("--seats", help="seat count for the plan's seat price (default 1)")
    parser.add_argument(
        "--item",
        action="append",
        default=[],
        metavar="PRICE[=QTY]",
        help="price lookup key or prices/{id}, with a quantity",
    )
    parser.add_argument("--addon", action="append", default=[], metavar="addons/ID")
    parser.add_argument(
        "--usage",
        action="append",
        default=[],
        metavar="METER[:K=V,...]=QTY",
        help="expected usage of a meter (event name), with event properties",
    )
    parser.add_argument("--coupon", action="append", default=[], metavar="CODE")
    parser.add_argument("--json", action="store_true", help="print the quote as JSON")


def _run(coroutine: Any) -> None:
    try:
        import uvloop

        uvloop.run(coroutine)
    except ImportError:  # uvloop has no Windows build; the standard loop is fine there
        asyncio.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
