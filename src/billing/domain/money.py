"""Currencies, exact decimal arithmetic and the one rounding rule.

Units: every amount inside the domain is a ``Decimal`` in the currency's *minor* units (cents for
USD, yen for JPY, fils for KWD). Unit prices may carry up to 12 decimal places of a minor unit.
Rounding happens once per line, to a whole minor unit, half-up (away from zero): DESIGN.md §2.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Sequence
from decimal import Decimal
from fractions import Fraction

from billing.domain.errors import InvalidArgument

# ISO 4217 minor-unit exponents of the active currency codes. Funds codes, metals and test codes
# (XAU, XTS, ...) are left out on purpose: nobody is invoiced in them.
_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(
        [
            "AED",
            "AFN",
            "ALL",
            "AMD",
            "AOA",
            "ARS",
            "AUD",
            "AWG",
            "AZN",
            "BAM",
            "BBD",
            "BDT",
            "BGN",
            "BMD",
            "BND",
            "BOB",
            "BRL",
            "BSD",
            "BTN",
            "BWP",
            "BYN",
            "BZD",
            "CAD",
            "CDF",
            "CHF",
            "CNY",
            "COP",
            "CRC",
            "CUP",
            "CVE",
            "CZK",
            "DKK",
            "DOP",
            "DZD",
            "EGP",
            "ERN",
            "ETB",
            "EUR",
            "FJD",
            "FKP",
            "GBP",
            "GEL",
            "GHS",
            "GIP",
            "GMD",
            "GTQ",
            "GYD",
            "HKD",
            "HNL",
            "HTG",
            "HUF",
            "IDR",
            "ILS",
            "INR",
            "IRR",
            "JMD",
            "KES",
            "KGS",
            "KHR",
            "KPW",
            "KYD",
            "KZT",
            "LAK",
            "LBP",
            "LKR",
            "LRD",
            "LSL",
            "MAD",
            "MDL",
            "MGA",
            "MKD",
            "MMK",
            "MNT",
            "MOP",
            "MRU",
            "MUR",
            "MVR",
            "MWK",
            "MXN",
            "MYR",
            "MZN",
            "NAD",
            "NGN",
            "NIO",
            "NOK",
            "NPR",
            "NZD",
            "PAB",
            "PEN",
            "PGK",
            "PHP",
            "PKR",
            "PLN",
            "QAR",
            "RON",
            "RSD",
            "RUB",
            "SAR",
            "SBD",
            "SCR",
            "SDG",
            "SEK",
            "SGD",
            "SHP",
            "SLE",
            "SOS",
            "SRD",
            "SSP",
            "STN",
            "SVC",
            "SYP",
            "SZL",
            "THB",
            "TJS",
            "TMT",
            "TOP",
            "TRY",
            "TTD",
            "TWD",
            "TZS",
            "UAH",
            "USD",
            "UYU",
            "UZS",
            "VED",
            "VES",
            "WST",
            "XCD",
            "XCG",
            "YER",
            "ZAR",
            "ZMW",
            "ZWG",
        ],
        2,
    ),
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}

MAX_DECIMAL_PLACES = 12

# The one deliberate rounding point; its own context so the thread's default cannot change it.
_ROUNDING = decimal.Context(prec=60, rounding=decimal.ROUND_HALF_UP, traps=[decimal.InvalidOperation])

# Wide enough that sums and products of 12-place inputs are exact; Inexact is trapped so a
# silent rounding anywhere but the one deliberate rounding point is a crash, not a wrong cent.
EXACT = decimal.Context(
    prec=60,
    rounding=decimal.ROUND_HALF_UP,
    traps=[decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, decimal.DivisionByZero],
)


def exponent(currency: str) -> int:
    """ISO 4217 exponent of ``currency``; raises InvalidArgument for an unknown code."""
    try:
        return _EXPONENTS[currency]
    except KeyError:
        raise InvalidArgument.single("currency", f"unknown ISO 4217 currency code {currency!r}") from None


def is_currency(code: str) -> bool:
    return code in _EXPONENTS


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    """Sum without the default context's 28-digit rounding."""
    total = Decimal(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


def round_minor(amount: Decimal) -> int:
    """Round an amount in minor units to a whole minor unit, half away from zero."""
    return int(_ROUNDING.quantize(amount, Decimal(1)))


def round_fraction(amount: Fraction) -> int:
    """``round_minor`` for an exact fraction of minor units (a prorated amount): half away from zero.

    The same rule as ``round_minor``; a property test holds the two to each other.
    """
    magnitude = abs(amount)
    # floor(|x| + 1/2) in integers: no float, no context.
    whole = (2 * magnitude.numerator + magnitude.denominator) // (2 * magnitude.denominator)
    return whole if amount >= 0 else -whole


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` minor units across ``weights`` in proportion, by largest remainder.

    The parts always sum to ``total`` exactly. Ties in remainder go to the earlier weight, so
    the result is deterministic. Zero weights get zero unless every weight is zero.
    """
    if not weights:
        if total:
            raise ValueError("cannot allocate a non-zero total across nothing")
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    whole = sum(weights)
    if whole == 0:
        weights = [1] * len(weights)
        whole = len(weights)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    floors = [magnitude * w // whole for w in weights]
    remainders = [magnitude * w % whole for w in weights]
    leftover = magnitude - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:leftover]:
        floors[i] += 1
    return [sign * f for f in floors]
