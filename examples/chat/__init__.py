"""A FastAPI chat backend that streams OpenAI-style SSE from a simulated model.

Run it: ``uv run uvicorn examples.chat.app:app`` (naive mode) or
``CHAT_MODE=boosted uv run uvicorn examples.chat.app:app``.
"""
