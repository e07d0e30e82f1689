"""Tax rates by customer country and product tax code, and tax per rate (billing-rules.md §6).

Units: rates are exact percentages (``Decimal("20")`` is 20 %); amounts are int minor units.
Tax is computed once per rate on the sum of the net amounts (after discounts) of the lines with
that rate, rounded half away from zero, then given back to those lines: each line gets its exact
share ``rate x net`` rounded down or up, the lines with the largest fractional parts rounding up
(ties to the earlier line), so the lines' taxes sum to the rate's tax exactly. Credits (negative
nets) get negative tax by the same rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from math import floor

from billing.domain.money import round_fraction


@dataclass(frozen=True, slots=True)
class TaxRate:
    """``percentage`` % of the net amount; ``id`` names the rate on invoices (``GB-standard``)."""

    id: str
    percentage: Decimal
    display_name: str = ""


@dataclass(frozen=True)
class TaxTable:
    """Rates by ``(country, tax_code)``, then the country's default rate, then no tax.

    ``rates`` maps ``(country, tax_code)`` to a rate; ``defaults`` maps a country to its rate for
    any tax code the table does not name. Countries are ISO 3166-1 alpha-2 codes.
    """

    rates: Mapping[tuple[str, str], TaxRate] = field(default_factory=dict)
    defaults: Mapping[str, TaxRate] = field(default_factory=dict)

    def rate(self, country: str, tax_code: str) -> TaxRate | None:
        found = self.rates.get((country, tax_code))
        if found is not None:
            return found
        return self.defaults.get(country)


def apply_tax(nets: Sequence[int], rates: Sequence[TaxRate | None]) -> list[int]:
    """The tax of each line, from the line's net amount and its rate (None: not taxed)."""
    taxes = [0] * len(nets)
    groups: dict[str, list[int]] = {}
    by_id: dict[str, TaxRate] = {}
    for index, rate in enumerate(rates):
        if rate is not None:
            groups.setdefault(rate.id, []).append(index)
            by_id[rate.id] = rate
    for rate_id, members in groups.items():
        percent = Fraction(by_id[rate_id].percentage) / 100
        exact = [percent * nets[i] for i in members]
        rate_tax = round_fraction(sum(exact, Fraction(0)))
        floors = [floor(x) for x in exact]
        leftover = rate_tax - sum(floors)
        # 0 <= leftover <= number of lines with a fractional part, so each line gets the floor or
        # the ceiling of its exact tax.
        order = sorted(range(len(members)), key=lambda j: (-(exact[j] - floors[j]), j))
        for j in order[:leftover]:
            floors[j] += 1
        for j, index in enumerate(members):
            taxes[index] = floors[j]
    return taxes


# The built-in table (issue 5): standard VAT/GST rates, and a reduced rate for e-books where it
# exists. An external tax engine replaces it later; until then it is data, not logic.
_STANDARD = {
    "AT": "20", "AU": "10", "BE": "21", "CH": "8.1", "DE": "19", "DK": "25", "ES": "21", "FI": "25.5",
    "FR": "20", "GB": "20", "IE": "23", "IT": "22", "JP": "10", "NL": "21", "NO": "25", "NZ": "15",
    "PL": "23", "PT": "23", "SE": "25",
}  # fmt: skip
_EBOOK = {"DE": "7", "FR": "5.5", "GB": "0", "IE": "0", "SE": "6"}

BUILT_IN = TaxTable(
    rates={
        (country, "ebook"): TaxRate(f"{country}-ebook", Decimal(value), f"{country} reduced rate")
        for country, value in _EBOOK.items()
    },
    defaults={
        country: TaxRate(f"{country}-standard", Decimal(value), f"{country} standard rate")
        for country, value in _STANDARD.items()
    },
)
