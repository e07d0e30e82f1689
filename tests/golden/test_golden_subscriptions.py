"""Golden subscription histories: a JSON scenario in, the hand-checked invoices out.

Each file in subscriptions/ holds a small catalog, a customer, a subscription to create, timed
actions and usage events, and the invoices expected, each line with a ``why`` field holding the
arithmetic a person did to get its amount. The scenario runs through the production history
driver (``billing.domain.simulation``), so a change in period maths, proration, discounts, tax
or the close shows up here as a diff.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing.domain.catalog import (
    AddOn,
    Aggregation,
    Catalog,
    Coupon,
    CouponDuration,
    Interval,
    Meter,
    Plan,
    Price,
    Product,
    Recurring,
    UsageBinding,
)
from billing.domain.invoices import BillingCustomer, InvoiceDraft
from billing.domain.periods import AnchorMode
from billing.domain.pricing import Flat, Graduated, PerUnit, PriceModel, Tier
from billing.domain.proration import ProrationPolicy
from billing.domain.simulation import Action, CancelAt, ChangeAt, History, ScheduleAt, UsageEvent, simulate
from billing.domain.subscriptions import (
    NewSubscription,
    ProrationBehavior,
    SubscriptionChange,
    TrialEndBehavior,
)

SCENARIOS = sorted((Path(__file__).parent / "subscriptions").glob("*.json"))


def _at(text: str) -> datetime:
    instant = datetime.fromisoformat(text)
    assert instant.tzinfo is not None, f"{text} needs an offset"
    return instant


def _model(data: dict[str, Any]) -> PriceModel:
    if "per_unit" in data:
        return PerUnit(Decimal(data["per_unit"]))
    if "flat" in data:
        return Flat(Decimal(data["flat"]))
    tiers = tuple(
        Tier(
            Decimal(t["up_to"]) if t.get("up_to") else None,
            Decimal(t.get("unit", "0")),
            Decimal(t.get("flat", "0")),
        )
        for t in data["graduated"]
    )
    return Graduated(tiers)


def _catalog(data: dict[str, Any]) -> Catalog:
    products = {
        p["id"]: Product(p["id"], p["name"], tax_code=p.get("tax_code", "")) for p in data["products"]
    }
    meters = {
        m["id"]: Meter(
            m["id"],
            m["id"],
            m["id"],
            Aggregation(m["aggregation"]),
            m.get("value_property", ""),
            tuple(m.get("dimensions", ())),
        )
        for m in data.get("meters", [])
    }
    prices = {
        p["id"]: Price(
            p["id"],
            p["product"],
            p["currency"],
            _model(p),
            Recurring(Interval(p.get("interval", "month")), p.get("interval_count", 1)),
            UsageBinding(p["meter"], tuple(sorted(p.get("filters", {}).items()))) if "meter" in p else None,
            nickname=p.get("nickname", ""),
        )
        for p in data["prices"]
    }
    plans = {
        p["id"]: Plan(
            p["id"],
            p["name"],
            p.get("seat_price"),
            tuple(p.get("usage_prices", ())),
            tuple(p.get("included_add_ons", ())),
        )
        for p in data.get("plans", [])
    }
    addons = {a["id"]: AddOn(a["id"], a["name"], a["price"]) for a in data.get("add_ons", [])}
    coupons = {
        c["id"]: Coupon(
            c["id"],
            c["code"],
            c["id"],
            CouponDuration(c["duration"]),
            percent_off=Decimal(c["percent_off"]) if "percent_off" in c else None,
            amount_off=c.get("amount_off"),
            currency=c.get("currency"),
            duration_in_months=c.get("months"),
            applies_to_products=tuple(c.get("products", ())),
        )
        for c in data.get("coupons", [])
    }
    return Catalog(1, products, meters, prices, plans, addons, coupons)


def _change(data: dict[str, Any]) -> SubscriptionChange:
    return SubscriptionChange(
        plan_id=data.get("plan"),
        seats=Decimal(data["seats"]) if "seats" in data else None,
        add_ons_added=tuple(data.get("add_ons_added", ())),
        add_ons_removed=tuple(data.get("add_ons_removed", ())),
        coupon_codes=tuple(data.get("coupons", ())),
        proration_behavior=ProrationBehavior(data.get("behavior", "create_prorations")),
    )


def _action(data: dict[str, Any]) -> Action:
    at = _at(data["at"])
    if "change" in data:
        return ChangeAt(at, _change(data["change"]))
    if "schedule" in data:
        return ScheduleAt(at, _change(data["schedule"]))
    behavior = ProrationBehavior(data.get("behavior", "create_prorations"))
    return CancelAt(at, data["cancel"] == "at_period_end", behavior)


def _history(scenario: dict[str, Any]) -> History:
    sub, customer = scenario["subscription"], scenario["customer"]
    new = NewSubscription(
        id="sub_1",
        customer_id="cus_1",
        currency=sub["currency"],
        time_zone=customer["time_zone"],
        plan_id=sub.get("plan"),
        seats=Decimal(sub.get("seats", "1")),
        add_on_ids=tuple(sub.get("add_ons", ())),
        coupon_codes=tuple(sub.get("coupons", ())),
        start=_at(sub["start"]) if "start" in sub else None,
        trial_end=_at(sub["trial_end"]) if "trial_end" in sub else None,
        trial_end_behavior=TrialEndBehavior(sub.get("trial_end_behavior", "create_invoice")),
        anchor_mode=AnchorMode(sub.get("anchor_mode", "anniversary")),
        proration_policy=ProrationPolicy(sub.get("proration", "per_second")),
    )
    usage = tuple(
        UsageEvent(
            u["meter"],
            _at(u["at"]),
            Decimal(u["value"]) if "value" in u else None,
            tuple(sorted(u.get("properties", {}).items())),
            _at(u["received_at"]) if "received_at" in u else None,
        )
        for u in scenario.get("usage", [])
    )
    return History(
        catalog=_catalog(scenario["catalog"]),
        subscription=new,
        created_at=_at(sub["created_at"]),
        customer=BillingCustomer(customer["country"], customer.get("has_payment_method", True)),
        until=_at(scenario["until"]),
        actions=tuple(_action(a) for a in scenario.get("actions", [])),
        usage=usage,
        credit_balance=scenario.get("credit_balance", 0),
    )


def _invoice_json(draft: InvoiceDraft) -> dict[str, Any]:
    return {
        "issued_at": draft.issued_at.isoformat(),
        "boundary": draft.boundary_index,
        "lines": [
            {
                "kind": line.kind.value,
                "item": line.item_key,
                "period": [line.period.start.isoformat(), line.period.end.isoformat()],
                "quantity": str(line.quantity),
                "amount": line.amount,
                "discount": line.discount,
                "tax": line.tax,
            }
            for line in draft.lines
        ],
        "subtotal": draft.subtotal,
        "discount": draft.discount,
        "tax": draft.tax,
        "total": draft.total,
        "credit_applied": draft.credit_applied,
        "amount_due": draft.amount_due,
    }


def _without_why(expected: Any) -> Any:
    if isinstance(expected, dict):
        return {key: _without_why(value) for key, value in expected.items() if key != "why"}
    if isinstance(expected, list):
        return [_without_why(value) for value in expected]
    return expected


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_history_bills_the_hand_checked_invoices(path: Path) -> None:
    scenario = json.loads(path.read_text())
    result = simulate(_history(scenario))
    actual = [_invoice_json(draft) for draft in result.invoices]
    assert actual == _without_why(scenario["expected"])
    assert result.subscription.status.value == scenario["final_status"]


def test_every_expected_line_says_why() -> None:
    for path in SCENARIOS:
        for invoice in json.loads(path.read_text())["expected"]:
            for line in invoice["lines"]:
                assert line.get("why"), f"{path.name}: a line without its arithmetic"


def test_there_are_golden_scenarios() -> None:
    assert len(SCENARIOS) >= 10
