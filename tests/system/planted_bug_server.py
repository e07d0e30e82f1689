"""``billing serve`` with one planted bug, for tests/system/test_log_redaction.py.

Creating a customer named "planted-bug" raises an exception whose message holds the customer's
personal data, from a frame whose locals hold the caller's bearer token, after a third-party
library (standard logging) has logged the email address: the worst an unexpected error can do.
Everything else is the real server.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from billing import cli
from billing.request_context import current_request
from rating.usecases import customers

_create_customer = customers.create_customer


async def create_customer(uow: Any, customer: Any) -> Any:
    if customer.name != "planted-bug":
        return await _create_customer(uow, customer)
    request = current_request()
    token = dict(request.metadata).get("authorization") if request else None  # a local with a secret
    logging.getLogger("some.library").warning("library saw %s (%s)", customer.email, token)
    raise RuntimeError(f"planted bug: {customer.email} {customer.billing_address} {customer.tax_ids} {token}")


customers.create_customer = create_customer

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
