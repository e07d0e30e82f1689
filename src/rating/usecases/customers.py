"""Customer use cases."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from billing.domain.customer import Customer
from rating.usecases.billing_ports import BillingUnitOfWork
from rating.usecases.ports import UnitOfWork


async def create_customer(uow: BillingUnitOfWork, customer: Customer) -> Customer:
    if customer.test_clock_id is not None:
        await uow.test_clocks.get(customer.test_clock_id)  # NotFound for an unknown or deleted clock
    return await uow.entities.add(dataclasses.replace(customer, id=uow.new_id("cus")))


async def update_customer(uow: UnitOfWork, customer_id: str, changes: Mapping[str, Any]) -> Customer:
    """Apply validated changes; the converter's mask table keeps ``currency`` out of them."""
    current = await uow.entities.get(Customer, customer_id, for_update=True)
    return await uow.entities.update(dataclasses.replace(current, **changes))
