"""streamboost: fast, observable streaming for ASGI apps."""

__all__: list[str] = []
