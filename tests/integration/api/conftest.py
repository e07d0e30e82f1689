"""A real rating server on loopback, against a real migrated database, and stubs for it.

Authentication is on, as in production: the stubs' channel sends an admin token on every call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from billing.v1 import (
    catalog_pb2_grpc,
    customer_pb2_grpc,
    invoice_pb2_grpc,
    rating_pb2_grpc,
    subscription_pb2_grpc,
    test_clock_pb2_grpc,
    usage_pb2_grpc,
)
from rating.server import RunningServer, ServerConfig, start_server
from tests.integration.api.auth import authorized_channel, issue


@pytest.fixture(scope="session")
async def admin_token(migrated_url: str) -> str:
    return await issue(migrated_url, "test-admin", ["billing:admin"])


@pytest.fixture(scope="session")
async def rating_server(migrated_url: str, admin_token: str) -> AsyncIterator[RunningServer]:
    config = ServerConfig(
        port=0, catalog_poll_seconds=0.1, token_poll_seconds=0.1, health_poll_seconds=0.2, grace_seconds=2
    )
    server = await start_server(migrated_url, config)
    yield server
    await server.stop(config.grace_seconds)


@pytest.fixture(scope="session")
async def channel(rating_server: RunningServer, admin_token: str) -> AsyncIterator[grpc.aio.Channel]:
    async with authorized_channel(f"127.0.0.1:{rating_server.port}", admin_token) as channel:
        yield channel


@pytest.fixture(scope="session")
def catalog_stub(channel: grpc.aio.Channel) -> catalog_pb2_grpc.CatalogServiceStub:
    return catalog_pb2_grpc.CatalogServiceStub(channel)


@pytest.fixture(scope="session")
def customer_stub(channel: grpc.aio.Channel) -> customer_pb2_grpc.CustomerServiceStub:
    return customer_pb2_grpc.CustomerServiceStub(channel)


@pytest.fixture(scope="session")
def rating_stub(channel: grpc.aio.Channel) -> rating_pb2_grpc.RatingServiceStub:
    return rating_pb2_grpc.RatingServiceStub(channel)


@pytest.fixture(scope="session")
def usage_stub(channel: grpc.aio.Channel) -> usage_pb2_grpc.UsageServiceStub:
    return usage_pb2_grpc.UsageServiceStub(channel)


@pytest.fixture(scope="session")
def subscription_stub(channel: grpc.aio.Channel) -> subscription_pb2_grpc.SubscriptionServiceStub:
    return subscription_pb2_grpc.SubscriptionServiceStub(channel)


@pytest.fixture(scope="session")
def invoice_stub(channel: grpc.aio.Channel) -> invoice_pb2_grpc.InvoiceServiceStub:
    return invoice_pb2_grpc.InvoiceServiceStub(channel)


@pytest.fixture(scope="session")
def clock_stub(channel: grpc.aio.Channel) -> test_clock_pb2_grpc.TestClockServiceStub:
    return test_clock_pb2_grpc.TestClockServiceStub(channel)
