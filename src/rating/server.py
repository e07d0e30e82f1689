"""Wires the rating service: database pool, catalog cache, servicers, health, reflection.

Lifecycle (DESIGN.md §8): SIGTERM or SIGINT turns health to NOT_SERVING, stops accepting new
calls, lets in-flight calls finish within ``grace`` seconds, then closes the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
import structlog
from grpc_health.v1 import _async as health_aio  # health.aio, which the stubs lack
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from billing.heap import freeze_startup_heap
from billing.store.api_tokens import load_tokens, watch_tokens
from billing.store.billing_unit_of_work import PostgresBillingUnitOfWork
from billing.store.catalog_snapshot import load_catalog, watch_catalog
from billing.store.database import create_pool
from billing.store.usage import PostgresUsageStore
from billing.v1 import (
    catalog_pb2,
    customer_pb2,
    invoice_pb2,
    rating_pb2,
    subscription_pb2,
    test_clock_pb2,
    usage_pb2,
)
from rating.api.access import AccessControl, TokenTable
from rating.api.limits import LimitDefaults
from rating.api.registration import add_service
from rating.api.scopes import check_covered
from rating.api.servicers._support import Dependencies
from rating.api.servicers.catalog import CatalogServicer
from rating.api.servicers.customers import CustomerServicer
from rating.api.servicers.invoices import InvoiceServicer
from rating.api.servicers.rating import RatingServicer
from rating.api.servicers.subscriptions import SubscriptionServicer
from rating.api.servicers.test_clocks import TestClockServicer
from rating.api.servicers.usage import UsageServicer
from rating.api.tls import TlsFiles, server_credentials
from rating.api.tracing import ServerTelemetry
from rating.catalog_cache import CatalogCache
from rating.usecases.usage import GroupCommitter

log = structlog.get_logger(__name__)

LIVENESS = "billing.liveness"


SERVICES = (
    catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"],
    customer_pb2.DESCRIPTOR.services_by_name["CustomerService"],
    rating_pb2.DESCRIPTOR.services_by_name["RatingService"],
    usage_pb2.DESCRIPTOR.services_by_name["UsageService"],
    test_clock_pb2.DESCRIPTOR.services_by_name["TestClockService"],
    subscription_pb2.DESCRIPTOR.services_by_name["SubscriptionService"],
    invoice_pb2.DESCRIPTOR.services_by_name["InvoiceService"],
)
SERVICE_NAMES = tuple(service.full_name for service in SERVICES)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 50051
    # Bounded so one oversized request cannot take the process's memory (DESIGN.md §7).
    max_message_bytes: int = 4 * 1024 * 1024
    grace_seconds: float = 10.0
    pool_min: int = 2
    pool_max: int = 10
    catalog_poll_seconds: float = 0.25
    health_poll_seconds: float = 1.0
    # A revoked token stops working within about this long (plus the reload).
    token_poll_seconds: float = 0.25
    limits: LimitDefaults = field(default_factory=LimitDefaults)
    tls: TlsFiles | None = None  # None: plaintext (behind a mesh or on loopback)


@dataclass
class RunningServer:
    server: grpc.aio.Server
    port: int
    cache: CatalogCache
    health: Any
    _tasks: list[asyncio.Task[None]]
    _pool: Any

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        for task in self._tasks:
            task.cancel()
        # Bounded: a task stuck in its cleanup (UNLISTEN on a connection that died) must not hold
        # the shutdown forever; the pool is terminated below if it does not close in time.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=max(grace, 1.0))
        try:
            await asyncio.wait_for(self._pool.close(), timeout=max(grace, 1.0))
        except TimeoutError:
            self._pool.terminate()


async def start_server(
    database_url: str, config: ServerConfig = ServerConfig(), clock: Callable[[], datetime] | None = None
) -> RunningServer:
    check_covered(SERVICES)
    pool = await create_pool(database_url, min_size=config.pool_min, max_size=config.pool_max)
    cache = CatalogCache(await load_catalog(pool))
    tokens = TokenTable(await load_tokens(pool))
    deps = Dependencies(
        unit_of_work=lambda: PostgresBillingUnitOfWork(pool),
        read_only=lambda: PostgresBillingUnitOfWork(pool, read_only=True),
        catalog=cache,
        clock=clock or (lambda: datetime.now(UTC)),
    )
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    # ServerTelemetry first: outermost, so it measures and traces calls later interceptors refuse.
    interceptors = [ServerTelemetry(), AccessControl(tokens, config.limits)]
    server = grpc.aio.server(options=options, interceptors=interceptors)
    catalog = CatalogServicer(deps)
    add_service(server, catalog, catalog_pb2.DESCRIPTOR.services_by_name["CatalogService"])
    add_service(server, CustomerServicer(deps), customer_pb2.DESCRIPTOR.services_by_name["CustomerService"])
    add_service(server, RatingServicer(deps), rating_pb2.DESCRIPTOR.services_by_name["RatingService"])
    usage_store = PostgresUsageStore(pool)
    usage_servicer = UsageServicer(deps, usage_store, GroupCommitter(usage_store))
    add_service(server, usage_servicer, usage_pb2.DESCRIPTOR.services_by_name["UsageService"])
    add_service(
        server, TestClockServicer(deps), test_clock_pb2.DESCRIPTOR.services_by_name["TestClockService"]
    )
    add_service(
        server,
        SubscriptionServicer(deps),
        subscription_pb2.DESCRIPTOR.services_by_name["SubscriptionService"],
    )
    add_service(server, InvoiceServicer(deps), invoice_pb2.DESCRIPTOR.services_by_name["InvoiceService"])
    health_servicer = health_aio.HealthServicer()
    # Liveness is the process answering at all; readiness ("" and each service) is the database.
    await health_servicer.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICE_NAMES, reflection.SERVICE_NAME, health.SERVICE_NAME), server
    )
    address = f"{config.host}:{config.port}"
    if config.tls is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, server_credentials(config.tls))
    await server.start()
    tasks = [
        asyncio.create_task(
            watch_catalog(pool, cache.version, cache.publish, poll_interval=config.catalog_poll_seconds)
        ),
        asyncio.create_task(
            watch_tokens(pool, tokens.version, tokens.publish, poll_interval=config.token_poll_seconds)
        ),
        asyncio.create_task(_track_database_health(pool, health_servicer, config.health_poll_seconds)),
        asyncio.create_task(_maintain_partitions(usage_store, deps.clock)),
    ]
    freeze_startup_heap()
    log.info("rating server started", listen=f"{config.host}:{port}", catalog_version=cache.version())
    return RunningServer(server, port, cache, health_servicer, tasks, pool)


async def _track_database_health(pool: Any, servicer: Any, interval: float) -> None:
    """Readiness follows the database: NOT_SERVING while it cannot answer ``SELECT 1``."""
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    while True:
        try:
            await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=max(interval, 1.0))
            status = serving
        except Exception as error:  # whatever stops SELECT 1 (even a dropped database) is unready
            log.warning("database unreachable", error=type(error).__name__)
            status = not_serving
        for name in ("", *SERVICE_NAMES):
            await servicer.set(name, status)
        await asyncio.sleep(interval)


async def _maintain_partitions(store: PostgresUsageStore, clock: Callable[[], datetime]) -> None:
    """Keep monthly usage partitions ahead of time, so an accepted event always has a home."""
    while True:
        try:
            await store.ensure_partitions(clock())
        except Exception as error:
            log.warning("usage partition upkeep failed", error=type(error).__name__)
        await asyncio.sleep(3600)


@contextlib.asynccontextmanager
async def serving(database_url: str, config: ServerConfig = ServerConfig()) -> AsyncIterator[RunningServer]:
    running = await start_server(database_url, config)
    try:
        yield running
    finally:
        await running.stop(config.grace_seconds)


async def serve_until_signal(database_url: str, config: ServerConfig = ServerConfig()) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serving(database_url, config):
        await stop.wait()
        log.info("shutting down", grace_seconds=config.grace_seconds)
