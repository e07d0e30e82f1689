"""Canary secrets and personal data sent to a real server process never reach its output.

Issue 6: tokens, emails and addresses never appear in logs. The server is a real ``billing
serve`` process (with one planted bug, see planted_bug_server.py), logging at DEBUG and exporting
every span to its stdout; the traffic carries a canary bearer token in metadata and a canary
email, address and tax id in the requests, valid and invalid, including one that fails with an
unexpected exception. Everything the process writes, stdout and stderr, is searched.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import sys
from pathlib import Path

import grpc
import pytest

from billing.v1 import customer_pb2 as cpb
from billing.v1 import customer_pb2_grpc, rating_pb2, rating_pb2_grpc, usage_pb2, usage_pb2_grpc
from tests.integration.api.auth import issue
from tests.integration.api.rpc import failure, request_id
from tests.integration.api.test_server_lifecycle import SERVING, _eventually, _free_port, _health

PLANTED = Path(__file__).with_name("planted_bug_server.py")
CANARY = secrets.token_hex(6)
TOKEN = f"tok{CANARY}secret"
EMAIL = f"jane.{CANARY}@example.com"
STREET = f"{CANARY} Canary Street"
CITY = f"Canaryville{CANARY}"
POSTAL = f"Z{CANARY}"
TAX_ID = f"SE{CANARY}01"
CANARIES = (TOKEN, EMAIL, STREET, CITY, POSTAL, TAX_ID, CANARY)
TRACE_ID = secrets.token_hex(16)


def _customer(name: str = "Canary AB", **fields: object) -> cpb.Customer:
    values: dict[str, object] = {
        "display_name": name,
        "currency": "SEK",
        "email": EMAIL,
        "billing_address": cpb.Address(line1=STREET, city=CITY, postal_code=POSTAL, country="SE"),
        "tax_ids": [cpb.TaxId(type="eu_vat", value=TAX_ID)],
    }
    values.update(fields)
    return cpb.Customer(**values)


async def _traffic(target: str, secret: str) -> None:
    metadata = (
        ("authorization", f"Bearer {secret}"),
        ("x-request-id", "req-canary-bug"),
        ("traceparent", f"00-{TRACE_ID}-{secrets.token_hex(8)}-01"),
    )
    async with grpc.aio.insecure_channel(target) as channel:
        customers = customer_pb2_grpc.CustomerServiceStub(channel)
        created = await customers.CreateCustomer(
            cpb.CreateCustomerRequest(customer=_customer(), request_id=request_id()), metadata=metadata
        )
        await customers.GetCustomer(cpb.GetCustomerRequest(name=created.customer.name), metadata=metadata)
        # Bad requests whose fields the validation reads (and its answers may echo).
        for bad in (
            _customer(currency=EMAIL),
            _customer(time_zone=STREET),
            _customer(email=f"{STREET} {TAX_ID}"),
            _customer(crm_account_id=created.customer.crm_account_id or "", display_name=""),
        ):
            await failure(
                customers.CreateCustomer(
                    cpb.CreateCustomerRequest(customer=bad, request_id=request_id()), metadata=metadata
                )
            )
        await failure(
            customers.GetCustomer(cpb.GetCustomerRequest(name=f"customers/{EMAIL}"), metadata=metadata)
        )
        # The planted bug: INTERNAL, logged with its traceback.
        error = await failure(
            customers.CreateCustomer(
                cpb.CreateCustomerRequest(customer=_customer("planted-bug"), request_id=request_id()),
                metadata=metadata,
            )
        )
        assert error.code() is grpc.StatusCode.INTERNAL
        assert CANARY not in (error.details() or "")
        await failure(
            rating_pb2_grpc.RatingServiceStub(channel).Quote(
                rating_pb2.QuoteRequest(customer=f"customers/{EMAIL}", coupon_codes=[TOKEN]),
                metadata=metadata,
            )
        )
        event = usage_pb2.UsageEvent(
            idempotency_key=TOKEN,
            customer=f"customers/{EMAIL}",
            event_name=STREET,
            properties={"email": EMAIL},
        )
        await usage_pb2_grpc.UsageServiceStub(channel).RecordUsageBatch(
            usage_pb2.RecordUsageBatchRequest(events=[event]), metadata=metadata
        )
        await failure(
            channel.unary_unary("/billing.v1.CustomerService/CreateCustomer")(
                EMAIL.encode() + b"\xff\xff", metadata=metadata
            )
        )


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_no_canary_reaches_the_output_of_a_real_server(create_database, log_format: str) -> None:  # type: ignore[no-untyped-def]
    url = await create_database(migrated=True)
    # A real token, so the calls get past authentication; its secret is one more canary.
    secret = await issue(url, "canary", ["billing:admin"])
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BILLING_LOG_FORMAT": log_format,
        "BILLING_LOG_LEVEL": "DEBUG",
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_METRICS_EXPORTER": "console",
        "OTEL_METRIC_EXPORT_INTERVAL": "500",
        "PYTHONPATH": os.pathsep.join([str(Path.cwd()), os.environ.get("PYTHONPATH", "")]),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(PLANTED), "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert await _eventually(lambda: _health(f"127.0.0.1:{port}"), SERVING, within=20) == SERVING
        await _traffic(f"127.0.0.1:{port}", secret)
        await asyncio.sleep(1)  # a metrics export
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    output = stdout.decode() + stderr.decode()
    assert process.returncode == 0, output[-3000:]
    # The positive controls: the bug was logged, with its stack and ids, and spans were exported.
    assert "unhandled error" in output
    assert "planted_bug_server.py" in output
    assert "RuntimeError" in output
    assert "some.library" in output
    assert "library saw" in output
    assert "billing.v1.CustomerService/CreateCustomer" in stdout.decode()
    for canary in (*CANARIES, secret):
        assert canary not in output, f"{canary!r} leaked:\n" + "\n".join(
            line for line in output.splitlines() if canary in line
        )
    if log_format == "json":
        (bug,) = [json.loads(line) for line in stderr.decode().splitlines() if '"unhandled error"' in line]
        assert bug["request_id"] == "req-canary-bug"
        assert bug["trace_id"] == TRACE_ID
        assert len(bug["span_id"]) == 16
