"""A seat plan, a customer on a test clock, and an invoicer to close its periods, for API tests.

The customer lives on its own test clock, so each test controls "now" through the API itself
(AdvanceTestClock) and computes every amount by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from billing.domain.catalog import Catalog
from billing.store.database import create_pool
from billing.store.invoicer_store import InvoicerSettings, PostgresInvoicerStore
from billing.v1 import catalog_pb2, customer_pb2, customer_pb2_grpc, test_clock_pb2, test_clock_pb2_grpc
from billing.v1 import catalog_pb2_grpc as catalog_grpc
from invoicer.usecases.periods import work_on
from tests.integration.api import builders
from tests.integration.api.rpc import request_id

JAN_1 = datetime(2030, 1, 1, tzinfo=UTC)
SEAT = 3000  # minor units per seat and month


def stamp(instant: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(instant)
    return value


@dataclass(frozen=True)
class World:
    plan: str
    seat_price: str
    customer: str
    clock: str


async def world(
    catalog: catalog_grpc.CatalogServiceStub,
    customers: customer_pb2_grpc.CustomerServiceStub,
    clocks: test_clock_pb2_grpc.TestClockServiceStub,
    *,
    start: datetime = JAN_1,
    has_payment_method: bool = True,
) -> World:
    product = await builders.product(catalog, "Seats")
    seat = await builders.price(catalog, builders.per_unit(product.name, str(SEAT)))
    plan = await catalog.CreatePlan(
        catalog_pb2.CreatePlanRequest(
            plan=catalog_pb2.Plan(display_name="Team", seat_price=seat.name), request_id=request_id()
        )
    )
    clock = await clocks.CreateTestClock(
        test_clock_pb2.CreateTestClockRequest(
            test_clock=test_clock_pb2.TestClock(frozen_time=stamp(start)), request_id=request_id()
        )
    )
    customer = await customers.CreateCustomer(
        customer_pb2.CreateCustomerRequest(
            customer=customer_pb2.Customer(
                display_name="Clockwork AB",
                currency="USD",
                test_clock=clock.test_clock.name,
                has_payment_method=has_payment_method,
            ),
            request_id=request_id(),
        )
    )
    return World(plan.plan.name, seat.name, customer.customer.name, clock.test_clock.name)


async def advance(clocks: test_clock_pb2_grpc.TestClockServiceStub, clock: str, to: datetime) -> None:
    await clocks.AdvanceTestClock(
        test_clock_pb2.AdvanceTestClockRequest(name=clock, frozen_time=stamp(to), request_id=request_id())
    )


async def drain(url: str, catalog: Callable[[], Catalog], grace: timedelta = timedelta(0)) -> int:
    """Run the invoicer's use case on every due subscription until nothing is due; the number of
    jobs done. ``grace`` 0 finalizes each draft on the next pass."""
    pool = await create_pool(url, min_size=1, max_size=2)
    store = PostgresInvoicerStore(pool, catalog, InvoicerSettings(owner="api-test"))
    done = 0
    try:
        for _ in range(100):
            claims = await store.claim(50)
            if not claims:
                return done
            for claim in claims:
                await work_on(store, claim, grace)
                done += 1
        raise AssertionError("the invoicer never ran out of due work")
    finally:
        await pool.close()
