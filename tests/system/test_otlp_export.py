"""The production configuration end to end: a real ``billing serve`` exporting over OTLP/gRPC,
configured only by OTEL_* variables, to a collector stand-in on loopback.

A caller's sampled trace arrives with the server span under it (and its query spans), the call
duration histogram and the usage counter arrive as metrics, and what is buffered at SIGTERM is
flushed before the process exits.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import sys
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from billing.v1 import rating_pb2, rating_pb2_grpc
from tests.integration.api.auth import bearer, issue
from tests.integration.api.test_server_lifecycle import SERVING, _eventually, _free_port, _health


class Collector(trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.metrics: list[Any] = []

    async def Export(self, request: Any, context: Any) -> Any:  # both services' one method
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            self.spans += [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
            return trace_service_pb2.ExportTraceServiceResponse()
        self.metrics += [m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def test_traces_and_metrics_reach_an_otlp_collector(create_database) -> None:  # type: ignore[no-untyped-def]
    collector = Collector()
    receiver = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, receiver)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, receiver)
    collector_port = receiver.add_insecure_port("127.0.0.1:0")
    await receiver.start()
    url = await create_database(migrated=True)
    secret = await issue(url, "otlp", ["quote"])
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "BILLING_LOG_FORMAT": "json",
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
        "OTEL_METRIC_EXPORT_INTERVAL": "60000",  # only the flush at exit exports metrics
        "OTEL_SERVICE_NAME": "billing-rating-under-test",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "billing.cli", "serve", "--port", str(port), env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    trace_id = secrets.token_hex(16)
    try:
        assert await _eventually(lambda: _health(f"127.0.0.1:{port}"), SERVING, within=20) == SERVING
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = rating_pb2_grpc.RatingServiceStub(channel)
            await stub.Quote(
                rating_pb2.QuoteRequest(currency="USD"),
                metadata=(*bearer(secret), ("traceparent", f"00-{trace_id}-{secrets.token_hex(8)}-01")),
            )
            await stub.Quote(rating_pb2.QuoteRequest(currency="USD"), metadata=bearer(secret))
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
        assert process.returncode == 0, stderr.decode()[-2000:]
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        await receiver.stop(0)
    ours = [span for span in collector.spans if span.trace_id.hex() == trace_id]
    assert [span.name for span in ours] == ["billing.v1.RatingService/Quote"]
    (duration,) = [m for m in collector.metrics if m.name == "rpc.server.call.duration"]
    counts = {
        next(a.value.string_value for a in p.attributes if a.key == "rpc.method"): p.count
        for p in duration.histogram.data_points
    }
    assert counts == {"billing.v1.RatingService/Quote": 2}
