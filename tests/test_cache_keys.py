"""Property: two calls share a cache key only when their arguments are the same values."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import math
import uuid
from decimal import Decimal
from typing import Any, NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

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


@dataclasses.dataclass
class Admin:
    id: int


@dataclasses.dataclass
class Guest:
    id: int


class Role(enum.Enum):
    ADMIN = 1


class Level(enum.IntEnum):
    ONE = 1


class Kind(enum.StrEnum):
    ADMIN = "admin"


class AdminModel(BaseModel):
    id: int


class GuestModel(BaseModel):
    id: int


class Team(BaseModel):
    lead: AdminModel | GuestModel


class Point(NamedTuple):
    x: int
    y: int


def test_arguments_of_other_types_never_share_a_key() -> None:
    # Each was written alike by orjson before: Admin(1), Guest(1) and {"id": 1}; 1, Role.ADMIN
    # and Level.ONE; "admin" and Kind.ADMIN; (1, 2), [1, 2], {1, 2} and Point(1, 2).
    lookalikes = [
        Admin(1),
        Guest(1),
        {"id": 1},
        AdminModel(id=1),
        GuestModel(id=1),
        Team(lead=AdminModel(id=1)),
        Team(lead=GuestModel(id=1)),
        1,
        Role.ADMIN,
        Level.ONE,
        "admin",
        Kind.ADMIN,
        (1, 2),
        [1, 2],
        {1, 2},
        frozenset({1, 2}),
        Point(1, 2),
        uuid.UUID(int=1),
        str(uuid.UUID(int=1)),
        datetime.date(2024, 1, 2),
        "2024-01-02",
        Decimal("1.5"),
        "1.5",
        b"ab",
        "6162",
        ["X", "d800"],
        ["l", 1, 2],
    ]
    keys = [KEYS.encode((value,), {}) for value in lookalikes]
    assert len(set(keys)) == len(lookalikes)
    assert KEYS.encode((Admin(1),), {}) == KEYS.encode((), {"a": Admin(1)})
    assert KEYS.encode(({"b": 1, "a": 2},), {}) == KEYS.encode(({"a": 2, "b": 1},), {})


def test_surrogates_and_big_ints_key_apart_and_alike() -> None:
    # orjson raises TypeError on both: the key encoder used to crash the call.
    values = ["\ud800", "\udfff", "\ud800x", 2**64, 2**64 + 1, -(2**63) - 1, 2**200]
    keys = [KEYS.encode((value,), {}) for value in values]
    assert len(set(keys)) == len(values)
    assert KEYS.encode(("\ud800",), {}) == KEYS.encode((), {"a": "\ud800"})
    assert KEYS.encode((2**64,), {}) != KEYS.encode((str(2**64),), {})


def test_unkeyable_arguments_are_refused_with_the_fix() -> None:
    with pytest.raises(TypeError, match=r"test_cache_keys\.Opaque.*key=\('name', \.\.\.\)"):
        KEYS.encode((Opaque(),), {})


class Opaque:
    pass
