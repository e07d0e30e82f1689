"""Customers on the wire: who is billed, in which currency and time zone (customer.proto).

``currency`` is immutable once set: invoices of one customer must add up in one currency, so an
update mask naming it is refused, not ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from billing.domain.customer import Address, Customer, TaxId
from billing.v1 import customer_pb2 as pb
from rating.api.converters.common import (
    Checker,
    convert,
    optional_timestamp,
    read_metadata,
    read_optional,
    read_required,
    updatable,
)
from rating.api.converters.common import (
    changes_from_mask as changes_from_mask,  # re-exported: servicers call it with *_MASK
)
from rating.api.converters.resources import format_name, format_optional_name

# Deliberately loose: one "@", no spaces, a dot in the domain. Deliverability is the mailer's
# job; this only catches a name or a phone number typed into the email field.
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_MAX_EMAIL_LENGTH = 254  # RFC 5321 path limit
_COUNTRY = re.compile(r"[A-Z]{2}")  # ISO 3166-1 alpha-2, upper case as tax engines expect
_TAX_ID_TYPE = re.compile(r"[a-z][a-z0-9_]{1,31}")  # Stripe's style: "eu_vat", "us_ein"


def customer_from_proto(msg: pb.Customer, field: str = "customer", *, id: str = "") -> Customer:
    """A customer to create; ``id`` is the one the server assigned."""
    return convert(field, lambda c: _customer(msg, c, id))


def _customer(msg: pb.Customer, c: Checker, customer_id: str) -> Customer:
    return Customer(
        id=customer_id,
        name=c.required(msg.display_name, "display_name"),
        currency=c.currency(msg.currency),
        time_zone=c.time_zone(msg.time_zone),
        email=_email(msg, c),
        billing_address=_address(msg, c),
        tax_ids=_tax_ids(msg, c),
        crm_account_id=msg.crm_account_id or None,
        accounting_id=msg.accounting_id or None,
        metadata=c.metadata(msg.metadata),
        test_clock_id=c.optional_name(msg.test_clock, "testClocks", "test_clock"),
        has_payment_method=msg.has_payment_method,
    )


def _email(msg: pb.Customer, c: Checker) -> str:
    email = msg.email
    if email and (len(email) > _MAX_EMAIL_LENGTH or _EMAIL.fullmatch(email) is None):
        c.add("email", "must be an email address such as 'billing@example.com'")
    return email


def _address(msg: pb.Customer, c: Checker) -> Address:
    wire = msg.billing_address
    if wire.country and _COUNTRY.fullmatch(wire.country) is None:
        c.add("billing_address.country", "must be an ISO 3166-1 alpha-2 code such as 'SE'")
    return Address(
        line1=wire.line1,
        line2=wire.line2,
        city=wire.city,
        postal_code=wire.postal_code,
        state=wire.state,
        country=wire.country,
    )


def _tax_ids(msg: pb.Customer, c: Checker) -> tuple[TaxId, ...]:
    tax_ids: list[TaxId] = []
    for index, wire in enumerate(msg.tax_ids):
        at = c.at(f"tax_ids[{index}]")
        if _TAX_ID_TYPE.fullmatch(wire.type) is None:
            at.add("type", "must be a tax id type such as 'eu_vat' or 'us_ein'")
        at.required(wire.value, "value")
        tax_ids.append(TaxId(wire.type, wire.value))
    return tuple(tax_ids)


def customer_to_proto(customer: Customer) -> pb.Customer:
    address = customer.billing_address
    return pb.Customer(
        name=format_name("customers", customer.id),
        display_name=customer.name,
        email=customer.email,
        currency=customer.currency,
        time_zone=customer.time_zone,
        billing_address=pb.Address(
            line1=address.line1,
            line2=address.line2,
            city=address.city,
            postal_code=address.postal_code,
            state=address.state,
            country=address.country,
        ),
        tax_ids=[pb.TaxId(type=tax_id.type, value=tax_id.value) for tax_id in customer.tax_ids],
        crm_account_id=customer.crm_account_id or "",
        accounting_id=customer.accounting_id or "",
        metadata=dict(customer.metadata),
        test_clock=format_optional_name("testClocks", customer.test_clock_id),
        has_payment_method=customer.has_payment_method,
        create_time=optional_timestamp(customer.created_at),
        update_time=optional_timestamp(customer.updated_at),
    )


# Everything a client owns except currency and test_clock (immutable) and name (selects it).
CUSTOMER_MASK = updatable(
    pb.Customer,
    {
        "display_name": ("name", read_required("display_name")),
        "email": ("email", _email),
        "time_zone": ("time_zone", lambda m, c: c.time_zone(m.time_zone)),
        "billing_address": ("billing_address", _address),
        "tax_ids": ("tax_ids", _tax_ids),
        "crm_account_id": ("crm_account_id", read_optional("crm_account_id")),
        "accounting_id": ("accounting_id", read_optional("accounting_id")),
        "metadata": ("metadata", read_metadata),
        "has_payment_method": ("has_payment_method", lambda m, c: m.has_payment_method),
    },
)


def customer_changes(msg: pb.Customer, paths: Iterable[str], field: str = "customer") -> dict[str, object]:
    return changes_from_mask(msg, paths, CUSTOMER_MASK, field)
