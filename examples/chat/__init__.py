"""A FastAPI chat backend that streams OpenAI-style SSE from a simulated model.

Run it: ``uv run uvicorn examples.chat.app:app`` (naive mode) or
``CHAT_MODE=boosted uv run uvicorn examples.chat.app:app``.

The code is in ``src/streamboost/_cli/_demo_app/`` (``_app.py``, ``_backend.py``, ``_model.py``,
``_settings.py``, ``_store.py``): it ships inside the package so that ``streamboost demo`` runs
after ``pip install 'streamboost[demo]'``. The modules here import it back under their old
names, so ``examples.chat.app:app`` and ``from examples.chat.store import ChatWrites`` work.
"""
