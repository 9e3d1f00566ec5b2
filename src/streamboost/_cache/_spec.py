"""What the Cache needs to know about one decorated function."""

from __future__ import annotations

import typing
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._codec import Decoder, decoder_for
from ._keys import KeyBuilder

Tags = Sequence[str] | Callable[..., Sequence[str]]


class LoaderSpec:
    """One cached function: the loader, its key builder, TTLs, tags and return decoder."""

    __slots__ = ("_decoder", "func", "func_id", "keys", "lock", "stale_ttl", "tags", "ttl")

    def __init__(
        self,
        func: Callable[..., Awaitable[Any]],
        *,
        func_id: str,
        keys: KeyBuilder,
        ttl: float,
        stale_ttl: float,
        tags: Tags,
        lock: bool,
    ) -> None:
        self.func = func
        self.func_id = func_id
        self.keys = keys
        self.ttl = ttl
        self.stale_ttl = stale_ttl
        self.tags = tags
        self.lock = lock
        self._decoder: Decoder | None = None

    def tags_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, ...]:
        tags = self.tags(*args, **kwargs) if callable(self.tags) else self.tags
        return tuple(tags)

    @property
    def decoder(self) -> Decoder:
        """Built on first use: the return annotation may name a class defined after the def."""
        if self._decoder is None:
            hints = typing.get_type_hints(self.func)
            self._decoder = decoder_for(hints.get("return", Any))
        return self._decoder
