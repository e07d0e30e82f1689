"""Customers through the real server."""

from __future__ import annotations

import grpc
from google.protobuf import field_mask_pb2

from billing.v1 import customer_pb2 as pb
from billing.v1 import customer_pb2_grpc
from tests.integration.api.rpc import failure, field_violations, request_id

Stub = customer_pb2_grpc.CustomerServiceStub


def _customer(**fields: object) -> pb.Customer:
    defaults: dict[str, object] = {
        "display_name": "Acme AB",
        "currency": "SEK",
        "time_zone": "Europe/Stockholm",
        "billing_address": pb.Address(line1="Drottninggatan 1", city="Stockholm", country="SE"),
        "tax_ids": [pb.TaxId(type="eu_vat", value="SE556677889901")],
    }
    return pb.Customer(**{**defaults, **fields})


async def test_a_customer_round_trips_with_address_tax_ids_and_references(customer_stub: Stub) -> None:
    crm = f"crm-{request_id()}"
    created = (
        await customer_stub.CreateCustomer(
            pb.CreateCustomerRequest(customer=_customer(crm_account_id=crm), request_id=request_id())
        )
    ).customer
    assert created.name.startswith("customers/cus_")
    fetched = (await customer_stub.GetCustomer(pb.GetCustomerRequest(name=created.name))).customer
    assert fetched == created
    assert fetched.billing_address.city == "Stockholm"
    assert [t.value for t in fetched.tax_ids] == ["SE556677889901"]
    listed = await customer_stub.ListCustomers(pb.ListCustomersRequest(crm_account_id=crm))
    assert [c.name for c in listed.customers] == [created.name]


async def test_an_update_changes_masked_fields_and_never_the_currency(customer_stub: Stub) -> None:
    created = (
        await customer_stub.CreateCustomer(
            pb.CreateCustomerRequest(customer=_customer(), request_id=request_id())
        )
    ).customer
    updated = (
        await customer_stub.UpdateCustomer(
            pb.UpdateCustomerRequest(
                customer=pb.Customer(
                    name=created.name, time_zone="Australia/Lord_Howe", accounting_id="acc-9"
                ),
                update_mask=field_mask_pb2.FieldMask(paths=["time_zone", "accounting_id"]),
                request_id=request_id(),
            )
        )
    ).customer
    assert (updated.time_zone, updated.accounting_id, updated.display_name) == (
        "Australia/Lord_Howe",
        "acc-9",
        "Acme AB",
    )
    error = await failure(
        customer_stub.UpdateCustomer(
            pb.UpdateCustomerRequest(
                customer=pb.Customer(name=created.name, currency="EUR"),
                update_mask=field_mask_pb2.FieldMask(paths=["currency"]),
                request_id=request_id(),
            )
        )
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask" in field_violations(error)


async def test_a_quote_for_a_customer_uses_the_customers_currency(
    customer_stub: Stub, rating_stub: object
) -> None:
    from billing.v1 import rating_pb2

    created = (
        await customer_stub.CreateCustomer(
            pb.CreateCustomerRequest(customer=_customer(), request_id=request_id())
        )
    ).customer
    quote = (await rating_stub.Quote(rating_pb2.QuoteRequest(customer=created.name))).quote  # type: ignore[attr-defined]
    assert (quote.currency, quote.total, len(quote.lines)) == ("SEK", 0, 0)
