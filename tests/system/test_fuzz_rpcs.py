"""Fuzzing every RPC of the real server (issue 6, Robustness), table-driven from the services.

Every method of every service the server registers (rating.server.SERVICE_NAMES, read from the
descriptors, so a new service or method is fuzzed without touching this file) receives random
bytes and random structurally valid messages through a real ``billing serve`` process on
loopback. Each answer must be a status a client can act on: never UNKNOWN, never INTERNAL (a
bug), never UNAVAILABLE or DEADLINE_EXCEEDED (a crash or a hang). Oversized, deeply nested and
hugely repeated messages must be refused with RESOURCE_EXHAUSTED or INVALID_ARGUMENT (or served).

Deterministic (``derandomize``) and bounded: ``BILLING_FUZZ_EXAMPLES`` examples per method and
kind (default 20); raise it for a longer hunt.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rating.server import SERVICE_NAMES
from tests.integration.api.auth import issue
from tests.integration.api.test_server_lifecycle import _free_port
from tests.system.protobuf_strategies import messages

EXAMPLES = int(os.environ.get("BILLING_FUZZ_EXAMPLES", "20"))
TIMEOUT_S = 15.0
# What a caller can act on. UNAVAILABLE is excluded: from a healthy server it means it crashed.
ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
}
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@dataclass(frozen=True)
class Rpc:
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @property
    def request(self) -> Descriptor:
        return self.method.input_type

    def call(self, channel: grpc.Channel, payloads: list[bytes]) -> grpc.StatusCode:
        """Send raw request bytes (one message, or each as a stream message); the final status."""
        streaming_in, streaming_out = self.method.client_streaming, self.method.server_streaming
        try:
            if not streaming_in and not streaming_out:
                channel.unary_unary(self.path)(payloads[0], timeout=TIMEOUT_S)
            elif streaming_in and not streaming_out:
                channel.stream_unary(self.path)(iter(payloads), timeout=TIMEOUT_S)
            elif not streaming_in:
                for _ in channel.unary_stream(self.path)(payloads[0], timeout=TIMEOUT_S):
                    pass
            else:
                for _ in channel.stream_stream(self.path)(iter(payloads), timeout=TIMEOUT_S):
                    pass
        except grpc.RpcError as error:
            return error.code()  # type: ignore[no-any-return,attr-defined]
        return grpc.StatusCode.OK


RPCS = [
    Rpc(method)
    for name in SERVICE_NAMES
    for method in descriptor_pool.Default().FindServiceByName(name).methods
]


@dataclass
class Server:
    target: str
    channel: grpc.Channel
    log: Path
    process: subprocess.Popen[bytes]
    interesting: list[str]

    def check(self, rpc: Rpc, payloads: list[bytes], acceptable: set[grpc.StatusCode] = ACCEPTABLE) -> None:
        code = rpc.call(self.channel, payloads)
        assert code in acceptable, f"{rpc.path} answered {code.name} to {[p[:200] for p in payloads]!r}"
        assert self.process.poll() is None, f"the server exited:\n{self.log.read_text()[-3000:]}"


def _catalog_names(channel: grpc.Channel) -> list[str]:
    """Resource names, lookup keys, event names and codes of the seeded catalog, from its List
    methods: valid references let fuzzed requests pass validation and reach the code behind it."""
    found: set[str] = set()
    for rpc in RPCS:
        if not rpc.method.name.startswith("List") or rpc.method.client_streaming:
            continue
        request = (
            message_factory.GetMessageClass(rpc.request)(page_size=100)
            if "page_size" in rpc.request.fields_by_name
            else message_factory.GetMessageClass(rpc.request)()
        )
        answer = channel.unary_unary(
            rpc.path, response_deserializer=message_factory.GetMessageClass(rpc.method.output_type).FromString
        )(request.SerializeToString(), timeout=TIMEOUT_S)
        for field, value in answer.ListFields():
            if field.message_type is None or not field.is_repeated:
                continue
            for item in value:
                for key in ("name", "lookup_key", "event_name", "code", "currency"):
                    if key in item.DESCRIPTOR.fields_by_name and getattr(item, key):
                        found.add(getattr(item, key))
    return sorted(found)


@pytest.fixture(scope="module")
async def server(create_database) -> AsyncIterator[Server]:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="billing-fuzz-"))
    log = folder / "server.log"
    with log.open("wb") as sink:
        # A plain Popen: the tests are synchronous (Hypothesis), the event loop idles meanwhile.
        process = subprocess.Popen(  # noqa: ASYNC220
            [sys.executable, "-m", "billing.cli", "serve", "--seed-demo", "--port", str(port)],
            env={**os.environ, "DATABASE_URL": url, "BILLING_LOG_FORMAT": "json"},
            stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
        )  # fmt: skip
    target = f"127.0.0.1:{port}"
    # An admin token: a fuzzed request must get past authentication to reach the code behind it.
    credentials = grpc.composite_channel_credentials(
        grpc.local_channel_credentials(),
        grpc.access_token_call_credentials(await issue(url, "fuzz", ["billing:admin"])),
    )
    options = [("grpc.max_send_message_length", 16 * 1024 * 1024)]
    channel = grpc.secure_channel(target, credentials, options=options)
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        _wait_serving(channel, process, log)
        yield Server(target, channel, log, process, _catalog_names(channel))
    finally:
        channel.close()
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:  # still busy with a request: do not leave it behind
            process.kill()
            process.wait()
    problems = [line for line in log.read_text().splitlines() if '"unhandled error"' in line]
    assert not problems, "\n".join(problems)


def _wait_serving(channel: grpc.Channel, process: subprocess.Popen[bytes], log: Path) -> None:
    import time

    from grpc_health.v1 import health_pb2, health_pb2_grpc

    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if (
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1).status
                == 1
            ):
                return
        except grpc.RpcError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def _ids(rpc: Rpc) -> str:
    return rpc.path.rsplit(".", 1)[-1]


@pytest.mark.parametrize("rpc", RPCS, ids=_ids)
def test_random_bytes(server: Server, rpc: Rpc) -> None:
    @FUZZ
    @given(st.lists(st.binary(max_size=300), min_size=1, max_size=3))
    def run(payloads: list[bytes]) -> None:
        server.check(rpc, payloads)

    run()


@pytest.mark.parametrize("rpc", RPCS, ids=_ids)
def test_random_valid_messages(server: Server, rpc: Rpc) -> None:
    @FUZZ
    @given(st.lists(messages(rpc.request, server.interesting), min_size=1, max_size=3))
    def run(requests: list[object]) -> None:
        server.check(rpc, [request.SerializeToString() for request in requests])  # type: ignore[attr-defined]

    run()


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@pytest.mark.parametrize("rpc", RPCS, ids=_ids)
def test_oversized_messages_are_resource_exhausted(server: Server, rpc: Rpc) -> None:
    # An unknown field (number 9999) carrying 5 MiB: a valid encoding, over the 4 MiB limit.
    blob = _varint(9999 << 3 | 2) + _varint(5 * 1024 * 1024) + b"\0" * (5 * 1024 * 1024)
    server.check(rpc, [blob], {grpc.StatusCode.RESOURCE_EXHAUSTED})


@pytest.mark.parametrize("rpc", RPCS, ids=_ids)
def test_deeply_nested_messages_are_invalid_arguments(server: Server, rpc: Rpc) -> None:
    # 100,000 nested groups of an unknown field: past every parser's recursion limit.
    depth = 100_000
    blob = _varint(9999 << 3 | 3) * depth + _varint(9999 << 3 | 4) * depth
    server.check(rpc, [blob], {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED})


def _hugely_repeated(descriptor: Descriptor, depth: int = 0) -> Iterator[bytes]:
    """For each repeated field, at the top or one message down: 300,000 empty entries (under the
    size limit)."""
    for field in descriptor.fields:
        if field.is_repeated:  # maps too: their entries are repeated messages
            yield (_varint(field.number << 3 | 2) + b"\0") * 300_000
        elif field.message_type is not None and depth == 0:
            for inner in _hugely_repeated(field.message_type, depth + 1):
                yield _varint(field.number << 3 | 2) + _varint(len(inner)) + inner


@pytest.mark.parametrize(
    "rpc", [rpc for rpc in RPCS if any(True for _ in _hugely_repeated(rpc.request))], ids=_ids
)
def test_hugely_repeated_fields_are_refused_or_served(server: Server, rpc: Rpc) -> None:
    for blob in _hugely_repeated(rpc.request):
        server.check(
            rpc,
            [blob],
            {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED},
        )
