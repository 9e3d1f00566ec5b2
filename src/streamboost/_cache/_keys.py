"""Canonical, collision-proof cache keys, and the refusal of per-request parameters.

A key is ``<namespace>:<module.qualname>:v<version>:<JSON array of the bound arguments>``.
Each argument is written in a type-tagged form (``tagged``): str, int, float, bool and None
are JSON scalars, which JSON already keeps apart (``1``, ``1.0``, ``true``, ``"1"``); every
other value is an array whose first item is a tag, and the class's qualified name for
dataclasses, enums, models and subclasses. So ``Admin(id=1)``, ``Guest(id=1)``, ``{"id": 1}``,
``Role.ADMIN`` and ``1`` all key apart, and no argument can forge a delimiter.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import inspect
import math
import re
import typing
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import orjson

from ._errors import UnsafeCacheKey

# Argument types orjson writes unambiguously: the hit path encodes them with one dumps().
NATIVE = frozenset({str, int, float, bool, type(None)})
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # orjson's integer range
_VALUE_TYPES = (datetime.date, datetime.time, datetime.timedelta, uuid.UUID, Decimal)
_BUILTIN_BASES: tuple[Callable[[Any], Any], ...] = (
    int, float, str, bytes, list, tuple, dict, set, frozenset,
)  # fmt: skip


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _sort_key(item: Any) -> bytes:
    return orjson.dumps(item[0] if isinstance(item, tuple) else item)


def tagged(obj: Any) -> Any:
    """``obj`` as JSON-native data that keeps its type: equal only for equal typed values."""
    cls = type(obj)
    if cls is str:
        if obj.isascii():
            return obj
        try:
            obj.encode()
        except UnicodeEncodeError:  # a lone surrogate: orjson refuses it, hex keeps it exact
            return ["X", obj.encode("utf-8", "surrogatepass").hex()]
        return obj
    if cls is int:
        return obj if _INT_MIN <= obj <= _INT_MAX else ["I", str(obj)]
    if cls is float:
        return obj if math.isfinite(obj) else ["f", repr(obj)]
    if cls is bool or obj is None:
        return obj
    if cls is list:
        return ["l", *map(tagged, obj)]
    if cls is tuple:
        return ["t", *map(tagged, obj)]
    if cls is dict:
        pairs = sorted(((tagged(k), tagged(v)) for k, v in obj.items()), key=_sort_key)
        return ["d", *(list(p) for p in pairs)]
    if cls is set or cls is frozenset:
        return ["S" if cls is set else "F", *sorted(map(tagged, obj), key=_sort_key)]
    if cls is bytes:
        return ["B", obj.hex()]
    return _tagged_object(obj, cls)


def _tagged_object(obj: Any, cls: type) -> Any:
    if isinstance(obj, enum.Enum):
        return ["E", _name(cls), tagged(obj.value)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = dataclasses.fields(obj)
        return ["D", _name(cls), *([f.name, tagged(getattr(obj, f.name))] for f in fields)]
    dump = getattr(obj, "model_dump", None)
    if dump is not None and not isinstance(obj, type):
        # Attributes, not the dump: a nested model keeps its own class name.
        items = dump().items()
        return ["M", _name(cls), *([k, tagged(getattr(obj, k, v))] for k, v in items)]
    if isinstance(obj, _VALUE_TYPES):
        return ["V", _name(cls), str(obj)]
    for base in _BUILTIN_BASES:
        if isinstance(obj, base):  # type: ignore[arg-type]  # a subclass (NamedTuple, str subclass...): name + plain value
            return ["C", _name(cls), tagged(base(obj))]
    raise TypeError(
        f"cannot build a cache key from an argument of type {_name(cls)}: use str, int, float, "
        "bool, None, list, tuple, dict, set, a dataclass, an enum, a pydantic model, a UUID, a "
        "date/time or a Decimal; or pass key=('name', ...) to key by some parameters, or "
        "key=callable returning such a value"
    )


def encode_values(values: Sequence[Any]) -> bytes:
    return orjson.dumps([tagged(v) for v in values])


# Class names (anywhere in the MRO) that carry per-request or per-user data.
_UNSAFE_TYPES = {
    "HTTPConnection": "the request",
    "Request": "the request",
    "WebSocket": "the WebSocket connection",
    "Headers": "the request headers",
    "MutableHeaders": "the request headers",
    "HTTPAuthorizationCredentials": "credentials",
    "HTTPBasicCredentials": "credentials",
    "SecurityScopes": "security scopes",
}
# fastapi.params classes used as defaults or Annotated metadata.
_UNSAFE_PARAMS = {"Header": "a request header", "Cookie": "a cookie", "Security": "credentials"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _type_reason(tp: Any) -> str | None:
    if isinstance(tp, str):
        for word in _WORD.findall(tp):
            if word in _UNSAFE_TYPES:
                return _UNSAFE_TYPES[word]
        return None
    if isinstance(tp, type):
        for cls in tp.__mro__:
            if cls.__name__ in _UNSAFE_TYPES and cls.__module__.startswith(
                ("starlette", "fastapi")
            ):
                return _UNSAFE_TYPES[cls.__name__]
        return None
    if typing.get_origin(tp) is typing.Annotated:
        base, *metadata = typing.get_args(tp)
        for meta in metadata:
            reason = _marker_reason(meta)
            if reason:
                return reason
        return _type_reason(base)
    for arg in typing.get_args(tp):
        reason = _type_reason(arg)
        if reason:
            return reason
    return None


def _marker_reason(obj: Any) -> str | None:
    """A fastapi.params.Header/Cookie/Security marker, or Depends on a security scheme."""
    for cls in type(obj).__mro__:
        if cls.__module__.startswith("fastapi") and cls.__name__ in _UNSAFE_PARAMS:
            return _UNSAFE_PARAMS[cls.__name__]
    dependency = getattr(obj, "dependency", None)
    if dependency is not None and any(
        cls.__name__ == "SecurityBase" for cls in type(dependency).__mro__
    ):
        return "credentials"
    return None


def refuse_unsafe_parameters(func: Callable[..., Any], func_id: str) -> None:
    """Raise UnsafeCacheKey when ``func`` takes a per-request object as an argument."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # forward references not defined yet: fall back to the raw strings
        hints = {}
    for name, param in inspect.signature(func).parameters.items():
        annotation = hints.get(name, param.annotation)
        reason = _type_reason(annotation)
        if reason is None and param.default is not inspect.Parameter.empty:
            reason = _marker_reason(param.default)
        if reason is not None:
            raise UnsafeCacheKey(
                f"@cached {func_id}: parameter {name!r} is {reason}. A key built from it is "
                "either new on every request (no hits) or blind to who asks (one user's value "
                "served to another). Key by user instead: resolve the user in an uncached "
                "dependency, e.g. `async def current_user_id(creds=Depends(bearer)) -> str`, "
                "and cache a function of it: `@cached(ttl=60) async def load_profile(user_id: "
                "str = Depends(current_user_id))`."
            )


