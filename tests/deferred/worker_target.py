"""A sync sink for the ``streamboost worker`` test: appends one JSON line per entry to SB_OUT."""

from __future__ import annotations

import os

import orjson

from streamboost import Entry


def sink(entries: list[Entry[int]]) -> None:
    with open(os.environ["SB_OUT"], "ab") as file:
        file.write(b"".join(orjson.dumps([e.key, e.item]) + b"\n" for e in entries))
