"""Tax per rate, allocated back to lines (docs/billing-rules.md §6)."""

from __future__ import annotations

from decimal import Decimal

from billing.domain.tax import BUILT_IN, TaxRate, TaxTable, apply_tax

VAT = TaxRate("X-standard", Decimal("20"))
REDUCED = TaxRate("X-reduced", Decimal("5.5"))


def test_the_table_falls_back_to_the_country_default_then_to_no_tax() -> None:
    table = TaxTable(rates={("FR", "ebook"): REDUCED}, defaults={"FR": VAT})
    assert table.rate("FR", "ebook") is REDUCED
    assert table.rate("FR", "saas") is VAT
    assert table.rate("US", "saas") is None


def test_the_built_in_table_knows_reduced_ebook_rates() -> None:
    assert BUILT_IN.rate("DE", "ebook") == TaxRate("DE-ebook", Decimal("7"), "DE reduced rate")
    assert BUILT_IN.rate("DE", "") == TaxRate("DE-standard", Decimal("19"), "DE standard rate")


def test_tax_is_rounded_once_per_rate_and_each_line_gets_a_floor_or_a_ceiling() -> None:
    # 20% of 333, 333, 334 is 66.6, 66.6, 66.8: the rate's tax is 200, the floors sum to 198,
    # the two extra units go to the largest fractions (.8, then the first .6).
    assert apply_tax([333, 333, 334], [VAT, VAT, VAT]) == [67, 66, 67]
    # Rounded per line it would be 67 + 67 + 67 = 201: the off-by-one DESIGN.md §2 avoids.


def test_credits_get_negative_tax() -> None:
    assert apply_tax([10000, -5000, 0], [VAT, VAT, None]) == [2000, -1000, 0]
    # 10% of 5 and -3 is 0.5 and -0.3; the rate's tax is round(0.2) = 0: floors 0 and -1, and
    # the one leftover unit goes to the larger fraction (-0.3 = -1 + 0.7).
    ten = TaxRate("ten", Decimal("10"))
    assert apply_tax([5, -3], [ten, ten]) == [0, 0]


def test_rates_are_computed_separately() -> None:
    # 20% of 101 = 20.2 -> 20; 5.5% of 101 = 5.555 -> 6.
    assert apply_tax([101, 101], [VAT, REDUCED]) == [20, 6]
