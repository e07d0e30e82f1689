"""The reference usage aggregation, the late-event window and the per-event checks (DESIGN.md §4-5).

Every expected quantity below is worked out by hand from the events listed next to it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from billing.domain.catalog import Aggregation, Meter
from billing.domain.usage import (
    MAX_PROPERTIES,
    MAX_PROPERTY_KEY_LENGTH,
    MAX_PROPERTY_VALUE_LENGTH,
    LateWindow,
    MeteredEvent,
    UsageRows,
    aggregate,
    matches,
    properties_problem,
    value_problem,
)

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
NOW = datetime(2025, 3, 20, 9, 30, 15, 250_000, tzinfo=UTC)


def _meter(aggregation: Aggregation, value_property: str = "") -> Meter:
    return Meter("meter_1", "api_call", "API calls", aggregation, value_property=value_property)


def _event(minutes: int, value: str | None = None, order: int = 0, **properties: str) -> MeteredEvent:
    return MeteredEvent(
        occurred_at=T0 + timedelta(minutes=minutes),
        properties=properties,
        value=None if value is None else D(value),
        received_order=order,
    )


# Three calls: values 2.5, 10 and 0.25; conversation ids c1, c2, c1; the last one happened first.
THREE = [
    _event(5, "2.5", order=0, conversation="c1"),
    _event(9, "10", order=1, conversation="c2"),
    _event(1, "0.25", order=2, conversation="c1"),
]


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [
        (Aggregation.SUM, D("12.75")),  # 2.5 + 10 + 0.25
        (Aggregation.COUNT, D(3)),
        (Aggregation.MAX, D(10)),
        (Aggregation.UNIQUE_COUNT, D(2)),  # c1, c2
        (Aggregation.LATEST, D(10)),  # minute 9 is the last to happen, though received second
    ],
)
def test_each_aggregation_of_three_events_gives_the_hand_computed_quantity(
    aggregation: Aggregation, expected: D
) -> None:
    assert aggregate(_meter(aggregation, "conversation"), THREE) == expected


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_no_events_aggregate_to_zero_for_every_kind(aggregation: Aggregation) -> None:
    quantity = aggregate(_meter(aggregation, "conversation"), [])
    assert quantity == 0
    assert isinstance(quantity, D)


@pytest.mark.parametrize("aggregation", list(Aggregation))
def test_events_can_be_any_iterable_even_a_one_shot_generator(aggregation: Aggregation) -> None:
    meter = _meter(aggregation, "conversation")
    assert aggregate(meter, (e for e in THREE)) == aggregate(meter, THREE)


def test_sum_is_exact_beyond_the_default_28_digit_context() -> None:
    # 18 integer digits and 12 decimal places each: 30 significant digits, which the default
    # context would round.
    big = "999999999999999999.999999999999"
    events = [_event(0, big), _event(1, big), _event(2, "0.000000000001")]
    assert aggregate(_meter(Aggregation.SUM), events) == D("1999999999999999999.999999999999")


def test_sum_and_max_count_an_event_without_a_value_as_zero() -> None:
    events = [_event(0, None), _event(1, "4"), _event(2, None)]
    assert aggregate(_meter(Aggregation.SUM), events) == 4
    assert aggregate(_meter(Aggregation.MAX), events) == 4
    assert aggregate(_meter(Aggregation.MAX), [_event(0, None)]) == 0


def test_count_counts_events_whatever_their_values() -> None:
    events = [_event(0, None), _event(0, "0"), _event(0, "7.5")]
    assert aggregate(_meter(Aggregation.COUNT), events) == 3


def test_max_compares_values_numerically_not_as_text() -> None:
    events = [_event(0, "9"), _event(1, "10"), _event(2, "9.99")]
    assert aggregate(_meter(Aggregation.MAX), events) == 10


def test_latest_ties_on_time_go_to_the_event_received_last() -> None:
    meter = _meter(Aggregation.LATEST)
    same_instant = [_event(3, "1", order=7), _event(3, "2", order=9), _event(3, "3", order=8)]
    assert aggregate(meter, same_instant) == 2
    assert aggregate(meter, list(reversed(same_instant))) == 2


def test_latest_follows_when_events_happened_not_when_they_were_received() -> None:
    meter = _meter(Aggregation.LATEST)
    late_arrival = [_event(10, "5", order=1), _event(2, "8", order=2)]
    assert aggregate(meter, late_arrival) == 5


def test_latest_whose_last_event_has_no_value_is_zero() -> None:
    meter = _meter(Aggregation.LATEST)
    assert aggregate(meter, [_event(1, "5"), _event(2, None)]) == 0


def test_unique_count_ignores_events_without_the_property() -> None:
    meter = _meter(Aggregation.UNIQUE_COUNT, "conversation")
    events = [
        _event(0, conversation="c1"),
        _event(1, channel="sms"),  # no conversation: not counted, not a distinct "missing" value
        _event(2, conversation="c2"),
        _event(3, conversation="c1"),
        _event(4),
    ]
    assert aggregate(meter, events) == 2


def test_unique_count_of_events_none_of_which_has_the_property_is_zero() -> None:
    meter = _meter(Aggregation.UNIQUE_COUNT, "conversation")
    assert aggregate(meter, [_event(0, channel="sms"), _event(1)]) == 0


def test_unique_count_treats_an_empty_string_as_a_value_of_its_own() -> None:
    meter = _meter(Aggregation.UNIQUE_COUNT, "conversation")
    assert aggregate(meter, [_event(0, conversation=""), _event(1, conversation="c1")]) == 2


def test_matches_needs_every_filter_to_hold_and_no_filter_matches_everything() -> None:
    properties = {"channel": "sms", "outcome": "resolved"}
    assert matches(properties, [])
    assert matches(properties, [("channel", "sms")])
    assert matches(properties, [("channel", "sms"), ("outcome", "resolved")])
    assert not matches(properties, [("channel", "sms"), ("outcome", "open")])
    assert not matches(properties, [("model", "")])  # absent is not the empty string
    assert not matches(properties, [("channel", "sms"), ("channel", "whatsapp")])


# --- the late-event window: [now - 35 days, now + 5 minutes], both ends included ------------


def test_an_event_exactly_35_days_old_is_accepted_and_one_microsecond_older_is_not() -> None:
    window = LateWindow()
    assert window.problem(NOW - timedelta(days=35), NOW) is None
    problem = window.problem(NOW - timedelta(days=35, microseconds=1), NOW)
    assert problem == "timestamp is more than 35 days in the past"


def test_an_event_exactly_5_minutes_ahead_is_accepted_and_one_microsecond_later_is_not() -> None:
    window = LateWindow()
    assert window.problem(NOW + timedelta(minutes=5), NOW) is None
    problem = window.problem(NOW + timedelta(minutes=5, microseconds=1), NOW)
    assert problem == "timestamp is more than 5 minutes in the future"


def test_an_event_happening_now_is_inside_the_window() -> None:
    assert LateWindow().problem(NOW, NOW) is None


def test_a_configured_window_moves_both_boundaries() -> None:
    window = LateWindow(back=timedelta(days=3), ahead=timedelta(minutes=1))
    assert window.problem(NOW - timedelta(days=3), NOW) is None
    assert (
        window.problem(NOW - timedelta(days=3, seconds=1), NOW) == "timestamp is more than 3 days in the past"
    )
    assert window.problem(NOW + timedelta(minutes=1), NOW) is None
    assert (
        window.problem(NOW + timedelta(seconds=61), NOW) == "timestamp is more than 1 minutes in the future"
    )


# --- what an event must carry for its meter ------------------------------------------------


@pytest.mark.parametrize("aggregation", [Aggregation.SUM, Aggregation.MAX, Aggregation.LATEST])
def test_a_meter_aggregating_values_requires_a_value(aggregation: Aggregation) -> None:
    meter = _meter(aggregation)
    problem = value_problem(meter, has_value=False, properties={})
    assert problem == f"meter 'api_call' aggregates {aggregation.value}: value is required"
    assert value_problem(meter, has_value=True, properties={}) is None


def test_a_count_meter_needs_neither_value_nor_property() -> None:
    assert value_problem(_meter(Aggregation.COUNT), has_value=False, properties={}) is None


def test_a_unique_count_meter_requires_its_property_but_not_a_value() -> None:
    meter = _meter(Aggregation.UNIQUE_COUNT, "conversation")
    problem = value_problem(meter, has_value=True, properties={"channel": "sms"})
    assert problem == "meter 'api_call' counts unique 'conversation': that property is required"
    assert value_problem(meter, has_value=False, properties={"conversation": "c1"}) is None
    assert value_problem(meter, has_value=False, properties={"conversation": ""}) is None


def test_properties_within_every_limit_are_fine() -> None:
    properties = {f"k{i}": "v" for i in range(MAX_PROPERTIES)}
    properties["k0"] = "v" * MAX_PROPERTY_VALUE_LENGTH
    properties["x" * MAX_PROPERTY_KEY_LENGTH] = properties.pop("k1")
    assert len(properties) == 32
    assert properties_problem(properties) is None
    assert properties_problem({}) is None
    assert properties_problem({"channel": ""}) is None


def test_one_property_too_many_is_a_problem() -> None:
    properties = {f"k{i}": "v" for i in range(MAX_PROPERTIES + 1)}
    assert properties_problem(properties) == "at most 32 properties"


@pytest.mark.parametrize("key", ["", "x" * (MAX_PROPERTY_KEY_LENGTH + 1)])
def test_an_empty_or_overlong_property_key_is_a_problem(key: str) -> None:
    assert properties_problem({"channel": "sms", key: "v"}) == "property keys must have 1 to 40 characters"


def test_an_overlong_property_value_is_a_problem_naming_the_key() -> None:
    problem = properties_problem({"model": "m" * (MAX_PROPERTY_VALUE_LENGTH + 1)})
    assert problem == "property 'model': at most 200 characters"


# --- column arrays for the store ------------------------------------------------------------


def test_usage_rows_keep_row_i_of_every_column_together_and_extend_in_order() -> None:
    first = UsageRows()
    first.add("k1", "cus_1", "", "meter_1", 100, '{"a":"1"}', "1.5")
    second = UsageRows()
    second.add("k2", "", "crm-2", "meter_2", 200, "{}", "")
    second.add("k3", "cus_3", "", "meter_1", 300, "{}", "2")
    first.extend(second)
    assert len(first) == 3
    assert first.row(0) == ("k1", "cus_1", "", "meter_1", 100, '{"a":"1"}', "1.5")
    assert first.row(1) == ("k2", "", "crm-2", "meter_2", 200, "{}", "")
    assert first.row(2) == ("k3", "cus_3", "", "meter_1", 300, "{}", "2")
    assert first.select([2, 0]).row(0) == first.row(2)
    assert first.select([2, 0]).row(1) == first.row(0)
    assert len(second) == 2
