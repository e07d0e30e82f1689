"""TestClockService."""

from __future__ import annotations

from typing import Any

from billing.v1 import test_clock_pb2 as pb
from rating.api.converters import test_clocks as convert
from rating.api.converters.resources import parse_name
from rating.api.errors import translate_errors
from rating.api.pagination import next_token, page_of
from rating.api.servicers._support import Dependencies, mutate, read
from rating.usecases import test_clocks
from rating.usecases.billing_ports import BillingUnitOfWork

Context = Any


class TestClockServicer:
    __test__ = False

    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    @translate_errors
    async def CreateTestClock(
        self, request: pb.CreateTestClockRequest, context: Context
    ) -> pb.CreateTestClockResponse:
        clock = convert.clock_from_proto(request.test_clock)

        async def build(uow: BillingUnitOfWork) -> pb.CreateTestClockResponse:
            created = await test_clocks.create_test_clock(uow, clock)
            return pb.CreateTestClockResponse(test_clock=convert.clock_to_proto(created))

        return await mutate(self.deps, "CreateTestClock", request, pb.CreateTestClockResponse, build)

    @translate_errors
    async def GetTestClock(
        self, request: pb.GetTestClockRequest, context: Context
    ) -> pb.GetTestClockResponse:
        clock_id = parse_name(request.name, "testClocks", "name")

        async def query(uow: BillingUnitOfWork) -> pb.GetTestClockResponse:
            state = await test_clocks.get_test_clock(uow, clock_id)
            return pb.GetTestClockResponse(test_clock=convert.clock_to_proto(state))

        return await read(self.deps, query)

    @translate_errors
    async def ListTestClocks(
        self, request: pb.ListTestClocksRequest, context: Context
    ) -> pb.ListTestClocksResponse:
        after, size = page_of(request)

        async def query(uow: BillingUnitOfWork) -> pb.ListTestClocksResponse:
            found = await test_clocks.list_test_clocks(uow, after=after, limit=size + 1)
            return pb.ListTestClocksResponse(
                test_clocks=[convert.clock_to_proto(s) for s in found[:size]],
                next_page_token=next_token([s.clock for s in found], size),
            )

        return await read(self.deps, query)

    @translate_errors
    async def AdvanceTestClock(
        self, request: pb.AdvanceTestClockRequest, context: Context
    ) -> pb.AdvanceTestClockResponse:
        clock_id = parse_name(request.name, "testClocks", "name")
        frozen_time = convert.frozen_time_from_proto(request)

        async def build(uow: BillingUnitOfWork) -> pb.AdvanceTestClockResponse:
            state = await test_clocks.advance_test_clock(uow, clock_id, frozen_time)
            return pb.AdvanceTestClockResponse(test_clock=convert.clock_to_proto(state))

        return await mutate(self.deps, "AdvanceTestClock", request, pb.AdvanceTestClockResponse, build)

    @translate_errors
    async def DeleteTestClock(
        self, request: pb.DeleteTestClockRequest, context: Context
    ) -> pb.DeleteTestClockResponse:
        clock_id = parse_name(request.name, "testClocks", "name")

        async def build(uow: BillingUnitOfWork) -> pb.DeleteTestClockResponse:
            await test_clocks.delete_test_clock(uow, clock_id)
            return pb.DeleteTestClockResponse()

        return await mutate(self.deps, "DeleteTestClock", request, pb.DeleteTestClockResponse, build)
