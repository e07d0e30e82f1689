"""Health tied to the database, reflection, and shutdown of a real server process."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from urllib.parse import urlsplit

import asyncpg
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from rating.server import ServerConfig, start_server

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _health(target: str, service: str = "") -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return response.status


async def _eventually(check, expected, within: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    while True:
        try:
            value = await check()
        except grpc.aio.AioRpcError:
            value = None
        if value == expected or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)


async def test_health_is_serving_for_every_service(channel: grpc.aio.Channel, rating_server: object) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    for service in (
        "",
        "billing.v1.RatingService",
        "billing.v1.CatalogService",
        "billing.v1.CustomerService",
    ):
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == SERVING, service


async def test_reflection_lists_the_billing_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names: set[str] = set()
    async for response in stub.ServerReflectionInfo(iter([request])):
        names.update(s.name for s in response.list_services_response.service)
    assert {"billing.v1.RatingService", "billing.v1.CatalogService", "grpc.health.v1.Health"} <= names


async def test_health_turns_not_serving_when_the_database_goes_away(
    create_database, pg_server_url: str
) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    server = await start_server(url, ServerConfig(port=0, health_poll_seconds=0.1, grace_seconds=1))
    target = f"127.0.0.1:{server.port}"
    try:
        assert await _eventually(lambda: _health(target), SERVING) == SERVING
        admin = await asyncpg.connect(pg_server_url)
        try:
            database = urlsplit(url).path.lstrip("/")
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        finally:
            await admin.close()
        assert await _eventually(lambda: _health(target), NOT_SERVING) == NOT_SERVING
    finally:
        await server.stop(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_sigterm_stops_a_serving_process_cleanly(create_database) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "billing.cli",
        "serve",
        "--port",
        str(port),
        env={**os.environ, "DATABASE_URL": url, "BILLING_LOG_FORMAT": "json"},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert await _eventually(lambda: _health(f"127.0.0.1:{port}"), SERVING, within=20) == SERVING
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=20)
        stderr = (await process.stderr.read()).decode() if process.stderr else ""
        assert code == 0, stderr
        assert "shutting down" in stderr
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_liveness_stays_serving_while_the_database_is_gone(create_database, pg_server_url: str) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    server = await start_server(url, ServerConfig(port=0, health_poll_seconds=0.1, grace_seconds=1))
    target = f"127.0.0.1:{server.port}"
    try:
        admin = await asyncpg.connect(pg_server_url)
        try:
            await admin.execute(f'DROP DATABASE "{urlsplit(url).path.lstrip("/")}" WITH (FORCE)')
        finally:
            await admin.close()
        assert await _eventually(lambda: _health(target), NOT_SERVING) == NOT_SERVING
        assert await _health(target, "billing.liveness") == SERVING
    finally:
        await server.stop(1)
