"""A histogram's ``record()`` for the attribute dicts StreamBoost builds, without their cleaning.

The SDK's ``Histogram.record`` (opentelemetry-sdk 1.4x) makes a ``Measurement`` whose
``__post_init__`` copies and validates the attributes (``_clean_attribute_value``: ABC checks
and a recursive walk, a quarter of the ~70k instructions one record costs). StreamBoost's
attribute dicts are built once per series from ``str`` keys and ``str``/``int`` values and never
changed, so they are clean already: ``recorder()`` hands the SDK's measurement consumer the
same ``Measurement`` it would get, made without that copy. Everything after it (views, readers,
exemplar filter and reservoirs, cardinality limits, temporality) is the SDK's own code.

Only for the SDK's own histogram class with the ``Measurement`` fields this was written
against; any other instrument (the API's proxy before a provider is set, another SDK, a newer
``Measurement``) gets its public ``record``. Values the SDK would refuse with a warning (not
finite, negative) and a disabled meter take the public ``record`` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from time import time_ns
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.context import Context

from ._tracing import get_current

Record = Callable[[float, dict[str, Any], Context], None]

_FIELDS: Final = ("value", "time_unix_nano", "instrument", "context", "attributes")
_INF: Final = float("inf")
# The SDK versions (from, before) whose Histogram.record this was checked against; 1.45 is
# the locked one.
_TESTED_SDK: Final = ((1, 40), (1, 50))


def _sdk_types() -> tuple[type, type] | None:
    """The SDK's histogram and ``Measurement`` classes, or None (not installed, or changed)."""
    try:
        from opentelemetry.sdk.metrics._internal.instrument import _Histogram
        from opentelemetry.sdk.metrics._internal.measurement import Measurement
        from opentelemetry.sdk.version import __version__
    except ImportError:
        return None
    # Only the SDK line whose record() this mirrors: a later one may add a step to record()
    # that a copy here would skip, so it gets the public call until it is checked.
    major, minor = (int(part) if part.isdigit() else -1 for part in __version__.split(".")[:2])
    if not _TESTED_SDK[0] <= (major, minor) < _TESTED_SDK[1]:
        return None
    if not dataclasses.is_dataclass(Measurement):
        return None
    if tuple(field.name for field in dataclasses.fields(Measurement)) != _FIELDS:
        return None
    if "__slots__" in vars(Measurement):  # its fields are filled through the instance dict
        return None
    return _Histogram, Measurement


def recorder(histogram: metrics.Histogram) -> Record:
    """``histogram.record``, or the same record without the attribute copy (see above)."""
    public: Record = histogram.record
    types = _sdk_types()
    if types is None or type(histogram) is not types[0]:
        return public
    measurement_type = types[1]
    consumer = getattr(histogram, "_measurement_consumer", None)
    is_enabled = getattr(histogram, "_is_enabled", None)
    consume = getattr(consumer, "consume_measurement", None)
    if consume is None or not callable(is_enabled):
        return public
    new = object.__new__

    def record(value: float, attributes: dict[str, Any], context: Context) -> None:
        if not 0 <= value < _INF or not is_enabled():  # NaN fails the test too
            public(value, attributes, context)  # the SDK's warning, or its disabled path
            return
        measurement: Any = new(measurement_type)
        # The frozen dataclass's fields, set in its instance dict at once (its __init__ does
        # five object.__setattr__ calls). As record() does: an empty context means the current.
        measurement.__dict__.update(
            value=value,
            time_unix_nano=time_ns(),
            instrument=histogram,
            context=context if context else get_current(),
            attributes=attributes,
        )
        consume(measurement)

    return record
