"""Golden quotes: a catalog, a request and the hand-checked quote, all as wire JSON.

Each file in quotes/ is replayed through the real converters and the pure quote function, so a
change in rounding, tier maths, discount allocation or wire shape shows up as a diff here. The
``hand_check`` lines in each file are the arithmetic behind the expected amounts.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from billing.domain.catalog import Catalog
from billing.domain.quote import price_quote
from billing.v1 import catalog_pb2, rating_pb2
from rating.api.converters import (
    addon_from_proto,
    coupon_from_proto,
    meter_from_proto,
    plan_from_proto,
    price_from_proto,
    product_from_proto,
    quote_request_from_proto,
    quote_to_proto,
)

SCENARIOS = sorted((Path(__file__).parent / "quotes").glob("*.json"))
AS_OF = datetime(2026, 11, 26, tzinfo=UTC)

_KINDS = {
    "products": (catalog_pb2.Product, product_from_proto),
    "meters": (catalog_pb2.Meter, meter_from_proto),
    "prices": (catalog_pb2.Price, price_from_proto),
    "plans": (catalog_pb2.Plan, plan_from_proto),
    "addons": (catalog_pb2.AddOn, addon_from_proto),
    "coupons": (catalog_pb2.Coupon, coupon_from_proto),
}


def _catalog(data: dict[str, list[dict[str, Any]]]) -> Catalog:
    entities: dict[str, dict[str, Any]] = {}
    for collection, (message_type, from_proto) in _KINDS.items():
        entities[collection] = {}
        for item in data.get(collection, []):
            message = json_format.ParseDict(item, message_type())
            entity_id = message.name.split("/", 1)[1]
            entities[collection][entity_id] = from_proto(message, collection, id=entity_id)
    # The plan's currency is derived by the use case on create; golden plans state it.
    for plan_json in data.get("plans", []):
        plan_id = plan_json["name"].split("/", 1)[1]
        entities["plans"][plan_id] = _with_currency(entities["plans"][plan_id], plan_json["currency"])
    return Catalog(version=1, **entities)


def _with_currency(plan: Any, currency: str) -> Any:
    import dataclasses

    return dataclasses.replace(plan, currency=currency)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_the_quote_matches_the_hand_checked_golden_file(path: Path) -> None:
    scenario = json.loads(path.read_text())
    request = json_format.ParseDict(scenario["request"], rating_pb2.QuoteRequest())
    cart = quote_request_from_proto(request, request.currency)
    quote = quote_to_proto(price_quote(cart, _catalog(scenario["catalog"]), AS_OF))
    quote.ClearField("quote_time")
    actual = json_format.MessageToDict(quote)
    assert actual == scenario["expected"]


def test_there_are_golden_scenarios() -> None:
    assert len(SCENARIOS) >= 3
