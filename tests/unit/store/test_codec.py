"""The JSON codec of domain values: every value comes back equal, and no number passes a float."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest

from billing.domain.catalog import Interval
from billing.domain.invoices import InvoiceLine, InvoiceLineKind, LineDiscount, UsageWindow
from billing.domain.periods import Period
from billing.domain.pricing import Graduated, PerUnit, PriceModel, Tier, TierLine
from billing.domain.tax import TaxRate
from billing.store.codec import from_json, to_json


@dataclass(frozen=True)
class Sample:
    amount: Decimal
    share: Fraction
    at: datetime
    interval: Interval
    model: PriceModel
    optional: int | None = None
    pairs: Sequence[tuple[str, str]] = ()
    totals: Mapping[str, Decimal] = field(default_factory=dict)
    wait: timedelta = timedelta(seconds=3)


def test_a_value_of_every_kind_comes_back_equal_and_numbers_are_strings() -> None:
    sample = Sample(
        Decimal("0.000000000001"), Fraction(1, 3), datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC),
        Interval.MONTH,
        Graduated((Tier(Decimal(10), Decimal("1.5")), Tier(None, Decimal("0.25")))), None,
        (("channel", "sms"),), {"a": Decimal("12.50")},
    )  # fmt: skip
    text = to_json(sample)
    assert from_json(Sample, text) == sample
    assert '"amount":"0.000000000001"' in text
    assert '"share":"1/3"' in text
    assert not any(isinstance(v, float) for v in json.loads(text).values())


def test_an_invoice_line_with_tiers_discounts_tax_and_window_round_trips() -> None:
    period = Period(datetime(2025, 1, 31, tzinfo=UTC), datetime(2025, 2, 28, tzinfo=UTC))
    line = InvoiceLine(
        kind=InvoiceLineKind.USAGE, description="Email", item_key="usage:price_1", price_id="price_1",
        product_id="prod_1", quantity=Decimal(1200), unit_amount=None, period=period, amount=100,
        unrounded_amount=Fraction(201, 2),
        tiers=(TierLine(0, Decimal(0), Decimal(1000), Decimal(1000), Decimal(0), Decimal(0), Decimal(0)),),
        proration_factor=Fraction(27, 28), discounts=(LineDiscount("coupon_1", 20),), tax=15,
        tax_rate=TaxRate("DE-standard", Decimal(19)), window=UsageWindow("cus_1", "mtr_1", (("a", "b"),),
        period.start, period.end),
    )  # fmt: skip
    assert from_json(InvoiceLine, to_json(line)) == line


def test_a_model_stored_as_the_catalog_stores_it() -> None:
    @dataclass(frozen=True)
    class Holder:
        model: PriceModel

    holder = Holder(PerUnit(Decimal("2900")))
    assert json.loads(to_json(holder))["model"] == {
        "$type": "PriceModel",
        "kind": "per_unit",
        "unit_amount": "2900",
    }
    assert from_json(Holder, to_json(holder)) == holder


def test_naive_datetimes_and_floats_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_json(datetime(2025, 1, 1))
    with pytest.raises(TypeError, match="float"):
        to_json(1.5)