class KeyBuilder:
    """Turns a call's arguments into the argument part of a key, the same for f(1) and f(x=1)."""

    __slots__ = ("_defaults", "_names", "_positional", "_selected", "_signature", "_user_key")

    def __init__(
        self,
        func: Callable[..., Any],
        key: Sequence[str] | Callable[..., Any] | None,
        func_id: str,
    ) -> None:
        self._signature = inspect.signature(func)
        params = list(self._signature.parameters.values())
        simple = all(p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
        self._names: tuple[str, ...] | None = tuple(p.name for p in params) if simple else None
        self._positional = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self._defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self._user_key: Callable[..., Any] | None = None
        self._selected: tuple[int, ...] | None = None
        if callable(key):
            self._user_key = key
        elif key is not None:
            if isinstance(key, str):
                raise TypeError(f"key={key!r} must be a tuple of parameter names, e.g. ({key!r},)")
            names = [p.name for p in params]
            unknown = [k for k in key if k not in names]
            if unknown:
                raise TypeError(
                    f"@cached {func_id}: key names {unknown} are not parameters {names}"
                )
            self._selected = tuple(names.index(k) for k in key)

    @property
    def fast(self) -> bool:
        """True when ``f(*args)`` with every parameter given positionally is already canonical."""
        return (
            self._user_key is None
            and self._selected is None
            and self._names is not None
            and len(self._names) == self._positional
        )

    @property
    def positional(self) -> int:
        return self._positional

    def values(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        names = self._names
        if names is not None and len(args) <= self._positional:
            try:
                bound = args + tuple(
                    kwargs[n] if n in kwargs else self._defaults[n] for n in names[len(args) :]
                )
            except KeyError:
                bound = ()  # a required argument is missing: let inspect raise the TypeError
            if bound and len(kwargs) + len(args) <= len(names):
                return bound
        call = self._signature.bind(*args, **kwargs)
        call.apply_defaults()
        return tuple(call.arguments.values())

    def encode(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
        if self._user_key is not None:
            return orjson.dumps(tagged(self._user_key(*args, **kwargs)))
        values = self.values(args, kwargs)
        if self._selected is not None:
            values = tuple(values[i] for i in self._selected)
        return encode_values(values)
