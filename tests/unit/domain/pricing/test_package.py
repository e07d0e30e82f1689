"""Package pricing: started (UP) or completed (DOWN) packages, after the free units."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.domain.errors import InvalidArgument, Violations
from billing.domain.money import round_minor
from billing.domain.pricing import Package, PackageRounding, Usage

UP = PackageRounding.UP
DOWN = PackageRounding.DOWN


def violation_fields(model: Package) -> list[str]:
    errors = Violations()
    model.validate(errors, "price")
    try:
        errors.raise_if_any()
    except InvalidArgument as error:
        return [v.field for v in error.violations]
    return []


def amount(model: Package, quantity: str) -> Decimal:
    return model.charge(Usage(Decimal(quantity))).amount


# 10.00 USD per started package of 5 units.
PER_5_UP = Package(package_amount=Decimal("1000"), package_size=Decimal("5"), rounding=UP)
PER_5_DOWN = Package(package_amount=Decimal("1000"), package_size=Decimal("5"), rounding=DOWN)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", "0"),  # 0/5 = 0 packages
        ("1", "1000"),  # 1/5 = 0.2 -> 1 package
        ("5", "1000"),  # 5/5 = 1 package exactly
        ("6", "2000"),  # 6/5 = 1.2 -> 2 packages
        ("10", "2000"),  # 10/5 = 2 packages
        ("10.001", "3000"),  # 2.0002 -> 3 packages
    ],
)
def test_rounding_up_bills_every_started_package(quantity: str, expected: str) -> None:
    assert amount(PER_5_UP, quantity) == Decimal(expected)


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", "0"),
        ("4", "0"),  # 4/5 = 0.8 -> 0 complete packages
        ("5", "1000"),  # 1 complete package
        ("9", "1000"),  # 1.8 -> 1
        ("10", "2000"),  # 2
    ],
)
def test_rounding_down_bills_only_completed_packages(quantity: str, expected: str) -> None:
    assert amount(PER_5_DOWN, quantity) == Decimal(expected)


# 5.00 USD per 100 units, the first 100 units free.
WITH_FREE = Package(package_amount=Decimal("500"), package_size=Decimal("100"), free_units=Decimal("100"))


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ("0", "0"),
        ("50", "0"),  # all free; never a negative package count
        ("100", "0"),  # exactly the free units
        ("101", "500"),  # 1 billable unit -> 1 started package
        ("200", "500"),  # 100 billable -> 1 package
        ("250", "1000"),  # 150 billable -> ceil(1.5) = 2 packages
    ],
)
def test_free_units_come_off_before_dividing(quantity: str, expected: str) -> None:
    assert amount(WITH_FREE, quantity) == Decimal(expected)


def test_free_units_then_rounding_down() -> None:
    model = Package(
        package_amount=Decimal("500"),
        package_size=Decimal("100"),
        rounding=DOWN,
        free_units=Decimal("100"),
    )

    assert amount(model, "250") == Decimal("500")  # 150 billable -> floor(1.5) = 1 package
    assert amount(model, "199") == Decimal("0")  # 99 billable -> 0 complete packages


def test_fractional_quantities_and_package_sizes() -> None:
    # 2.00 USD per started 0.5 GB: 1.2 GB / 0.5 = 2.4 packages.
    up = Package(package_amount=Decimal("200"), package_size=Decimal("0.5"), rounding=UP)
    down = Package(package_amount=Decimal("200"), package_size=Decimal("0.5"), rounding=DOWN)

    assert amount(up, "1.2") == Decimal("600")  # 3 packages x 200
    assert amount(down, "1.2") == Decimal("400")  # 2 packages x 200


def test_a_fractional_package_amount_rounds_half_up_on_the_line() -> None:
    model = Package(package_amount=Decimal("0.5"), package_size=Decimal("1000"))

    assert amount(model, "2500") == Decimal("1.5")  # ceil(2.5) = 3 packages x 0.5 cent
    assert round_minor(amount(model, "2500")) == 2  # 1.5 -> 2
    assert round_minor(amount(model, "1500")) == 1  # 2 x 0.5 = 1.0 -> 1


def test_yen_packages_round_to_whole_yen() -> None:
    # JPY exponent 0: 12.5 yen per started 1000 calls; 2001 calls -> 3 packages = 37.5 -> 38 yen.
    model = Package(package_amount=Decimal("12.5"), package_size=Decimal("1000"))

    assert round_minor(amount(model, "2001")) == 38


def test_dinar_packages_round_to_whole_fils() -> None:
    # KWD exponent 3: 250.5 fils per package of 10; 11 units -> 2 packages = 501 fils = 0.501 KWD.
    model = Package(package_amount=Decimal("250.5"), package_size=Decimal("10"))

    assert round_minor(amount(model, "11")) == 501


def test_the_charge_carries_the_package_amount_as_its_unit_amount() -> None:
    charge = PER_5_UP.charge(Usage(Decimal("6")))

    assert charge.unit_amount == Decimal("1000")
    assert charge.quantity == Decimal("6")


@pytest.mark.parametrize("size", ["0", "-5"])
def test_a_package_size_must_be_positive(size: str) -> None:
    model = Package(package_amount=Decimal("100"), package_size=Decimal(size))

    assert violation_fields(model) == ["price.package_size"]


def test_every_bad_package_field_is_named() -> None:
    model = Package(package_amount=Decimal("-1"), package_size=Decimal("0"), free_units=Decimal("-1"))

    assert violation_fields(model) == [
        "price.package_amount",
        "price.free_units",
        "price.package_size",
    ]
