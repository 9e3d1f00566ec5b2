"""The example chat backend, ``create_app(ChatSettings(mode=...))``.

The code is ``streamboost._cli._demo_app._app`` (shipped in the package for the demo).

``app`` is built from the environment (``CHAT_MODE``, see ``settings``), for
``uvicorn examples.chat.app:app``.
"""

from streamboost._cli._demo_app._app import (
    ChatRequest,
    backend_of,
    boosted_prestream,
    cache_loaders,
    create_app,
    naive_prestream,
)

__all__ = [
    "ChatRequest",
    "app",
    "backend_of",
    "boosted_prestream",
    "cache_loaders",
    "create_app",
    "naive_prestream",
]

app = create_app()
