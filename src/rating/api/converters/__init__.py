"""Protobuf messages <-> domain objects, one small module per family (MLServer's codecs).

Inbound (``*_from_proto``, ``*_changes``) validates everything a client can get wrong and raises
one ``InvalidArgument`` naming every bad field by its path in the request; outbound
(``*_to_proto``) never fails for a valid domain object. No grpc here: servicers convert the
request, await the use case and convert the answer.
"""

from rating.api.converters.catalog import (
    ADDON_MASK,
    COUPON_MASK,
    METER_MASK,
    PLAN_MASK,
    PRICE_MASK,
    PRODUCT_MASK,
    addon_from_proto,
    addon_to_proto,
    coupon_changes,
    coupon_from_proto,
    coupon_to_proto,
    meter_changes,
    meter_from_proto,
    meter_to_proto,
    plan_changes,
    plan_from_proto,
    plan_to_proto,
    price_changes,
    price_from_proto,
    price_to_proto,
    product_changes,
    product_from_proto,
    product_to_proto,
)
from rating.api.converters.common import (
    changes_from_mask,
    datetime_from_timestamp,
    timestamp_from_datetime,
)
from rating.api.converters.customers import (
    CUSTOMER_MASK,
    customer_changes,
    customer_from_proto,
    customer_to_proto,
)
from rating.api.converters.quotes import (
    INLINE_PRICE_ID,
    BilledTo,
    billed_to,
    quote_request_from_proto,
    quote_to_proto,
)
from rating.api.converters.resources import format_name, parse_name

__all__ = [
    "ADDON_MASK",
    "COUPON_MASK",
    "CUSTOMER_MASK",
    "INLINE_PRICE_ID",
    "METER_MASK",
    "PLAN_MASK",
    "PRICE_MASK",
    "PRODUCT_MASK",
    "BilledTo",
    "addon_from_proto",
    "addon_to_proto",
    "billed_to",
    "changes_from_mask",
    "coupon_changes",
    "coupon_from_proto",
    "coupon_to_proto",
    "customer_changes",
    "customer_from_proto",
    "customer_to_proto",
    "datetime_from_timestamp",
    "format_name",
    "meter_changes",
    "meter_from_proto",
    "meter_to_proto",
    "parse_name",
    "plan_changes",
    "plan_from_proto",
    "plan_to_proto",
    "price_changes",
    "price_from_proto",
    "price_to_proto",
    "product_changes",
    "product_from_proto",
    "product_to_proto",
    "quote_request_from_proto",
    "quote_to_proto",
    "timestamp_from_datetime",
]
