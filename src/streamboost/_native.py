"""Which per-chunk path runs: ``_speedups`` (C) when it was built, else ``_state_py``.

``STREAMBOOST_NO_EXTENSIONS=1`` in the environment keeps the Python one (and, at build time,
skips compiling). Both define the same base classes with the same fields; the tests run on
both.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._state_py import FlusherBase, RecordBase, ScannerBase, StreamBase

    NATIVE: bool
else:
    try:
        if os.environ.get("STREAMBOOST_NO_EXTENSIONS", "") not in ("", "0"):
            raise ImportError("STREAMBOOST_NO_EXTENSIONS is set")
        from ._speedups import FlusherBase, RecordBase, ScannerBase, StreamBase
    except ImportError:
        from ._state_py import FlusherBase, RecordBase, ScannerBase, StreamBase

        NATIVE = False
    else:
        NATIVE = True

__all__ = ["NATIVE", "FlusherBase", "RecordBase", "ScannerBase", "StreamBase"]
