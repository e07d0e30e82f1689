"""Resource names (AIP-122): the wire says "prices/price_123", the domain says "price_123"."""

from __future__ import annotations

import re
from typing import Literal

from billing.domain.errors import InvalidArgument

# The collections of billing.v1; the functions below take any string so that table-driven
# servicers can hold a collection in a plain ``str`` field.
Collection = Literal[
    "products",
    "prices",
    "meters",
    "plans",
    "addons",
    "coupons",
    "customers",
    "subscriptions",
    "invoices",
    "creditNotes",
    "testClocks",
]

# Ids are opaque to clients, but a slash, a space or an empty id is always a client mistake
# (usually a pasted name of another collection or a missing id), so it is refused here.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def parse_name(text: str, collection: str, field: str) -> str:
    """The id in ``"{collection}/{id}"``; raises InvalidArgument on ``field`` otherwise."""
    problem = name_problem(text, collection)
    if problem:
        raise InvalidArgument.single(field, problem)
    return text[len(collection) + 1 :]


def name_problem(text: str, collection: str) -> str | None:
    """Why ``text`` is not a name in ``collection``, or None when it is one."""
    if not text:
        return "is required"
    prefix, _, resource_id = text.partition("/")
    if prefix != collection or _ID.fullmatch(resource_id) is None:
        return f"must be a resource name like '{collection}/ID', got {text[:80]!r}"
    return None


def format_name(collection: str, resource_id: str) -> str:
    return f"{collection}/{resource_id}"


def format_optional_name(collection: str, resource_id: str | None) -> str:
    """The name, or "" when there is no resource (proto3 has no null string)."""
    return f"{collection}/{resource_id}" if resource_id else ""
