"""The example chat backend that ``streamboost demo`` runs, shipped inside the package.

It lives here, not only in the repository's ``examples/chat/`` (which imports it back), so that
``pip install 'streamboost[demo]'`` and ``streamboost demo`` work in any directory. It needs the
``demo`` extra (FastAPI; the demo itself also runs uvicorn and httpx). SQLite by default;
``CHAT_DATABASE_URL=postgresql://...`` needs asyncpg, ``STREAMBOOST_CACHE_URL=redis://...`` the
``redis`` extra.
"""
