"""streamboost: fast, observable streaming for ASGI apps."""

from ._config import CoalesceConfig
from ._middleware import StreamBoost

__all__: list[str] = [
    "CoalesceConfig",
    "StreamBoost",
]
