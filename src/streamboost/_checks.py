"""Type checks of numeric options, with messages that name the value and the fix.

Every option in seconds or in counts goes through ``seconds()`` or ``count()`` before its range
check, so ``window='50ms'`` or ``max_batch=2.5`` fail with a sentence instead of a raw
comparison error, and ``True`` is not taken for 1. A string that reads as a duration gets the
number it meant (``'50ms'`` -> ``0.05``). ``unit_mistake()`` warns about a value that is
almost surely milliseconds written where seconds are expected.
"""

from __future__ import annotations

import math
import re
import warnings
from typing import Final

_DURATION: Final = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|seconds?)?\s*", re.I)


def _meant(value: str) -> float | None:
    """The seconds a string such as ``'50ms'``, ``'0.05 s'`` or ``'2'`` stands for."""
    match = _DURATION.fullmatch(value)
    if match is None:
        return None
    number = float(match.group(1))
    return number / 1000 if (match.group(2) or "").lower() == "ms" else number


def seconds(name: str, value: object, *, default: object, none: bool = False) -> None:
    """``value`` must be an int or a float (not a bool, not NaN), or None when ``none``."""
    if value is None and none:
        return
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{name}=nan must be a number of seconds, e.g. {name}={default!r}")
        return
    hint = f"e.g. {name}={default!r}"
    if isinstance(value, str) and (meant := _meant(value)) is not None:
        hint = f"did you mean {name}={meant:g}?"
    or_none = " or None" if none else ""
    raise TypeError(
        f"{name}={value!r} must be a number of seconds (int or float){or_none}, not "
        f"{type(value).__name__}: {hint}"
    )


def count(name: str, value: object, *, default: object, none: bool = False) -> None:
    """``value`` must be an int (not a bool, not a float), or None when ``none``."""
    if value is None and none:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        return
    hint = f"e.g. {name}={default!r}"
    if isinstance(value, float) and value.is_integer():
        hint = f"pass {name}={int(value)}"
    elif isinstance(value, str) and value.strip().isdigit():
        hint = f"pass {name}={int(value)} (a number, not a string)"
    or_none = " or None" if none else ""
    raise TypeError(f"{name}={value!r} must be an int{or_none}, not {type(value).__name__}: {hint}")


def number(name: str, value: object, *, default: object) -> None:
    """``value`` must be an int or a float (not a bool, not NaN): a factor, not a duration."""
    real = isinstance(value, (int, float)) and not isinstance(value, bool)
    if real and not (isinstance(value, float) and math.isnan(value)):
        return
    raise TypeError(
        f"{name}={value!r} must be a number (int or float), not {type(value).__name__}: "
        f"e.g. {name}={default!r}"
    )


def flag(name: str, value: object, *, default: bool) -> None:
    """``value`` must be True or False (``1`` or ``'yes'`` are refused, not guessed)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name}={value!r} must be True or False (default {default!r})")


def unit_mistake(
    name: str, value: float, *, limit: float, default: float, why: str, stacklevel: int
) -> None:
    """Warn when ``value >= limit`` seconds, which is almost surely milliseconds (``window=50``).

    A warning, not an error: such values have uses (a once-a-second progress feed, a test
    that must never see the timer fire), but passing them by mistake must not go unnoticed.
    """
    if value >= limit:
        warnings.warn(
            f"{name}={value!r} is in seconds: {why}. Did you mean {name}={value / 1000:g} "
            f"({value:g} ms)? (default {default!r}; values under {limit:g} s do not warn)",
            UserWarning,
            stacklevel=stacklevel + 1,
        )
