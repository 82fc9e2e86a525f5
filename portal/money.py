"""Money and percentages as the tables store them: whole fen and basis points.

Forms and the API speak yuan ("1234.50") and percent ("12.5"); the tables keep integers
so sums are exact on every database. Rule files get ``Decimal`` values.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

CENTS_PER_YUAN = 100
BASIS_POINTS_PER_PERCENT = 100
# A trillion yuan: beyond any real quotation or contract (a typo), and far inside the
# 64-bit columns the sums are stored in.
MAX_AMOUNT_CENTS = 10**14
# How the API's response schemas describe money and percentages (strings, exact).
MONEY_SCHEMA = {"type": "string", "description": "yuan with two decimals"}
PERCENT_SCHEMA = {"type": "string", "description": "percent with two decimals"}


def to_cents(value: Any) -> int:
    """Yuan (str, int, float or Decimal) to whole fen, rounded half up.
    Raises ValueError for text that is not a finite number, or one too long to hold."""
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise ValueError(f"not an amount: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount: {value!r}")
    try:
        return int((amount * CENTS_PER_YUAN).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:  # more digits than the context holds (1e30): no real amount
        raise ValueError(f"not an amount: {value!r}") from None


def yuan(cents: int | None) -> Decimal:
    """Whole fen to yuan, two decimals (for rule facts, forms and the API)."""
    return (Decimal(cents or 0) / CENTS_PER_YUAN).quantize(Decimal("0.01"))


def to_basis_points(percent: Any) -> int:
    """Percent ("12.5") to basis points (1250), rounded half up."""
    try:
        number = Decimal(str(percent).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"not a percentage: {percent!r}") from None
    if not number.is_finite():
        raise ValueError(f"not a percentage: {percent!r}")
    try:
        return int((number * BASIS_POINTS_PER_PERCENT).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        raise ValueError(f"not a percentage: {percent!r}") from None


def percent(basis_points: int | None) -> Decimal:
    """Basis points to percent with two decimals (1250 -> 12.50)."""
    return (Decimal(basis_points or 0) / BASIS_POINTS_PER_PERCENT).quantize(Decimal("0.01"))


def format_money(cents: int | None) -> str:
    """Thousands separators and two decimals, as a quotation prints it: 1,234,567.50."""
    return f"{yuan(cents):,.2f}"
