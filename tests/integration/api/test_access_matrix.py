"""Every RPC of every billing service, against every kind of caller (issue 6, Security).

The methods come from the service descriptors of every ``billing.v1`` module, not from the scope
table: a new RPC (or a new service) without a scope fails here, before it ships.
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import billing.v1
from billing.domain.api_tokens import Scope
from rating.api.scopes import SCOPE_OF
from rating.server import RunningServer
from tests.integration.api.auth import bearer, issue, revoke, until_known
from tests.integration.api.rpc import failure

UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED
PERMISSION_DENIED = grpc.StatusCode.PERMISSION_DENIED


def _billing_methods() -> list[MethodDescriptor]:
    methods = []
    for module_info in pkgutil.iter_modules(billing.v1.__path__):
        if module_info.name.endswith("_pb2"):
            module = importlib.import_module(f"billing.v1.{module_info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                methods.extend(service.methods)
    return methods


METHODS = _billing_methods()


def _path(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def test_the_descriptors_name_every_service_we_serve() -> None:
    services = {m.containing_service.name for m in METHODS}
    assert {"CatalogService", "CustomerService", "RatingService", "UsageService"} <= services


@pytest.mark.parametrize("method", METHODS, ids=_path)
def test_every_rpc_has_a_scope(method: MethodDescriptor) -> None:
    assert _path(method) in SCOPE_OF, f"{_path(method)} has no row in rating/api/scopes.py"


@pytest.fixture(scope="module")
async def tokens(migrated_url: str, rating_server: RunningServer) -> dict[str, str]:
    """One token per scope, one with every scope but admin, and a revoked one; all visible to
    the server (its token snapshot is reloaded on NOTIFY or by polling)."""
    made = {s.value: await issue(migrated_url, f"matrix-{s.name.lower()}", [s]) for s in Scope}
    made["revoked"] = await issue(migrated_url, "matrix-revoked", [Scope.BILLING_ADMIN])
    await revoke(migrated_url, "matrix-revoked")
    made["unknown"] = "bt_" + "x" * 43
    await until_known(f"127.0.0.1:{rating_server.port}", made[Scope.BILLING_READ.value])
    return made


@pytest.fixture(scope="module")
async def bare_channel(rating_server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel that sends no credentials of its own."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{rating_server.port}") as channel:
        yield channel


async def _code(call: Any) -> grpc.StatusCode:
    """The status ``call`` (awaitable, or a response stream) ends with."""
    try:
        if hasattr(call, "__aiter__"):
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def _call(channel: grpc.aio.Channel, method: MethodDescriptor, metadata: Any) -> grpc.StatusCode:
    """Call ``method`` with an empty request (one empty message on a stream); its status."""
    path, options = _path(method), {"metadata": metadata, "timeout": 10}
    if method.client_streaming:
        code = await _code(channel.stream_stream(path)(iter([b""]), **options))
    elif method.server_streaming:
        code = await _code(channel.unary_stream(path)(b"", **options))
    else:
        code = await _code(channel.unary_unary(path)(b"", **options))
    assert code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
    return code


def _wrong_scope(needed: Scope) -> Scope:
    return next(s for s in Scope if s not in (needed, Scope.BILLING_ADMIN))


CELLS = ["no token", "unknown token", "revoked token", "wrong scope", "right scope", "admin"]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("method", METHODS, ids=_path)
async def test_access_matrix(
    method: MethodDescriptor, cell: str, tokens: dict[str, str], bare_channel: grpc.aio.Channel
) -> None:
    needed = SCOPE_OF[_path(method)]
    secret = {
        "no token": None,
        "unknown token": tokens["unknown"],
        "revoked token": tokens["revoked"],
        "wrong scope": tokens[_wrong_scope(needed).value],
        "right scope": tokens[needed.value],
        "admin": tokens[Scope.BILLING_ADMIN.value],
    }[cell]
    code = await _call(bare_channel, method, bearer(secret) if secret else None)
    if cell in ("no token", "unknown token", "revoked token"):
        assert code == UNAUTHENTICATED
    elif cell == "wrong scope":
        assert code == PERMISSION_DENIED
    else:  # it reached the servicer, which judged the (empty) request itself
        assert code not in (UNAUTHENTICATED, PERMISSION_DENIED)


async def test_a_malformed_authorization_is_unauthenticated(bare_channel: grpc.aio.Channel) -> None:
    quote = bare_channel.unary_unary("/billing.v1.RatingService/Quote")
    for value in ("Basic dXNlcjpwYXNz", "Bearer", "bt_without_a_scheme"):
        error = await failure(quote(b"", metadata=(("authorization", value),)))
        assert error.code() == UNAUTHENTICATED, value


async def test_health_liveness_and_reflection_need_no_token(bare_channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(bare_channel)
    for service in ("", "billing.liveness"):
        response = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(bare_channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    async for response in reflection.ServerReflectionInfo(iter([request])):
        assert response.list_services_response.service


async def test_an_unserved_method_is_refused_before_it_is_found(
    bare_channel: grpc.aio.Channel, tokens: dict[str, str]
) -> None:
    """Probing for methods needs a token; only an admin learns the method does not exist."""
    probe = bare_channel.unary_unary("/billing.v1.SecretService/Peek")
    assert (await failure(probe(b""))).code() == UNAUTHENTICATED
    quote_only = bearer(tokens[Scope.QUOTE.value])
    assert (await failure(probe(b"", metadata=quote_only))).code() == PERMISSION_DENIED
    admin = bearer(tokens[Scope.BILLING_ADMIN.value])
    assert (await failure(probe(b"", metadata=admin))).code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_revoked_token_stops_working_within_a_second_or_so(
    migrated_url: str, bare_channel: grpc.aio.Channel
) -> None:
    secret = await issue(migrated_url, "soon-revoked", [Scope.QUOTE])
    quote = bare_channel.unary_unary("/billing.v1.RatingService/Quote")

    async def until(predicate: Any, within: float) -> float:
        started = time.monotonic()
        while not predicate(await _code(quote(b"", metadata=bearer(secret), timeout=5))):
            assert time.monotonic() - started < within
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    await until(lambda c: c != UNAUTHENTICATED, within=5)
    await revoke(migrated_url, "soon-revoked")
    # NOTIFY wakes the server at once; polling (0.1 s here) is the guarantee. Generous bound:
    # the machine is shared, and this asserts the mechanism, not its speed.
    await until(lambda c: c == UNAUTHENTICATED, within=3)
