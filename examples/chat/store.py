"""Where the boosted example persists (code: ``streamboost._cli._demo_app._store``)."""

from streamboost._cli._demo_app._store import (
    ChatWrites,
    PostgresStore,
    Row,
    SQLiteStore,
    Store,
    open_store,
)

__all__ = ["ChatWrites", "PostgresStore", "Row", "SQLiteStore", "Store", "open_store"]
