"""The one table from RPC to the scope a token needs for it.

Every method of every billing service has a row; the server refuses to start otherwise (see
``check_covered``), and the access matrix test walks the service descriptors, so a new RPC
without a row fails before it ships. ``billing:admin`` grants every scope. Health and
reflection need no token: probes and ``grpcurl list`` must work without one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health
from grpc_reflection.v1alpha import reflection

from billing.domain.api_tokens import Scope

READ, WRITE, ADMIN = Scope.BILLING_READ, Scope.CATALOG_WRITE, Scope.BILLING_ADMIN

_SCOPES: dict[str, dict[str, Scope]] = {
    "billing.v1.CatalogService": {
        "CreateProduct": WRITE,
        "GetProduct": READ,
        "ListProducts": READ,
        "UpdateProduct": WRITE,
        "ArchiveProduct": WRITE,
        "CreateMeter": WRITE,
        "GetMeter": READ,
        "ListMeters": READ,
        "UpdateMeter": WRITE,
        "ArchiveMeter": WRITE,
        "CreatePrice": WRITE,
        "GetPrice": READ,
        "ListPrices": READ,
        "UpdatePrice": WRITE,
        "ArchivePrice": WRITE,
        "CreatePlan": WRITE,
        "GetPlan": READ,
        "ListPlans": READ,
        "UpdatePlan": WRITE,
        "ArchivePlan": WRITE,
        "CreateAddOn": WRITE,
        "GetAddOn": READ,
        "ListAddOns": READ,
        "UpdateAddOn": WRITE,
        "ArchiveAddOn": WRITE,
        "CreateCoupon": WRITE,
        "GetCoupon": READ,
        "ListCoupons": READ,
        "UpdateCoupon": WRITE,
        "ArchiveCoupon": WRITE,
    },
    "billing.v1.CustomerService": {
        "GetCustomer": READ,
        "ListCustomers": READ,
        # No customers:write scope (yet): creating and editing customers is an admin's job.
        "CreateCustomer": ADMIN,
        "UpdateCustomer": ADMIN,
    },
    "billing.v1.RatingService": {"Quote": Scope.QUOTE},
    "billing.v1.UsageService": {
        "RecordUsage": Scope.USAGE_WRITE,
        "RecordUsageBatch": Scope.USAGE_WRITE,
        "StreamUsage": Scope.USAGE_WRITE,
        "CancelUsage": Scope.USAGE_WRITE,
        "GetUsageSummary": READ,
    },
    # Support staff read subscriptions and invoices and preview changes; changing what a
    # customer pays, or moving money, is an admin's job.
    "billing.v1.SubscriptionService": {
        "CreateSubscription": ADMIN,
        "GetSubscription": READ,
        "ListSubscriptions": READ,
        "UpdateSubscription": ADMIN,
        "PreviewSubscriptionChange": READ,
        "CancelSubscription": ADMIN,
        "ScheduleSubscriptionChange": ADMIN,
        "RemoveScheduledCancellation": ADMIN,
        "RetryParkedSubscription": ADMIN,
    },
    "billing.v1.InvoiceService": {
        "GetInvoice": READ,
        "ListInvoices": READ,
        "PreviewInvoice": READ,
        "VoidInvoice": ADMIN,
        "MarkInvoiceUncollectible": ADMIN,
        "RecordInvoicePayment": ADMIN,
        "CreateCreditNote": ADMIN,
    },
    "billing.v1.TestClockService": {
        "CreateTestClock": ADMIN,
        "GetTestClock": READ,
        "ListTestClocks": READ,
        "AdvanceTestClock": ADMIN,
        "DeleteTestClock": ADMIN,
    },
}

# Method path ("/package.Service/Method", what gRPC hands an interceptor) -> required scope.
SCOPE_OF: Mapping[str, Scope] = {
    f"/{service}/{method}": scope for service, methods in _SCOPES.items() for method, scope in methods.items()
}

# Services anyone may call. The liveness check is a name served by the health service.
OPEN_SERVICES = frozenset(
    {health.SERVICE_NAME, reflection.SERVICE_NAME, "grpc.reflection.v1.ServerReflection"}
)


def check_covered(services: Iterable[ServiceDescriptor]) -> None:
    """Fail at start if a served method has no scope, or the table names a method nobody serves."""
    served = {f"/{s.full_name}/{m.name}" for s in services for m in s.methods}
    missing, unknown = served - SCOPE_OF.keys(), SCOPE_OF.keys() - served
    if missing or unknown:
        raise RuntimeError(
            f"scope table out of date: no scope for {sorted(missing)}; unknown {sorted(unknown)}"
        )
