"""The ``billing`` command: the operators' composition root (DESIGN.md §1).

    billing serve [--migrate] [--seed-demo] [--with-invoicer]
                                              run the rating gRPC server (and an invoicer
                                              worker) until SIGTERM/Ctrl-C
    billing migrate                           apply pending SQL migrations
    billing seed-demo                         load the demo catalog into an empty catalog
    billing tokens create|revoke|list         API tokens (every RPC needs one)
    billing quote --plan essential-monthly --seats 5 --usage conversation.message:channel=whatsapp=1200

Without ``DATABASE_URL`` every command uses the embedded PostgreSQL in ./var/pgdata.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from billing.cli_tokens import add_token_commands, demo_token, run_tokens
from billing.store.database import create_pool, resolve_database_url
from billing.store.migrate import migrate
from billing.store.unit_of_work import PostgresUnitOfWork
from billing.telemetry import configure_logging, configure_telemetry

DEFAULT_TARGET = "127.0.0.1:50051"
T = TypeVar("T")

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
    print(f"demo token (scopes quote, billing:read) in {await demo_token(url)}", file=sys.stderr)


async def _serve(args: argparse.Namespace) -> None:
    from rating.server import ServerConfig, serve_until_signal

    async with _database() as url:
        if args.migrate:
            await _migrate(url)
        if args.seed_demo:
            await _seed(url)
        config = ServerConfig(
            host=args.host, port=args.port, tls=_tls(args), grace_seconds=args.grace_seconds
        )
        print(_HOW_TO_CALL.format(target=f"{args.host}:{args.port}"), file=sys.stderr)
        telemetry = configure_telemetry("billing-rating")
        try:
            if args.with_invoicer:
                await _serve_with_invoicer(url, config)
            else:
                await serve_until_signal(url, config)
        finally:
            telemetry.shutdown()  # flush the spans and metrics still buffered


async def _serve_with_invoicer(url: str, config: Any) -> None:
    """The rating server and one invoicer worker in this process, both stopped by one signal."""
    import signal

    from invoicer.main import config_from_env, run_invoicer
    from rating.server import serving

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serving(url, config):
        await run_invoicer(url, config_from_env(), stop)


def _tls(args: argparse.Namespace) -> Any:
    from rating.api.tls import TlsFiles

    if not (args.tls_cert or args.tls_key or args.tls_client_ca):
        return None
    if not (args.tls_cert and args.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together (--tls-client-ca needs both)")
    ca = Path(args.tls_client_ca) if args.tls_client_ca else None
    return TlsFiles(Path(args.tls_cert), Path(args.tls_key), ca)


async def _one_shot(action: str) -> None:
    async with _database() as url:
        if action == "migrate":
            await _migrate(url)
        else:
            await _seed(url)


async def _tokens(args: argparse.Namespace) -> int:
    async with _database() as url:
        return await run_tokens(url, args)


_HOW_TO_CALL = """
Rating service on {target}. Every call needs a token (see billing tokens --help); with
--seed-demo, var/demo-token holds one for quotes and catalog reads. Try:
  export BILLING_TOKEN=$(cat var/demo-token)
  billing quote --plan essential-monthly --seats 5 --usage conversation.message:channel=whatsapp=1200 \\
      --usage ai_agent.conversation:outcome=resolved=300 --coupon LAUNCH20
  billing quote --plan expert-yearly --seats 12 --json
  grpcurl -plaintext -H "authorization: Bearer $BILLING_TOKEN" {target} billing.v1.CatalogService/ListPlans
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
        "--with-invoicer", action="store_true", help="also run an invoicer worker in this process"
    )
    for flag, env, what in (
        ("--tls-cert", "BILLING_TLS_CERT", "server certificate chain (PEM): serve TLS"),
        ("--tls-key", "BILLING_TLS_KEY", "its private key (PEM)"),
        ("--tls-client-ca", "BILLING_TLS_CLIENT_CA", "CA (PEM) client certificates must chain to: mTLS"),
    ):
        serve.add_argument(flag, default=os.environ.get(env) or None, help=f"{what}; env {env}")
    serve.add_argument(
        "--grace-seconds", type=float, default=10.0, help="on SIGTERM, how long in-flight calls may finish"
    )
    commands.add_parser("migrate", help="apply pending migrations")
    commands.add_parser("seed-demo", help="load the demo catalog into an empty catalog")
    add_token_commands(commands)
    quote = commands.add_parser("quote", help="ask the rating server for a quote")
    _quote_arguments(quote)
    args = parser.parse_args(argv)
    configure_logging()
    if args.command == "serve":
        _run(_serve(args))
    elif args.command == "quote":
        from billing.cli_quote import run_quote

        return run_quote(args)
    elif args.command == "tokens":
        return _run(_tokens(args))
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
    parser.add_argument(
        "--token", default=os.environ.get("BILLING_TOKEN"), help="API token; env BILLING_TOKEN"
    )
    parser.add_argument("--ca-cert", help="trust this CA (PEM) and use TLS")
    parser.add_argument("--client-cert", help="client certificate (PEM), for a server requiring mTLS")
    parser.add_argument("--client-key", help="its private key (PEM)")


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:  # uvloop has no Windows build; the standard loop is fine there
        return asyncio.run(coroutine)


if __name__ == "__main__":
    sys.exit(main())
