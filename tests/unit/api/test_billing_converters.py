"""Subscription and invoice converters: round trips and what they refuse."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.domain.errors import InvalidArgument
from billing.domain.invoice_records import Payment, PaymentOutcome
from billing.domain.subscriptions import ProrationBehavior, SubscriptionChange
from billing.v1 import invoice_pb2, subscription_pb2
from rating.api.converters import invoices, subscriptions
from rating.api.converters.common import timestamp_from_datetime

AT = datetime(2030, 1, 16, tzinfo=UTC)
_BEHAVIORS_OUT = {
    ProrationBehavior.CREATE_PRORATIONS: subscription_pb2.PRORATION_BEHAVIOR_CREATE_PRORATIONS,
    ProrationBehavior.ALWAYS_INVOICE: subscription_pb2.PRORATION_BEHAVIOR_ALWAYS_INVOICE,
    ProrationBehavior.NONE: subscription_pb2.PRORATION_BEHAVIOR_NONE,
}
ids = st.from_regex(r"[a-z]{2,5}_[0-9a-f]{4,12}", fullmatch=True)


@given(
    plan=st.none() | ids,
    seats=st.none() | st.decimals(min_value=0, max_value=10**6, places=2),
    added=st.lists(ids, max_size=3, unique=True),
    codes=st.lists(st.from_regex(r"[A-Z0-9]{3,10}", fullmatch=True), max_size=2, unique=True),
    behavior=st.sampled_from(list(ProrationBehavior)),
)
def test_a_change_survives_the_wire(
    plan: str | None, seats: Decimal | None, added: list[str], codes: list[str], behavior: ProrationBehavior
) -> None:
    change = SubscriptionChange(
        plan_id=plan,
        seats=seats,
        add_ons_added=tuple(added),
        coupon_codes=tuple(codes),
        proration_behavior=behavior,
        proration_date=AT,
    )
    if not (plan or seats is not None or added or codes):
        return  # an empty change is refused, tested below
    wire = subscriptions.change_to_proto(change)
    assert subscriptions.change_from_proto(wire, _BEHAVIORS_OUT[behavior], AT) == change


def test_an_empty_change_and_an_add_on_both_added_and_removed_are_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        subscriptions.change_from_proto(subscription_pb2.SubscriptionChange(), 0, None)
    assert [v.field for v in caught.value.violations] == ["change"]
    both = subscription_pb2.SubscriptionChange(add_add_ons=["addons/a1"], remove_add_ons=["addons/a1"])
    with pytest.raises(InvalidArgument) as caught:
        subscriptions.change_from_proto(both, 0, None)
    assert [v.field for v in caught.value.violations] == ["change.remove_add_ons[0]"]


def test_a_trial_is_given_in_days_or_as_an_end_never_both() -> None:
    request = subscription_pb2.CreateSubscriptionRequest(
        subscription=subscription_pb2.Subscription(
            customer="customers/cus_1", plan="plans/plan_1", trial_end_time=timestamp_from_datetime(AT)
        ),
        trial_days=14,
    )
    with pytest.raises(InvalidArgument) as caught:
        subscriptions.new_subscription_from_proto(request)
    assert [v.field for v in caught.value.violations] == ["trial_days"]
    request.ClearField("trial_days")
    new, days = subscriptions.new_subscription_from_proto(request)
    assert (new.trial_end, new.plan_id, new.seats, days) == (AT, "plan_1", Decimal(1), 0)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Fraction(6000), "6000"),
        (Fraction(5, 2), "2.5"),
        (Fraction(-96000, 31), "-96000/31"),
        (Fraction(1, 8), "0.125"),
    ],
)
def test_an_exact_amount_is_a_decimal_when_one_is_exact_and_a_fraction_otherwise(
    value: Fraction, text: str
) -> None:
    assert invoices.exact_text(value) == text


def test_a_payment_survives_the_wire() -> None:
    request = invoice_pb2.RecordInvoicePaymentRequest(
        name="invoices/in_1",
        outcome=invoice_pb2.PAYMENT_OUTCOME_FAILED,
        provider="stripe",
        provider_reference="ch_1",
        failure_message="card_declined",
        payment_time=timestamp_from_datetime(AT),
    )
    payment = invoices.payment_from_proto(request, datetime(2031, 1, 1, tzinfo=UTC))
    assert payment == Payment(PaymentOutcome.FAILED, 0, "stripe", "ch_1", AT, "card_declined")
    wire = invoices.payment_to_proto(payment)
    assert (wire.outcome, wire.provider_reference, wire.payment_time) == (
        request.outcome,
        request.provider_reference,
        request.payment_time,
    )
