"""A real rating server on loopback, against a real migrated database, and stubs for it."""

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


@pytest.fixture(scope="session")
async def rating_server(migrated_url: str) -> AsyncIterator[RunningServer]:
    config = ServerConfig(port=0, catalog_poll_seconds=0.1, health_poll_seconds=0.2, grace_seconds=2)
    server = await start_server(migrated_url, config)
    yield server
    await server.stop(config.grace_seconds)


@pytest.fixture(scope="session")
async def channel(rating_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rating_server.port}") as channel:
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
