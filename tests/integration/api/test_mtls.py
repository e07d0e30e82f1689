"""Mutual TLS (issue 6): with a client CA configured, only its clients get through, and they
still need a token."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from billing import cli
from billing.v1 import rating_pb2, rating_pb2_grpc
from rating.api.tls import TlsFiles
from rating.server import RunningServer, ServerConfig, start_server
from tests.integration.api.auth import bearer
from tests.integration.api.certificates import Authority, Pem
from tests.integration.api.rpc import failure


@pytest.fixture(scope="module")
def authorities(tmp_path_factory: pytest.TempPathFactory) -> tuple[Authority, Authority]:
    folder = tmp_path_factory.mktemp("pki")
    return Authority(folder, "billing-ca"), Authority(folder, "stranger-ca")


@pytest.fixture(scope="module")
async def mtls_server(
    migrated_url: str, admin_token: str, authorities: tuple[Authority, Authority]
) -> AsyncIterator[RunningServer]:
    ours, _ = authorities
    server_pem = ours.issue("rating", server=True)
    tls = TlsFiles(server_pem.cert, server_pem.key, client_ca=ours.pem.cert)
    server = await start_server(migrated_url, ServerConfig(port=0, grace_seconds=1, tls=tls))
    yield server
    await server.stop(1)


def _channel(server: RunningServer, ca: Path, client: Pem | None) -> grpc.aio.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(),
        private_key=client.key.read_bytes() if client else None,
        certificate_chain=client.cert.read_bytes() if client else None,
    )
    return grpc.aio.secure_channel(f"localhost:{server.port}", credentials)


async def _quote(channel: grpc.aio.Channel, token: str | None) -> rating_pb2.QuoteResponse:
    stub = rating_pb2_grpc.RatingServiceStub(channel)
    return await stub.Quote(
        rating_pb2.QuoteRequest(currency="USD"), metadata=bearer(token) if token else None, timeout=5
    )


async def test_a_client_certificate_of_our_ca_and_a_token_get_a_quote(
    mtls_server: RunningServer, authorities: tuple[Authority, Authority], admin_token: str
) -> None:
    ours, _ = authorities
    async with _channel(mtls_server, ours.pem.cert, ours.issue("checkout", server=False)) as channel:
        assert (await _quote(channel, admin_token)).quote.currency == "USD"
        # A certificate is not a token: the call still needs one.
        assert (await failure(_quote(channel, None))).code() == grpc.StatusCode.UNAUTHENTICATED
        health = health_pb2_grpc.HealthStub(channel)
        serving = await health.Check(health_pb2.HealthCheckRequest(service="billing.liveness"), timeout=5)
        assert serving.status == health_pb2.HealthCheckResponse.SERVING


async def test_without_a_client_certificate_nothing_gets_through(
    mtls_server: RunningServer, authorities: tuple[Authority, Authority], admin_token: str
) -> None:
    ours, _ = authorities
    async with _channel(mtls_server, ours.pem.cert, None) as channel:
        assert (await failure(_quote(channel, admin_token))).code() == grpc.StatusCode.UNAVAILABLE
        health = health_pb2_grpc.HealthStub(channel)
        error = await failure(health.Check(health_pb2.HealthCheckRequest(), timeout=5))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


async def test_a_certificate_from_another_ca_is_refused(
    mtls_server: RunningServer, authorities: tuple[Authority, Authority], admin_token: str
) -> None:
    ours, stranger = authorities
    async with _channel(mtls_server, ours.pem.cert, stranger.issue("intruder", server=False)) as channel:
        assert (await failure(_quote(channel, admin_token))).code() == grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_is_refused(mtls_server: RunningServer, admin_token: str) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{mtls_server.port}") as channel:
        assert (await failure(_quote(channel, admin_token))).code() == grpc.StatusCode.UNAVAILABLE


async def test_billing_quote_presents_its_client_certificate(
    mtls_server: RunningServer,
    authorities: tuple[Authority, Authority],
    admin_token: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # In process: structlog must not be bound to pytest's capture stream, closed after this test.
    monkeypatch.setattr(cli, "configure_logging", lambda: None)
    ours, _ = authorities
    client = ours.issue("operator", server=False)
    argv = ["quote", "--target", f"localhost:{mtls_server.port}", "--currency", "USD", "--json"]
    argv += ["--token", admin_token, "--ca-cert", str(ours.pem.cert)]
    assert await asyncio.to_thread(cli.main, argv) == 1  # no client certificate: refused
    assert "UNAVAILABLE" in capsys.readouterr().err
    argv += ["--client-cert", str(client.cert), "--client-key", str(client.key)]
    assert await asyncio.to_thread(cli.main, argv) == 0
    assert json.loads(capsys.readouterr().out)["currency"] == "USD"
