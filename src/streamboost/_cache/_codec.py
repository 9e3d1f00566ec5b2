"""orjson encoding and typed decoding: values come back as the function's return type.

The decoder is built once per function from its return annotation. It understands the types a
cached loader returns in practice (dataclasses, pydantic models, containers, scalars, unions)
without importing pydantic: a model is recognised by its ``model_validate`` classmethod.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import types
import typing
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import orjson

Decoder = Callable[[Any], Any]

# Non-string dict keys are written as strings and turned back by the dict decoder.
ENCODE_OPTIONS = orjson.OPT_NON_STR_KEYS


def encode_default(obj: Any) -> Any:
    """orjson fallback: pydantic models, sets and decimals; never pickle."""
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    if isinstance(obj, set | frozenset):
        return list(obj)
    if isinstance(obj, Decimal):
        return str(obj)
    raise TypeError(
        f"cannot cache a value of type {type(obj).__qualname__}: return JSON-serialisable data "
        "(dataclass, pydantic model, dict, list, str, int, float, bool, None)"
    )


def encode(value: Any) -> bytes:
    try:
        return orjson.dumps(value, default=encode_default, option=ENCODE_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(str(exc.__cause__ or exc)) from exc


def _identity(value: Any) -> Any:
    return value


def _scalar(cls: type) -> Decoder:
    def decode(value: Any) -> Any:
        if type(value) is cls:
            return value
        if cls is float and type(value) is int:
            return float(value)
        raise TypeError(f"expected {cls.__name__}, got {type(value).__name__}")

    return decode


def _none(value: Any) -> None:
    if value is not None:
        raise TypeError(f"expected None, got {type(value).__name__}")


def _union(decoders: list[Decoder], nullable: bool) -> Decoder:
    def decode(value: Any) -> Any:
        if value is None and nullable:
            return None
        for decoder in decoders:
            try:
                return decoder(value)
            except (TypeError, ValueError):
                continue
        raise TypeError(f"no member of the union accepts {type(value).__name__}")

    return decode


def _sequence(item: Decoder, factory: Callable[[list[Any]], Any]) -> Decoder:
    def decode(value: Any) -> Any:
        if not isinstance(value, list):
            raise TypeError(f"expected a JSON array, got {type(value).__name__}")
        return factory([item(v) for v in value])

    return decode


def _tuple(items: list[Decoder]) -> Decoder:
    def decode(value: Any) -> Any:
        if not isinstance(value, list) or len(value) != len(items):
            raise TypeError(f"expected a JSON array of {len(items)} items")
        return tuple(d(v) for d, v in zip(items, value, strict=True))

    return decode


def _mapping(key: Decoder, item: Decoder) -> Decoder:
    def decode(value: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object, got {type(value).__name__}")
        return {key(k): item(v) for k, v in value.items()}

    return decode


def _dataclass(cls: type) -> Decoder:
    hints = typing.get_type_hints(cls)
    fields = [
        (f.name, decoder_for(hints.get(f.name, Any))) for f in dataclasses.fields(cls) if f.init
    ]

    def decode(value: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected a JSON object for {cls.__qualname__}")
        return cls(**{name: dec(value[name]) for name, dec in fields if name in value})

    return decode


def _converter(cls: type, convert: Callable[[Any], Any]) -> Decoder:
    def decode(value: Any) -> Any:
        return value if isinstance(value, cls) else convert(value)

    return decode


_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    datetime.datetime: datetime.datetime.fromisoformat,
    datetime.date: datetime.date.fromisoformat,
    datetime.time: datetime.time.fromisoformat,
    uuid.UUID: uuid.UUID,
    Decimal: Decimal,
}


def decoder_for(annotation: Any) -> Decoder:
    """Build a decoder that turns orjson output back into ``annotation``'s type.

    Raises TypeError naming the annotation when it cannot be decoded from JSON.
    """
    if annotation is Any or annotation is object or annotation is dataclasses.MISSING:
        return _identity
    if annotation is None or annotation is types.NoneType:
        return _none
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return decoder_for(args[0])
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in args if a is not types.NoneType]
        decoders = [decoder_for(a) for a in members]
        return _union(decoders, nullable=len(members) != len(args))
    if origin is typing.Literal:
        allowed = set(args)
        return _converter(object, lambda v: v if v in allowed else _bad_literal(v, allowed))
    if origin in (list, Sequence, typing.Sequence) or annotation in (list, Sequence):
        return _sequence(decoder_for(args[0]) if args else _identity, list)
    if origin in (set, frozenset) or annotation in (set, frozenset):
        factory: Callable[[list[Any]], Any] = (
            frozenset if (origin or annotation) is frozenset else set
        )
        return _sequence(decoder_for(args[0]) if args else _identity, factory)
    if origin is tuple or annotation is tuple:
        if not args or (len(args) == 2 and args[1] is Ellipsis):
            return _sequence(decoder_for(args[0]) if args else _identity, tuple)
        return _tuple([decoder_for(a) for a in args])
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        key, item = args if args else (str, Any)
        # JSON object keys are strings: int, UUID, enum... keys are rebuilt from them.
        key_decoder = _identity if key is str or not isinstance(key, type) else _converter(key, key)
        return _mapping(key_decoder, decoder_for(item))
    if not isinstance(annotation, type):
        raise TypeError(f"cannot decode cached values of type {annotation!r}")
    if typing.is_typeddict(annotation):
        return _mapping(_identity, _identity)
    if annotation in (str, int, float, bool):
        return _scalar(annotation)
    if dataclasses.is_dataclass(annotation):
        return _dataclass(annotation)
    validate = getattr(annotation, "model_validate", None)
    if validate is not None:
        return _converter(annotation, validate)
    if issubclass(annotation, enum.Enum):
        return _converter(annotation, annotation)
    for cls, convert in _CONVERTERS.items():
        if issubclass(annotation, cls):
            return _converter(annotation, convert)
    raise TypeError(
        f"cannot decode cached values of type {annotation.__qualname__}: return a dataclass, a "
        "pydantic model, dict, list, tuple, str, int, float, bool or None"
    )


def _bad_literal(value: Any, allowed: set[Any]) -> Any:
    raise ValueError(f"{value!r} is not one of {sorted(map(repr, allowed))}")
