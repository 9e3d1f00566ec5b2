"""Recognising, after the fact, an exception that came out of the server's send.

Body chunks that StreamBoost only counts go straight to the server's send: the app awaits the
server's own awaitable, with no coroutine of StreamBoost's around it to catch an ``OSError``.
When the app then fails, the traceback tells whether an ``OSError`` was raised inside that
send (the client is gone) or by the app itself (an error).
"""

from __future__ import annotations

from types import CodeType
from typing import Any, Final

_MAX_CHAIN: Final = 8  # causes and contexts followed


def code_of(send: Any) -> CodeType | None:
    """The code object a Python send (function or bound method) runs; None for others."""
    code = getattr(getattr(send, "__func__", send), "__code__", None)
    return code if isinstance(code, CodeType) else None


def raised_in(exc: BaseException, code: CodeType | None) -> bool:
    """True when an ``OSError`` in ``exc``'s chain came out of a frame running ``code``."""
    error: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if error is None:
            return False
        if isinstance(error, OSError):
            tb = error.__traceback__
            while tb is not None:
                if tb.tb_frame.f_code is code:
                    return True
                tb = tb.tb_next
        error = error.__cause__ or error.__context__
    return False
