"""The oracle checked by hand: small histories whose every number is worked out in the comments.

The differential test trusts the oracle; these tests are why. Amounts are minor units (cents).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from tests.oracle.oracle import (
    Change,
    Coupon,
    Cycle,
    Event,
    History,
    Invoice,
    Item,
    Op,
    Price,
    Tier,
    charge,
    invoices,
    largest_remainder,
    round_half_away,
    split,
)

F = Fraction


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


SEAT = Price("seat", "per_unit", amount=F(1000))
ADDON = Price("addon", "flat", amount=F(1500))
CALLS = Price("calls", "per_unit", amount=F(2), meter="calls")


def history(**overrides: object) -> History:
    base: dict[str, object] = {
        "zone": "UTC",
        "country": "US",
        "currency": "USD",
        "interval": "month",
        "interval_count": 1,
        "start": utc(2024, 3, 1),
        "horizon": utc(2024, 4, 1),
        "items": (Item("seat", SEAT, F(3)),),
    }
    base.update(overrides)
    return History(**base)  # type: ignore[arg-type]


def amounts(invoice: Invoice) -> list[tuple[str, int, int, int]]:
    return [(line.kind, line.amount, line.discount, line.tax) for line in invoice.lines]


# -- arithmetic -----------------------------------------------------------------------------


def test_rounding_is_half_away_from_zero() -> None:
    assert [round_half_away(F(n, 2)) for n in (-5, -3, -1, 1, 3, 5)] == [-3, -2, -1, 1, 2, 3]
    assert round_half_away(F(2049, 1000)) == 2
    assert round_half_away(F(-2051, 1000)) == -2


def test_split_by_largest_remainder_ties_to_the_earlier_line() -> None:
    # 1000 over 3000:1500 -> 666.67 + 333.33: floors 666 + 333, the unit left goes to .67.
    assert split(1000, [3000, 1500]) == [667, 333]
    # 5 over 1:1 -> 2.5 each: the tie goes to the first.
    assert split(5, [1, 1]) == [3, 2]
    # Exact shares of a tax over a debit and a credit: 20 % of 1017 and -1004 = 203.4 and -200.8,
    # rounded tax round(2.6) = 3; floors 203 and -201 (sum 2), the unit left to the larger part .4.
    assert largest_remainder(3, [F(2034, 10), F(-2008, 10)]) == [204, -201]
    # A single credit: -2.5 -> tax round(-2.5) = -3 = its floor, nothing left over.
    assert largest_remainder(-3, [F(-5, 2)]) == [-3]


def test_price_models() -> None:
    tiers = (Tier(F(5), F(100), F(50)), Tier(F(10), F(80), F(20)), Tier(None, F(60)))
    graduated = Price("p", "graduated", tiers=tiers)
    volume = Price("p", "volume", tiers=tiers)
    # Graduated 12: 5*100 + 50 + 5*80 + 20 + 2*60 = 500 + 50 + 400 + 20 + 120 = 1090.
    assert charge(graduated, F(12)) == 1090
    # Graduated 0: only the first tier's flat amount.
    assert charge(graduated, F(0)) == 50
    # Graduated exactly 5 (up_to inclusive): 5*100 + 50 = 550, the second tier is not entered.
    assert charge(graduated, F(5)) == 550
    # Volume 12: all units at the last tier: 12*60 = 720; volume 5: 5*100 + 50 = 550; 6: 6*80 + 20.
    assert charge(volume, F(12)) == 720
    assert charge(volume, F(5)) == 550
    assert charge(volume, F(6)) == 500
    package = Price("p", "package", amount=F(700), package_size=F(100), free_units=F(100))
    # 250 units, 100 free: 150 left -> 2 started packages of 100 -> 1400; rounding down -> 1 -> 700.
    assert charge(package, F(250)) == 1400
    assert (
        charge(
            Price(
                "p", "package", amount=F(700), package_size=F(100), free_units=F(100), package_round_up=False
            ),
            F(250),
        )
        == 700
    )
    assert charge(package, F(40)) == 0
    assert charge(Price("p", "per_unit", amount=F("0.125")), F(3)) == F(3, 8)
    assert charge(ADDON, F(7)) == 1500


# -- periods --------------------------------------------------------------------------------


def test_anniversary_on_the_31st_clamps_and_re_expands() -> None:
    cycle = Cycle(history(), utc(2024, 1, 31, 10))
    assert [cycle.anniversary(k) for k in range(4)] == [
        utc(2024, 1, 31, 10),
        utc(2024, 2, 29, 10),  # leap year
        utc(2024, 3, 31, 10),  # back to the 31st: computed from the anchor, not from Feb 29
        utc(2024, 4, 30, 10),
    ]
    yearly = Cycle(history(interval="year"), utc(2024, 2, 29))
    assert [yearly.anniversary(k) for k in range(5)][1:] == [
        utc(2025, 2, 28),
        utc(2026, 2, 28),
        utc(2027, 2, 28),
        utc(2028, 2, 29),
    ]


def test_anniversary_keeps_the_local_time_across_dst() -> None:
    # 09:00 in New York: EST (UTC-5) in February, EDT (UTC-4) from March 10, 2024.
    cycle = Cycle(history(zone="America/New_York"), utc(2024, 2, 1, 14))
    assert cycle.anniversary(1) == utc(2024, 3, 1, 14)
    assert cycle.anniversary(2) == utc(2024, 4, 1, 13)
    weekly = Cycle(history(zone="America/New_York", interval="week", interval_count=2), utc(2024, 3, 1, 14))
    assert weekly.anniversary(1) == utc(2024, 3, 15, 13)


def test_calendar_boundaries_are_local_midnights() -> None:
    # Kathmandu is UTC+05:45: local midnight of March 1 is Feb 29 18:15 UTC.
    cycle = Cycle(history(zone="Asia/Kathmandu", calendar=True), utc(2024, 3, 1))
    assert cycle.calendar_period(utc(2024, 3, 1)) == (utc(2024, 2, 29, 18, 15), utc(2024, 3, 31, 18, 15))
    weekly = Cycle(history(interval="week", calendar=True), utc(2024, 3, 1))
    assert weekly.calendar_period(utc(2024, 3, 1, 12)) == (utc(2024, 2, 26), utc(2024, 3, 4))  # Mondays
    # Lord Howe (UTC+10:30 in winter, +11 in summer): DST ends 2024-04-07 at 02:00 local.
    howe = Cycle(history(zone="Australia/Lord_Howe", interval="day", calendar=True), utc(2024, 4, 6))
    start, end = howe.calendar_period(utc(2024, 4, 6, 14))
    assert (start, end) == (utc(2024, 4, 6, 13), utc(2024, 4, 7, 13, 30))  # a 24.5-hour day


# -- invoices -------------------------------------------------------------------------------


def test_monthly_fees_in_advance_from_the_31st() -> None:
    result = invoices(history(start=utc(2024, 1, 31, 10), horizon=utc(2024, 4, 30, 10)))
    assert [(i.at, i.kind, i.total) for i in result] == [
        (utc(2024, 1, 31, 10), "first", 3000),
        (utc(2024, 2, 29, 10), "closing", 3000),
        (utc(2024, 3, 31, 10), "closing", 3000),
        (utc(2024, 4, 30, 10), "closing", 3000),
    ]
    fee = result[1].lines[0]
    assert (fee.start, fee.end, fee.quantity) == (utc(2024, 2, 29, 10), utc(2024, 3, 31, 10), 3)


def test_seat_increase_prorated_per_second_goes_on_the_next_invoice() -> None:
    # March 2024 has 31 days; from March 11 00:00 to April 1 are 21 days: factor 21/31.
    # Credit: -round(3 * 1000 * 21/31) = -round(2032.26) = -2032.
    # Debit:   round(5 * 1000 * 21/31) =  round(3387.10) =  3387.
    # April 1: fee 5 * 1000 = 5000, then the pending lines: 5000 - 2032 + 3387 = 6355.
    change = Change(utc(2024, 3, 11), "update", (Op("set_quantity", "seat", F(5)),))
    first, april = invoices(history(changes=(change,)))
    assert first.total == 3000
    assert amounts(april) == [("fee", 5000, 0, 0), ("credit", -2032, 0, 0), ("debit", 3387, 0, 0)]
    assert april.total == 6355


def test_two_changes_in_one_period_credit_what_each_billed() -> None:
    # 3 -> 5 seats on March 11 (21/31 left), then 5 -> 2 on March 21 (11/31 left).
    # March 11: credit -round(3000 * 21/31) = -2032, debit round(5000 * 21/31) = 3387,
    #   which covers [Mar 11, Apr 1).
    # March 21: the March 1 fee was credited already; the debit of 3387 covers [Mar 11, Apr 1) and is
    #   credited over [Mar 21, Apr 1) of it: -round(3387 * 11/21) = -round(1774.14) = -1774;
    #   debit round(2000 * 11/31) = round(709.68) = 710.
    changes = (
        Change(utc(2024, 3, 11), "update", (Op("set_quantity", "seat", F(5)),)),
        Change(utc(2024, 3, 21), "update", (Op("set_quantity", "seat", F(2)),)),
    )
    april = invoices(history(changes=changes))[1]
    assert amounts(april) == [
        ("fee", 2000, 0, 0),
        ("credit", -2032, 0, 0),
        ("debit", 3387, 0, 0),
        ("credit", -1774, 0, 0),
        ("debit", 710, 0, 0),
    ]
    assert april.total == 2000 - 2032 + 3387 - 1774 + 710


def test_per_day_proration_counts_local_dates() -> None:
    # New York, monthly from March 1 00:00 EST (05:00 UTC); April 1 00:00 is EDT (04:00 UTC).
    # Change on March 10 at 08:00 EDT (12:00 UTC): local dates Mar 10 -> Apr 1 are 22 of 31.
    # Credit -round(3100 * 22/31) = -2200; debit round(6200 * 22/31) = 4400.
    seat = Price("seat", "per_unit", amount=F(3100))
    change = Change(utc(2024, 3, 10, 12), "update", (Op("set_quantity", "seat", F(2)),))
    result = invoices(
        history(
            zone="America/New_York",
            per_day=True,
            start=utc(2024, 3, 1, 5),
            horizon=utc(2024, 4, 1, 4),
            items=(Item("seat", seat, F(1)),),
            changes=(change,),
        )
    )
    assert [i.at for i in result] == [utc(2024, 3, 1, 5), utc(2024, 4, 1, 4)]
    assert amounts(result[1]) == [("fee", 6200, 0, 0), ("credit", -2200, 0, 0), ("debit", 4400, 0, 0)]


def test_calendar_cycle_prorates_the_partial_first_period() -> None:
    # Calendar monthly from Feb 10, 2024: the first period [Feb 10, Mar 1) is 20 of February's 29 days.
    # round(2900 * 20/29) = 2000. March 1 bills the full 2900.
    seat = Price("seat", "per_unit", amount=F(2900))
    result = invoices(
        history(
            calendar=True,
            start=utc(2024, 2, 10),
            horizon=utc(2024, 3, 1),
            items=(Item("seat", seat, F(1)),),
        )
    )
    assert [(i.at, i.total) for i in result] == [(utc(2024, 2, 10), 2000), (utc(2024, 3, 1), 2900)]
    assert (result[0].lines[0].start, result[0].lines[0].end) == (utc(2024, 2, 10), utc(2024, 3, 1))


def test_a_change_in_the_partial_first_period_prorates_over_the_calendar_period() -> None:
    # As above; on Feb 20 one seat becomes two. The fee billed 2000 for [Feb 10, Mar 1).
    # Credit: -round(2000 * 10/20) = -1000 (what was billed, over the 10 of its 20 days left).
    # Debit: round(5800 * 10/29) = 2000 (the whole calendar month is the base, as the fee's was).
    seat = Price("seat", "per_unit", amount=F(2900))
    change = Change(utc(2024, 2, 20), "update", (Op("set_quantity", "seat", F(2)),))
    result = invoices(
        history(
            calendar=True,
            start=utc(2024, 2, 10),
            horizon=utc(2024, 3, 1),
            items=(Item("seat", seat, F(1)),),
            changes=(change,),
        )
    )
    assert amounts(result[1]) == [("fee", 5800, 0, 0), ("credit", -1000, 0, 0), ("debit", 2000, 0, 0)]


def test_trial_bills_nothing_then_converts() -> None:
    # Trial Mar 1 -> Mar 15: the anchor becomes Mar 15; usage in the trial is never billed.
    events = (Event("calls", utc(2024, 3, 5), F(100)), Event("calls", utc(2024, 3, 20), F(7)))
    base = {
        "trial_end": utc(2024, 3, 15),
        "horizon": utc(2024, 4, 15),
        "items": (Item("seat", SEAT, F(3)), Item("calls", CALLS, F(0))),
        "events": events,
    }
    result = invoices(history(**base))
    assert [(i.at, amounts(i)) for i in result] == [
        (utc(2024, 3, 15), [("fee", 3000, 0, 0)]),
        (utc(2024, 4, 15), [("usage", 14, 0, 0), ("fee", 3000, 0, 0)]),  # 7 calls * 2
    ]
    assert invoices(history(**base, cancel_trial_without_payment_method=True, has_payment_method=False)) == []


def test_coupons_percent_repeating_and_amount_split_with_tax() -> None:
    # 25 % for 2 months from Jan 15: the Jan 15 and Feb 15 invoices, not Mar 15.
    # 10.00 off once: split 3000:1500 -> 667 + 333 (after the 25 %: 2250:1125 -> 666.67 + 333.33).
    # Jan 15: seat 3000 - 750 = 2250, add-on 1500 - 375 = 1125; 1000 off split 667/333 ->
    #   discounts 1417 and 708, nets 1583 and 792; 20 % tax on 2375 = 475, split 316.6/158.4 -> 317/158.
    percent = Coupon("Q", "repeating", percent_off=F(25), months=2)
    amount = Coupon("TEN", "once", amount_off=1000)
    result = invoices(
        history(
            country="GB",
            start=utc(2024, 1, 15),
            horizon=utc(2024, 3, 15),
            items=(Item("seat", SEAT, F(3)), Item("addon", ADDON)),
            coupons=(percent, amount),
            tax_rates={("GB", ""): ("GB-standard", F(20))},
        )
    )
    assert amounts(result[0]) == [("fee", 3000, 1417, 317), ("fee", 1500, 708, 158)]
    assert (result[0].subtotal, result[0].discount, result[0].tax, result[0].total) == (4500, 2125, 475, 2850)
    # Feb 15: 25 % only: 750 and 375 off, nets 2250 + 1125 = 3375, tax 675 split 450/225.
    assert amounts(result[1]) == [("fee", 3000, 750, 450), ("fee", 1500, 375, 225)]
    # Mar 15: no coupon left: 4500 + 900 tax.
    assert result[2].total == 5400


def test_tax_rate_by_product_code_with_a_country_default() -> None:
    # The seat's code "saas" is 10 % in DE; the add-on has no code of its own: DE's default 19 %.
    result = invoices(
        history(
            country="DE",
            currency="EUR",
            horizon=utc(2024, 3, 1),
            items=(Item("seat", SEAT, F(3)), Item("addon", ADDON)),
            tax_codes={"seat": "saas"},
            tax_rates={("DE", "saas"): ("DE-reduced", F(10)), ("DE", ""): ("DE-standard", F(19))},
        )
    )
    assert amounts(result[0]) == [("fee", 3000, 0, 300), ("fee", 1500, 0, 285)]


def test_hundred_percent_off_then_seat_increase_credits_what_was_paid() -> None:
    # Forever 100 % off: the March 1 fee is 3000 - 3000 = 0. Seats 3 -> 5 on March 11:
    # the credit is from what was paid (0), the debit round(5000 * 21/31) = 3387 is 100 % off too.
    free = Coupon("FREE", "forever", percent_off=F(100))
    change = Change(utc(2024, 3, 11), "update", (Op("set_quantity", "seat", F(5)),))
    april = invoices(history(coupons=(free,), changes=(change,)))[1]
    assert amounts(april) == [("fee", 5000, 5000, 0), ("credit", 0, 0, 0), ("debit", 3387, 3387, 0)]
    assert april.total == 0


def test_credit_for_unused_time_comes_from_the_discounted_amount() -> None:
    # 50 % off once: March's fee 3000 is billed 1500. Upgrading the seat price to 2000 on March 11
    # credits -round(1500 * 21/31) = -round(1016.13) = -1016 and debits round(6000 * 21/31) = 4065
    # (round(4064.52)); the once coupon was used up and never touches a proration debit.
    half = Coupon("HALF", "once", percent_off=F(50))
    upgrade = Change(
        utc(2024, 3, 11),
        "update",
        (Op("set_price", "seat", price=Price("seat", "per_unit", amount=F(2000))),),
    )
    april = invoices(history(coupons=(half,), changes=(upgrade,)))[1]
    assert amounts(april) == [("fee", 6000, 0, 0), ("credit", -1016, 0, 0), ("debit", 4065, 0, 0)]


def test_always_invoice_bills_the_change_at_once_and_the_credit_balance_pays_first() -> None:
    # Add-on (1500 flat) added on March 11 with always_invoice: round(1500 * 21/31) = round(1016.13) = 1016,
    # invoiced at once. Balance 4000: the first invoice (3000) takes 3000, the change takes the last 1000.
    change = Change(
        utc(2024, 3, 11), "update", (Op("add", "addon", price=ADDON),), behaviour="always_invoice"
    )
    first, now, april = invoices(history(changes=(change,), credit_balance=4000))
    assert (first.credit_applied, first.amount_due, first.balance_after) == (3000, 0, 1000)
    assert (now.at, now.kind, amounts(now)) == (utc(2024, 3, 11), "change", [("debit", 1016, 0, 0)])
    assert (now.credit_applied, now.amount_due, now.balance_after) == (1000, 16, 0)
    assert april.total == 4500


def test_a_negative_total_adds_to_the_credit_balance() -> None:
    # Seats 3 -> 1 on March 11 with always_invoice: credit -2032, debit round(1000 * 21/31) = 677.
    # Total -1355: nothing is due and 1355 goes to the balance.
    change = Change(
        utc(2024, 3, 11), "update", (Op("set_quantity", "seat", F(1)),), behaviour="always_invoice"
    )
    now = invoices(history(changes=(change,)))[1]
    assert (now.total, now.amount_due, now.balance_after) == (-1355, 0, 1355)


def test_cancel_now_bills_usage_to_the_cancellation_and_credits_the_rest() -> None:
    # Usage 2 per call: 10 calls before the cancellation on March 11 (20), 5 after (never billed).
    # Credit -round(3000 * 21/31) = -2032 on the final invoice at March 11.
    events = (Event("calls", utc(2024, 3, 2), F(10)), Event("calls", utc(2024, 3, 12), F(5)))
    result = invoices(
        history(
            items=(Item("seat", SEAT, F(3)), Item("calls", CALLS, F(0))),
            events=events,
            changes=(Change(utc(2024, 3, 11), "cancel_now"),),
        )
    )
    assert [(i.at, i.kind, amounts(i)) for i in result] == [
        (utc(2024, 3, 1), "first", [("fee", 3000, 0, 0)]),
        (utc(2024, 3, 11), "final", [("usage", 20, 0, 0), ("credit", -2032, 0, 0)]),
    ]


def test_cancel_at_period_end_and_scheduled_downgrade() -> None:
    # A downgrade to 1 seat scheduled on March 11 applies on April 1 without proration;
    # a cancel at period end on April 20 ends the subscription on May 1 with a fee-less final invoice.
    changes = (
        Change(utc(2024, 3, 11), "update", (Op("set_quantity", "seat", F(1)),), behaviour="period_end"),
        Change(utc(2024, 4, 20), "cancel_at_period_end"),
    )
    items = (Item("seat", SEAT, F(3)), Item("calls", CALLS, F(0)))
    events = (Event("calls", utc(2024, 4, 25), F(4)),)
    result = invoices(history(items=items, events=events, changes=changes, horizon=utc(2024, 9, 1)))
    assert [(i.at, i.kind, amounts(i)) for i in result] == [
        (utc(2024, 3, 1), "first", [("fee", 3000, 0, 0)]),
        (utc(2024, 4, 1), "closing", [("usage", 0, 0, 0), ("fee", 1000, 0, 0)]),
        (utc(2024, 5, 1), "final", [("usage", 8, 0, 0)]),
    ]


def test_usage_price_change_splits_the_window_and_tiers_apply_per_window() -> None:
    # Graduated usage: first 10 calls free, then 3 each. The price becomes per-unit 1 on March 16.
    # [Mar 1, Mar 16): 14 calls -> 4 * 3 = 12. [Mar 16, Apr 1): 14 calls -> 14 * 1 = 14.
    # The tiers restart in the second window only if it keeps the graduated price; it does not here.
    graduated = Price("calls", "graduated", tiers=(Tier(F(10)), Tier(None, F(3))), meter="calls")
    events = tuple(Event("calls", utc(2024, 3, day), F(2)) for day in range(2, 30, 2))
    change = Change(
        utc(2024, 3, 16),
        "update",
        (Op("set_price", "calls", price=Price("calls", "per_unit", amount=F(1), meter="calls")),),
    )
    april = invoices(
        history(
            items=(Item("seat", SEAT, F(3)), Item("calls", graduated, F(0))), events=events, changes=(change,)
        )
    )[1]
    usage = [
        (line.start, line.end, line.quantity, line.amount) for line in april.lines if line.kind == "usage"
    ]
    assert usage == [(utc(2024, 3, 1), utc(2024, 3, 16), 14, 12), (utc(2024, 3, 16), utc(2024, 4, 1), 14, 14)]
    # No proration line for a usage price.
    assert [line.kind for line in april.lines] == ["usage", "usage", "fee"]


def test_import_bills_neither_past_periods_nor_the_running_one_but_its_usage() -> None:
    # Started Jan 1, created Feb 10: January and February's fees were paid elsewhere. March 1 bills
    # February's usage (3 calls * 2 = 6, including the one before creation) and March's fee.
    events = (
        Event("calls", utc(2024, 1, 20), F(9)),
        Event("calls", utc(2024, 2, 5)),
        Event("calls", utc(2024, 2, 20), F(2)),
    )
    result = invoices(
        history(
            start=utc(2024, 1, 1),
            created_at=utc(2024, 2, 10),
            horizon=utc(2024, 3, 1),
            items=(Item("seat", SEAT, F(3)), Item("calls", CALLS, F(0))),
            events=events,
        )
    )
    assert [(i.at, amounts(i)) for i in result] == [
        (utc(2024, 3, 1), [("usage", 6, 0, 0), ("fee", 3000, 0, 0)])
    ]


def test_filters_and_aggregations() -> None:
    # Only resolved conversations, counted: 2 of 3 events -> 2 * 50 = 100.
    resolved = Price(
        "res", "per_unit", amount=F(50), meter="conv", aggregation="count", filters=(("outcome", "resolved"),)
    )
    peak = Price("peak", "per_unit", amount=F(10), meter="conv", aggregation="max")
    events = (
        Event("conv", utc(2024, 3, 2), F(4), (("outcome", "resolved"),)),
        Event("conv", utc(2024, 3, 3), F(9), (("outcome", "open"),)),
        Event("conv", utc(2024, 3, 4), F(1), (("outcome", "resolved"), ("channel", "web"))),
    )
    april = invoices(
        history(items=(Item("seat", SEAT, F(3)), Item("res", resolved), Item("peak", peak)), events=events)
    )[1]
    # Usage lines by item key: "peak" (max 9 * 10 = 90), then "res".
    assert amounts(april)[:2] == [("usage", 90, 0, 0), ("usage", 100, 0, 0)]


@pytest.mark.parametrize(
    "zone", ["Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kathmandu", "Australia/Lord_Howe"]
)
def test_periods_tile_time(zone: str) -> None:
    result = invoices(
        history(zone=zone, interval="day", start=utc(2024, 3, 28, 7, 13, 5), horizon=utc(2024, 4, 12))
    )
    fees = [line for invoice in result for line in invoice.lines if line.kind == "fee"]
    assert all(a.end == b.start for a, b in itertools.pairwise(fees))
    local = [line.start.astimezone(ZoneInfo(zone)).time() for line in fees]
    assert len(set(local)) == 1  # the anchor's wall-clock time every day, across DST


def test_late_usage_is_adjusted_on_the_next_close_until_the_horizon() -> None:
    # March's window [Mar 1, Apr 1). Calls at 2 each: 5 on time; 1 received at 00:59 on April 1,
    # within the hour before the April 1 close is finalized; 3 received Apr 5; 4 received June 10.
    # April 1 bills 6 * 2 = 12. May 1 rates March again (ended after Apr 1 - 35 days): 9 * 2 = 18,
    # adjustment +6. June 1 rates it again (ended after May 1 - 35 days = Mar 27): still 18 by
    # June 1 01:00, no line. July 1 does not (Apr 1 is before Jun 1 - 35 days = Apr 27): the
    # June 10 event is never billed.
    events = (
        Event("calls", utc(2024, 3, 10), F(5)),
        Event("calls", utc(2024, 3, 20), F(3), received_at=utc(2024, 4, 5)),
        Event("calls", utc(2024, 3, 21), F(4), received_at=utc(2024, 6, 10)),
        Event("calls", utc(2024, 3, 31, 23), F(1), received_at=utc(2024, 4, 1, 0, 59)),
    )
    items = (Item("seat", SEAT, F(3)), Item("calls", CALLS, F(0)))
    result = invoices(history(items=items, events=events, horizon=utc(2024, 7, 1)))
    usage = [
        [(line.kind, line.start.month, line.amount) for line in i.lines if line.kind != "fee"] for i in result
    ]
    assert usage == [
        [],
        [("usage", 3, 12)],
        [("usage", 4, 0), ("adjustment", 3, 6)],
        [("usage", 5, 0)],
        [("usage", 6, 0)],
    ]


def test_a_change_credits_first_then_debits_in_item_order() -> None:
    # On March 11 (21/31 left) a plan change to 2000 per seat and an add-on removed, in one change:
    # credits seat -round(3000 * 21/31) = -2032 and add-on -round(1500 * 21/31) = -1016, then the
    # seat's debit round(6000 * 21/31) = 4065.
    change = Change(
        utc(2024, 3, 11),
        "update",
        (Op("remove", "addon"), Op("set_price", "seat", price=Price("seat", "per_unit", amount=F(2000)))),
    )
    april = invoices(history(items=(Item("seat", SEAT, F(3)), Item("addon", ADDON)), changes=(change,)))[1]
    assert [(line.kind, line.item, line.amount) for line in april.lines] == [
        ("fee", "seat", 6000),
        ("credit", "seat", -2032),
        ("credit", "addon", -1016),
        ("debit", "seat", 4065),
    ]
