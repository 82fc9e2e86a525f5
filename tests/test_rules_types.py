"""The short path for common input values agrees with the full normalisation (P6.4 amounts,
P6.1 counts): same value, or the same refusal, for any declaration and any value."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from portal.rules.types import ValueProblem, ValueSpec, normalize, normalizer

bounds = st.one_of(st.none(), st.decimals(min_value=-1000, max_value=1000, places=1))
values = st.one_of(
    st.integers(min_value=-(10**14), max_value=10**14),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
    st.floats(allow_nan=True),
    st.sampled_from(["meal", "hotel", "12", "1e5", " 7 "]),
)


def _outcome(function: Any, *args: Any) -> Any:
    try:
        return ("value", function(*args))
    except ValueProblem as problem:
        return ("refused", str(problem))


@settings(max_examples=400, deadline=None)
@given(
    kind=st.sampled_from(["int", "money", "number", "bool", "enum", "text"]),
    minimum=bounds,
    maximum=bounds,
    value=values,
)
def test_p6_4_short_path_agrees_with_full_normalisation(
    kind: str, minimum: Decimal | None, maximum: Decimal | None, value: Any
) -> None:
    spec = ValueSpec("x", kind, values=("meal", "hotel"), minimum=minimum, maximum=maximum)
    assert _outcome(normalizer(spec), value) == _outcome(normalize, spec, value)
