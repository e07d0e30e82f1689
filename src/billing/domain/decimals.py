"""Exact decimal strings on the wire: parsing with a clear error, and canonical formatting."""

from __future__ import annotations

import re
from decimal import Decimal

from billing.domain.errors import InvalidArgument
from billing.domain.money import EXACT, MAX_DECIMAL_PLACES

# Plain positional notation only: "12", "-0.5", "1.250". No exponents, NaN, Infinity, or
# thousands separators; those are how floats leak in from clients.
_DECIMAL = re.compile(rf"-?(0|[1-9][0-9]{{0,17}})(\.[0-9]{{1,{MAX_DECIMAL_PLACES}}})?")
_TOO_PRECISE = re.compile(rf"-?[0-9]+\.[0-9]{{{MAX_DECIMAL_PLACES + 1},}}")


def parse_decimal(text: str, field: str, *, allow_negative: bool = False) -> Decimal:
    """Parse an exact decimal string, raising InvalidArgument naming ``field``."""
    if _DECIMAL.fullmatch(text) is None:
        if _TOO_PRECISE.fullmatch(text):
            reason = f"at most {MAX_DECIMAL_PLACES} decimal places are allowed"
        else:
            reason = "must be a plain decimal number such as '12' or '0.0125'"
        raise InvalidArgument.single(field, f"{reason}, got {text[:40]!r}")
    value = EXACT.add(Decimal(text), Decimal(0))  # turns "-0" into a plain zero
    if value < 0 and not allow_negative:
        raise InvalidArgument.single(field, f"must not be negative, got {text!r}")
    return value


def format_decimal(value: Decimal) -> str:
    """Canonical text: no exponent, no trailing zeros after the point, "0" for zero."""
    # NOTE: not ``value.normalize()``: it rounds to the thread's context precision (28 digits by
    # default), which silently changed valid 30-digit wire values (18 integer + 12 decimal places).
    text = str(value)  # fast, exact; positional unless the exponent is large or very negative
    if "E" in text:
        text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
