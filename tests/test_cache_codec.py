"""Typed decoding: JSON comes back as the annotated type, or is refused."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any, Literal

import orjson
import pytest

from streamboost._cache._codec import decoder_for, encode


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float
    label: str | None = None


@pytest.mark.parametrize(
    ("annotation", "value"),
    [
        (Point, Point(1, 2.0, "a")),
        (list[Point], [Point(1, 2.0)]),
        (dict[str, list[int]], {"a": [1, 2]}),
        (dict[int, str], {1: "one"}),
        (tuple[int, ...], (1, 2, 3)),
        (frozenset[str], frozenset({"a"})),
        (Literal["a", "b"], "b"),
        (Color, Color.RED),
        (uuid.UUID, uuid.UUID(int=7)),
        (datetime.date, datetime.date(2024, 1, 2)),
        (float, 3.0),
        (int | str, "x"),
        (Any, {"free": ["form"]}),
        (None, None),
    ],
)
def test_round_trip(annotation: Any, value: Any) -> None:
    decoded = decoder_for(annotation)(orjson.loads(encode(value)))
    assert decoded == value and type(decoded) is type(value)


@pytest.mark.parametrize(
    ("annotation", "raw"),
    [(Literal["a"], "z"), (int, "1"), (Point, [1, 2]), (list[int], {"a": 1}), (None, 0)],
)
def test_mismatches_are_refused(annotation: Any, raw: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        decoder_for(annotation)(raw)


def test_unsupported_annotation_is_named() -> None:
    class Opaque:
        pass

    with pytest.raises(TypeError, match=r"cannot decode cached values of type .*Opaque"):
        decoder_for(Opaque)
