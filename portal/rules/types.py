"""The value types a rule file may use, and turning values into what the engine compares.

durable_rules compares C doubles and its JSON parser rejects exponent notation, NaN and
infinity, so every number reaches it as an integer: money in minor units (fen), other
decimals scaled by their declared ``scale``. Nothing else (dates, nested objects) is
offered: counts over time arrive as integers computed in the database.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from flask_babel import gettext as _

INPUT_TYPES = ("int", "money", "number", "bool", "enum", "text")
OUTPUT_TYPES = (*INPUT_TYPES, "list")
NUMERIC = ("int", "money", "number")
LIMIT = Decimal("1e13")  # far beyond any amount, far inside a double's exact range
TEXT_MAX = 1000


class ValueProblem(ValueError):
    """A value that does not fit its type; the message is for the admin or the caller."""


@dataclass(frozen=True)
class ValueSpec:
    """A declared input, output or parameter: its type and the bounds it must keep."""

    name: str
    type: str
    values: tuple[str, ...] = ()
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    scale: int = 2
    default: Any = None
    label: str = ""

    @property
    def numeric(self) -> bool:
        """Whether the engine compares it as a number."""
        return self.type in NUMERIC


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueProblem(_("expected a number, got true/false"))
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueProblem(_("expected a number, got %(value)s", value=repr(value))) from None
    else:
        raise ValueProblem(_("expected a number, got %(value)s", value=type(value).__name__))
    if not number.is_finite():
        raise ValueProblem(_("the number is not finite"))
    if abs(number) >= LIMIT:
        raise ValueProblem(_("the number is out of range"))
    return number


def normalize(spec: ValueSpec, value: Any) -> Any:
    """The engine's form of ``value`` for ``spec``, or ValueProblem."""
    kind = spec.type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueProblem(_("expected true or false, got %(value)s", value=repr(value)))
    if kind == "enum":
        if not isinstance(value, str) or value not in spec.values:
            raise ValueProblem(
                _(
                    "expected one of %(values)s, got %(value)s",
                    values=", ".join(spec.values),
                    value=repr(value),
                )
            )
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise ValueProblem(_("expected text, got %(value)s", value=repr(value)))
        if len(value) > TEXT_MAX:
            raise ValueProblem(_("text longer than %(n)s characters", n=TEXT_MAX))
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: the engine cannot read it
                raise ValueProblem(_("the text is not valid Unicode")) from None
        return value
    if (
        type(value) is int
        and (kind == "int" or kind == "money")
        and -_INT_LIMIT < value < _INT_LIMIT
    ):
        # The common case, kept off the slower Decimal path: a whole number in range.
        if (spec.minimum is not None and value < spec.minimum) or (
            spec.maximum is not None and value > spec.maximum
        ):
            _decimal_bounds(spec, Decimal(value))
        return value if kind == "int" else value * 100
    number = _decimal(value)
    _decimal_bounds(spec, number)
    if kind == "int":
        if number != number.to_integral_value():
            raise ValueProblem(_("expected a whole number, got %(value)s", value=repr(value)))
        return int(number)
    places = 2 if kind == "money" else spec.scale
    scaled = (number * (Decimal(10) ** places)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


_INT_LIMIT = 10**13


def _decimal_bounds(spec: ValueSpec, number: Decimal) -> None:
    if spec.minimum is not None and number < spec.minimum:
        raise ValueProblem(_("must be at least %(n)s", n=spec.minimum))
    if spec.maximum is not None and number > spec.maximum:
        raise ValueProblem(_("must be at most %(n)s", n=spec.maximum))


def display(spec: ValueSpec, engine_value: Any) -> Any:
    """Back from the engine's form to what a person reads (money as a decimal string)."""
    if spec.type == "money":
        return str((Decimal(engine_value) / 100).quantize(Decimal("0.01")))
    if spec.type == "number":
        return str(Decimal(engine_value) / (Decimal(10) ** spec.scale))
    return engine_value


def check_output(spec: ValueSpec, value: Any) -> Any:
    """An output value as declared (outputs are data, never sent to the engine)."""
    if spec.type == "list":
        items = value if isinstance(value, list) else [value]
        for item in items:
            if not isinstance(item, str) or (spec.values and item not in spec.values):
                raise ValueProblem(
                    _(
                        "expected a list of %(values)s, got %(value)s",
                        values=", ".join(spec.values),
                        value=repr(value),
                    )
                )
        return items
    if spec.type in ("money", "number"):
        _decimal(value)
        return str(value) if not isinstance(value, str) else value
    normalize(spec, value)
    return value


@functools.lru_cache(maxsize=4096)
def normalizer(spec: ValueSpec) -> Callable[[Any], Any]:
    """``normalize`` specialised for one declaration: the common, valid values take a
    short path (this runs for every input of every decision); anything else goes through
    ``normalize``, which also words the problem."""
    kind = spec.type
    if kind == "enum":
        allowed = frozenset(spec.values)

        def enum(value: Any) -> Any:
            return value if type(value) is str and value in allowed else normalize(spec, value)

        return enum
    if kind == "bool":
        return lambda value: value if value is True or value is False else normalize(spec, value)
    if kind in ("int", "money"):
        # Whole numbers within the declared bounds (rounded inwards) take the short path.
        low = -_INT_LIMIT if spec.minimum is None else max(-_INT_LIMIT, math.ceil(spec.minimum))
        high = _INT_LIMIT if spec.maximum is None else min(_INT_LIMIT, math.floor(spec.maximum))
        factor = 1 if kind == "int" else 100

        def whole(value: Any) -> Any:
            if type(value) is int and low <= value <= high:
                return value * factor
            return normalize(spec, value)

        return whole
    if kind == "text":

        def text(value: Any) -> Any:
            if type(value) is str and len(value) <= TEXT_MAX and value.isascii():
                return value
            return normalize(spec, value)

        return text
    return lambda value: normalize(spec, value)
