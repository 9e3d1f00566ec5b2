"""Property: two calls share a cache key only when their arguments are the same values."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streamboost._cache._keys import KeyBuilder

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),  # orjson's integer range
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


async def pair(a: Any, b: Any = None) -> None: ...


def canonical(value: Any) -> Any:
    """The value with its types spelled out, NaN made comparable and -0.0 kept apart."""
    if isinstance(value, bool | int | str) or value is None:
        return (type(value).__name__, value)
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else repr(value))
    if isinstance(value, list | tuple):
        return ("list", tuple(canonical(v) for v in value))
    return ("dict", tuple(sorted((k, canonical(v)) for k, v in value.items())))


KEYS = KeyBuilder(pair, None, "test.pair")


@given(values, values, values, values)
def test_keys_collide_only_for_equal_arguments(a: Any, b: Any, c: Any, d: Any) -> None:
    first, second = KEYS.encode((a, b), {}), KEYS.encode((c, d), {})
    assert (first == second) == (canonical((a, b)) == canonical((c, d)))


@given(values, values)
def test_positional_and_keyword_calls_share_a_key(a: Any, b: Any) -> None:
    assert (
        KEYS.encode((a, b), {}) == KEYS.encode((), {"b": b, "a": a}) == KEYS.encode((a,), {"b": b})
    )


def test_known_lookalikes_get_distinct_keys() -> None:
    lookalikes = [
        (None,),
        (math.nan,),
        (math.inf,),
        (-math.inf,),
        ("fnan",),
        ("snan",),
        ("null",),
        ([None, math.nan],),
        ([math.nan, None],),
        (1,),
        (1.0,),
        (True,),
        ("1",),
        ("a:b", "c"),
        ("a", "b:c"),
        ('a","b',),
        ("a", "b"),
    ]
    keys = [KEYS.encode(args, {}) for args in lookalikes]
    assert len(set(keys)) == len(lookalikes)
