"""CustomerService."""

from __future__ import annotations

from typing import Any

from billing.domain.customer import Customer
from billing.v1 import customer_pb2 as pb
from rating.api.converters import customers as convert
from rating.api.converters.resources import parse_name
from rating.api.errors import translate_errors
from rating.api.pagination import next_token, page_of
from rating.api.servicers._support import Dependencies, mutate, read
from rating.usecases import customers
from rating.usecases.billing_ports import BillingUnitOfWork

Context = Any


class CustomerServicer:
    def __init__(self, deps: Dependencies) -> None:
        self.deps = deps

    @translate_errors
    async def CreateCustomer(
        self, request: pb.CreateCustomerRequest, context: Context
    ) -> pb.CreateCustomerResponse:
        customer = convert.customer_from_proto(request.customer, "customer")

        async def build(uow: BillingUnitOfWork) -> pb.CreateCustomerResponse:
            created = await customers.create_customer(uow, customer)
            return pb.CreateCustomerResponse(customer=convert.customer_to_proto(created))

        return await mutate(self.deps, "CreateCustomer", request, pb.CreateCustomerResponse, build)

    @translate_errors
    async def GetCustomer(self, request: pb.GetCustomerRequest, context: Context) -> pb.GetCustomerResponse:
        customer_id = parse_name(request.name, "customers", "name")

        async def query(uow: BillingUnitOfWork) -> pb.GetCustomerResponse:
            customer = await uow.entities.get(Customer, customer_id)
            return pb.GetCustomerResponse(customer=convert.customer_to_proto(customer))

        return await read(self.deps, query)

    @translate_errors
    async def ListCustomers(
        self, request: pb.ListCustomersRequest, context: Context
    ) -> pb.ListCustomersResponse:
        after, size = page_of(request)
        filters = {
            column: value
            for column, value in (
                ("crm_account_id", request.crm_account_id),
                ("accounting_id", request.accounting_id),
            )
            if value
        }

        async def query(uow: BillingUnitOfWork) -> pb.ListCustomersResponse:
            found = await uow.entities.list(Customer, after=after, limit=size + 1, where=filters)
            return pb.ListCustomersResponse(
                customers=[convert.customer_to_proto(c) for c in found[:size]],
                next_page_token=next_token(found, size),
            )

        return await read(self.deps, query)

    @translate_errors
    async def UpdateCustomer(
        self, request: pb.UpdateCustomerRequest, context: Context
    ) -> pb.UpdateCustomerResponse:
        customer_id = parse_name(request.customer.name, "customers", "customer.name")
        changes = convert.customer_changes(request.customer, request.update_mask.paths)

        async def build(uow: BillingUnitOfWork) -> pb.UpdateCustomerResponse:
            updated = await customers.update_customer(uow, customer_id, changes)
            return pb.UpdateCustomerResponse(customer=convert.customer_to_proto(updated))

        return await mutate(self.deps, "UpdateCustomer", request, pb.UpdateCustomerResponse, build)
