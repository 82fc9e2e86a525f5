"""The value types a rule file may use, and turning values into what the engine compares.

durable_rules compares C doubles and its JSON parser rejects exponent notation, NaN and
infinity, so every number reaches it as an integer: money in minor units (fen), other
decimals scaled by their declared ``scale``. Nothing else (dates, nested objects) is
offered: counts over time arrive as integers computed in the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

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
        raise ValueProblem("expected a number, got true/false")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float | str):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueProblem(f"expected a number, got {value!r}") from None
    else:
        raise ValueProblem(f"expected a number, got {type(value).__name__}")
    if not number.is_finite():
        raise ValueProblem("the number is not finite")
    if abs(number) >= LIMIT:
        raise ValueProblem("the number is out of range")
    return number


def normalize(spec: ValueSpec, value: Any) -> Any:
    """The engine's form of ``value`` for ``spec``, or ValueProblem."""
    kind = spec.type
    if kind == "bool":
        if isinstance(value, bool):
            return value
        raise ValueProblem(f"expected true or false, got {value!r}")
    if kind == "enum":
        if not isinstance(value, str) or value not in spec.values:
            raise ValueProblem(f"expected one of {', '.join(spec.values)}, got {value!r}")
        return value
    if kind == "text":
        if not isinstance(value, str):
            raise ValueProblem(f"expected text, got {value!r}")
        if len(value) > TEXT_MAX:
            raise ValueProblem(f"text longer than {TEXT_MAX} characters")
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: the engine cannot read it
                raise ValueProblem("the text is not valid Unicode") from None
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
            raise ValueProblem(f"expected a whole number, got {value!r}")
        return int(number)
    places = 2 if kind == "money" else spec.scale
    scaled = (number * (Decimal(10) ** places)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(scaled)


_INT_LIMIT = 10**13


def _decimal_bounds(spec: ValueSpec, number: Decimal) -> None:
    if spec.minimum is not None and number < spec.minimum:
        raise ValueProblem(f"must be at least {spec.minimum}")
    if spec.maximum is not None and number > spec.maximum:
        raise ValueProblem(f"must be at most {spec.maximum}")


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
                raise ValueProblem(f"expected a list of {', '.join(spec.values)}, got {value!r}")
        return items
    if spec.type in ("money", "number"):
        _decimal(value)
        return str(value) if not isinstance(value, str) else value
    normalize(spec, value)
    return value
