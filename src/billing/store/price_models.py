"""Price models as JSON for the ``prices.model`` column.

Every number is written as a decimal *string*: a JSON number would pass through a float in
some reader (psql, a data-lake loader) and could come back a cent off.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from billing.domain.decimals import format_decimal
from billing.domain.pricing import (
    Flat,
    Graduated,
    GraduatedPercentage,
    Package,
    PackageRounding,
    Percentage,
    PercentageTier,
    PerUnit,
    PriceModel,
    Tier,
    Volume,
)


def _d(value: Decimal | None) -> str | None:
    return None if value is None else format_decimal(value)


def _opt(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def model_to_json(model: PriceModel) -> dict[str, Any]:
    """The JSON object stored for ``model``; ``kind`` names the class."""
    body: dict[str, Any]
    match model:
        case Flat():
            body = {"amount": _d(model.amount)}
        case PerUnit():
            body = {"unit_amount": _d(model.unit_amount)}
        case Package():
            body = {
                "package_amount": _d(model.package_amount),
                "package_size": _d(model.package_size),
                "rounding": model.rounding.value,
                "free_units": _d(model.free_units),
            }
        case Graduated() | Volume():
            body = {
                "tiers": [
                    {"up_to": _d(t.up_to), "unit_amount": _d(t.unit_amount), "flat_amount": _d(t.flat_amount)}
                    for t in model.tiers
                ]
            }
        case Percentage():
            body = {
                "rate": _d(model.rate),
                "fixed_amount": _d(model.fixed_amount),
                "min_per_transaction": _d(model.min_per_transaction),
                "max_per_transaction": _d(model.max_per_transaction),
                "free_transactions": model.free_transactions,
            }
        case GraduatedPercentage():
            body = {
                "tiers": [
                    {"up_to": _d(t.up_to), "rate": _d(t.rate), "flat_amount": _d(t.flat_amount)}
                    for t in model.tiers
                ]
            }
        case _:
            raise TypeError(f"no JSON form for price model {type(model).__name__}")
    return {"kind": model.kind, **body}


def model_from_json(data: dict[str, Any]) -> PriceModel:
    kind = data["kind"]
    if kind == Flat.kind:
        return Flat(Decimal(data["amount"]))
    if kind == PerUnit.kind:
        return PerUnit(Decimal(data["unit_amount"]))
    if kind == Package.kind:
        return Package(
            package_amount=Decimal(data["package_amount"]),
            package_size=Decimal(data["package_size"]),
            rounding=PackageRounding(data["rounding"]),
            free_units=Decimal(data["free_units"]),
        )
    if kind in (Graduated.kind, Volume.kind):
        tiers = tuple(
            Tier(_opt(t["up_to"]), Decimal(t["unit_amount"]), Decimal(t["flat_amount"]))
            for t in data["tiers"]
        )
        return Graduated(tiers) if kind == Graduated.kind else Volume(tiers)
    if kind == Percentage.kind:
        return Percentage(
            rate=Decimal(data["rate"]),
            fixed_amount=Decimal(data["fixed_amount"]),
            min_per_transaction=_opt(data["min_per_transaction"]),
            max_per_transaction=_opt(data["max_per_transaction"]),
            free_transactions=int(data["free_transactions"]),
        )
    if kind == GraduatedPercentage.kind:
        return GraduatedPercentage(
            tuple(
                PercentageTier(_opt(t["up_to"]), Decimal(t["rate"]), Decimal(t["flat_amount"]))
                for t in data["tiers"]
            )
        )
    raise ValueError(f"unknown price model kind {kind!r}")
