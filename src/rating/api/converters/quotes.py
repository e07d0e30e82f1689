"""Quote requests in, quotes out (rating.proto): the hot path of checkout pages.

Units: quantities, seats and usage are exact decimal strings; line amounts, discounts and totals
are int64 minor units of the quote's currency; ``exact_amount`` and tier amounts are decimal
strings of the unrounded minor-unit amount, so a person can recompute each line.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from billing.domain.decimals import format_decimal
from billing.domain.errors import Violations
from billing.domain.pricing import TierLine
from billing.domain.quote import (
    LineKind,
    PlanSelector,
    PriceSelector,
    Quote,
    QuoteItem,
    QuoteLine,
    QuoteRequest,
    UsageEstimate,
)
from billing.v1 import rating_pb2
from rating.api.converters.catalog import INTERVALS_OUT, read_price, read_properties
from rating.api.converters.common import Checker, convert
from rating.api.converters.resources import format_name, format_optional_name

_ONE = Decimal(1)

# The id an inline (unpublished) price carries inside the domain; it never reaches the wire.
INLINE_PRICE_ID = "inline"

_LINE_KINDS: dict[LineKind, rating_pb2.LineKind.ValueType] = {
    LineKind.SEAT: rating_pb2.LINE_KIND_SEAT,
    LineKind.USAGE: rating_pb2.LINE_KIND_USAGE,
    LineKind.ADD_ON: rating_pb2.LINE_KIND_ADD_ON,
    LineKind.ITEM: rating_pb2.LINE_KIND_ITEM,
}


class BilledTo(NamedTuple):
    """Whom a quote is for: exactly one of the two is set, the other is "".

    With a customer, the caller looks up the customer's currency before converting the cart.
    """

    customer_id: str
    currency: str


def billed_to(msg: rating_pb2.QuoteRequest) -> BilledTo:
    """The validated ``billed_to`` oneof; raises InvalidArgument naming every bad field."""
    errors = Violations()
    checker = Checker(errors)
    found = _billed_to(msg, checker)
    if found is None:
        # Report the rest of the request too, so the client fixes everything in one round trip.
        _request(msg, checker, currency="")
        errors.raise_if_any()
        raise AssertionError("billed_to was refused without a violation")
    return found


def _billed_to(msg: rating_pb2.QuoteRequest, c: Checker) -> BilledTo | None:
    before = c.failures
    match msg.WhichOneof("billed_to"):
        case "customer":
            found = BilledTo(c.name(msg.customer, "customers", "customer"), "")
        case "currency":
            found = BilledTo("", c.currency(msg.currency))
        case None:
            c.add("billed_to", "set exactly one of customer and currency")
            return None
    return found if c.failures == before else None


def quote_request_from_proto(msg: rating_pb2.QuoteRequest, currency: str) -> QuoteRequest:
    """The cart to price in ``currency``, which the caller resolved from ``billed_to``."""
    return convert("", lambda c: _request(msg, c, currency))


def _request(msg: rating_pb2.QuoteRequest, c: Checker, currency: str) -> QuoteRequest:
    has_plan = msg.HasField("plan")
    plan = _plan_selector(msg.plan, c.at("plan")) if has_plan else None
    seats = c.decimal(msg.seats, "seats", default=_ONE)
    if msg.seats and not has_plan:
        # Seats price the plan's seat price; without a plan they would be silently ignored.
        c.add("seats", "is only allowed with plan")
    items = [_item(item, c.at(f"items[{index}]")) for index, item in enumerate(msg.items)]
    usage = [_estimate(estimate, c.at(f"usage[{i}]")) for i, estimate in enumerate(msg.usage)]
    return QuoteRequest(
        currency=currency,
        plan=plan,
        seats=seats,
        items=tuple(item for item in items if item is not None),
        add_on_ids=c.names(msg.add_ons, "addons", "add_ons"),
        usage=tuple(usage),
        coupon_codes=coupon_codes(msg.coupon_codes, c),
    )


def _plan_selector(msg: rating_pb2.PlanSelector, c: Checker) -> PlanSelector | None:
    match msg.WhichOneof("selector"):
        case "plan":
            return PlanSelector(plan_id=c.name(msg.plan, "plans", "plan"))
        case "lookup_key":
            return PlanSelector(lookup_key=c.required(msg.lookup_key, "lookup_key"))
        case None:
            c.add("", "set plan or lookup_key")
            return None


def _item(msg: rating_pb2.QuoteItem, c: Checker) -> QuoteItem | None:
    selector = None
    if msg.HasField("price"):
        selector = _price_selector(msg.price, c.at("price"))
    else:
        c.add("price", "is required")
    quantity = c.decimal(msg.quantity, "quantity", default=_ONE)
    return None if selector is None else QuoteItem(selector, quantity)


def _price_selector(msg: rating_pb2.PriceSelector, c: Checker) -> PriceSelector | None:
    match msg.WhichOneof("selector"):
        case "price":
            return PriceSelector(price_id=c.name(msg.price, "prices", "price"))
        case "lookup_key":
            return PriceSelector(lookup_key=c.required(msg.lookup_key, "lookup_key"))
        case "inline":
            # Validated like a price being created; the domain checks its currency matches.
            price = read_price(msg.inline, c.at("inline"), price_id=INLINE_PRICE_ID, product_required=False)
            return None if price is None else PriceSelector(inline=price)
        case None:
            c.add("", "set price, lookup_key or inline")
            return None


def _estimate(msg: rating_pb2.UsageEstimate, c: Checker) -> UsageEstimate:
    return UsageEstimate(
        meter=_meter_reference(msg.meter, c),
        quantity=c.decimal(msg.quantity, "quantity"),
        properties=read_properties(msg.properties, c, "properties"),
        transaction_count=c.non_negative(msg.transaction_count, "transaction_count"),
    )


def _meter_reference(text: str, c: Checker) -> str:
    """A meter id from "meters/{id}", or the event name as sent (the domain accepts both)."""
    if text.startswith("meters/"):
        return c.name(text, "meters", "meter")
    return c.required(text, "meter")


def coupon_codes(codes: Iterable[str], c: Checker) -> tuple[str, ...]:
    seen: list[str] = []
    for index, code in enumerate(codes):
        c.required(code, f"coupon_codes[{index}]")
        if code and code in seen:
            # A coupon applies once; a repeated code is a double click, not a bigger discount.
            c.add(f"coupon_codes[{index}]", f"duplicate coupon code {code[:40]!r}")
        seen.append(code)
    return tuple(seen)


# --- outbound -----------------------------------------------------------------------------


def quote_to_proto(quote: Quote) -> rating_pb2.Quote:
    return quote_response(quote).quote


class LineTemplates:
    """The fixed part of each catalog price's line (kind, description, names, version,
    interval), built once per catalog version instead of field by field in every quote.

    A template serves only the catalog version it was built from: a new version empties the
    store, as the quote cache does. Inline prices are not in the catalog and get none.
    """

    def __init__(self, max_entries: int = 10_000) -> None:
        self._max_entries = max_entries
        self._version = -1
        self._lines: dict[tuple[str, str, str, bool], rating_pb2.QuoteLine] = {}

    def line(self, version: int, line: QuoteLine) -> rating_pb2.QuoteLine:
        if line.inline:
            return _line_template(line)
        if version != self._version or len(self._lines) >= self._max_entries:
            self._lines.clear()
            self._version = version
        key = (line.price.id, line.kind.value, line.description, line.included)
        template = self._lines.get(key)
        if template is None:
            template = self._lines[key] = _line_template(line)
        return template


def quote_response(quote: Quote, templates: LineTemplates | None = None) -> rating_pb2.QuoteResponse:
    """The response, written in place: nested messages passed to constructors are copied, and
    this is the hot path of checkout pages. ``templates`` keeps line templates between calls."""
    templates = templates or LineTemplates()
    response = rating_pb2.QuoteResponse()
    out = response.quote
    out.currency = quote.currency
    subtotal = discount_total = 0
    for line in quote.lines:
        target = out.lines.add()
        target.MergeFrom(templates.line(quote.catalog_version, line))
        subtotal += line.amount
        discount_total += _write_line(target, line)
    out.subtotal = subtotal
    out.discount_total = discount_total
    out.total = subtotal - discount_total
    out.catalog_version = quote.catalog_version
    stamp = quote.quote_time.timestamp()
    out.quote_time.seconds = int(stamp // 1)
    out.quote_time.nanos = quote.quote_time.microsecond * 1000
    return response


def _line_template(line: QuoteLine) -> rating_pb2.QuoteLine:
    """What a line owes to its price and place in the cart alone, not to its quantity."""
    price = line.price
    target = rating_pb2.QuoteLine(kind=_LINE_KINDS[line.kind], description=line.description)
    if not line.inline:
        # An inline price has no name and no published version.
        target.price = format_name("prices", price.id)
        target.product = format_optional_name("products", price.product_id)
        target.price_version = price.version
    elif price.product_id:
        target.product = format_name("products", price.product_id)
    if price.recurring is not None:
        target.recurring.interval = INTERVALS_OUT[price.recurring.interval]
        target.recurring.interval_count = price.recurring.interval_count
    target.included = line.included
    return target


def _write_line(target: rating_pb2.QuoteLine, line: QuoteLine) -> int:
    """The part of a line that depends on the quantity: charge, tiers, discounts (returned)."""
    charge = line.charge
    target.quantity = _text(charge.quantity)
    if charge.unit_amount is not None:
        target.unit_amount = _text(charge.unit_amount)
    for tier in charge.tiers:
        write_tier(target.tiers.add(), tier)
    target.exact_amount = _text(charge.amount)
    target.amount = line.amount
    discount = 0
    for applied in line.discounts:
        target.discounts.add(coupon=format_name("coupons", applied.coupon_id), amount=applied.amount)
        discount += applied.amount
    target.total = line.amount - discount
    return discount


# Equal decimals have the same canonical text ("2.50" and "2.5" are both "2.5"), so a text can
# be remembered by value; tier bounds and unit amounts recur in every quote.
_text = functools.lru_cache(maxsize=4096)(format_decimal)


def write_tier(target: rating_pb2.TierBreakdown, tier: TierLine) -> None:
    target.tier = tier.index
    target.after = _text(tier.after)
    if tier.up_to is not None:
        target.up_to = _text(tier.up_to)
    target.quantity = _text(tier.quantity)
    target.unit_amount = _text(tier.unit_amount)
    target.flat_amount = _text(tier.flat_amount)
    target.amount = _text(tier.amount)
