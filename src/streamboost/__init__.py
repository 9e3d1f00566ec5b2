"""streamboost: fast, observable streaming for ASGI apps."""

from ._config import CoalesceConfig
from ._middleware import StreamBoost
from ._phases import gather_phases, phase

__all__: list[str] = [
    "CoalesceConfig",
    "StreamBoost",
    "gather_phases",
    "phase",
]
