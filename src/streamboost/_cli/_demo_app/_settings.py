"""Latencies of the simulated model and of the work a chat backend does before streaming."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Literal

Mode = Literal["naive", "boosted"]


@dataclass(frozen=True, slots=True)
class Latencies:
    """Seconds each simulated backend call takes (defaults add up to 1.3 s)."""

    load_profile: float = 0.150
    load_history: float = 0.200
    retrieval: float = 0.500
    create_session: float = 0.150
    save_message: float = 0.300


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """How the example app behaves.

    ``mode="naive"`` does the pre-stream work one call after another and writes inline;
    ``mode="boosted"`` is the same app with streamboost's tools.
    """

    mode: Mode = "naive"
    model_ttft: float = 0.200  # the simulated model's own time to first token
    tokens_per_second: float = 50.0
    max_tokens: int = 64
    retrieval: bool = True  # retrieval-augmented generation on or off
    latencies: Latencies = field(default_factory=Latencies)

    def __post_init__(self) -> None:
        if self.mode not in ("naive", "boosted"):
            raise ValueError(f"mode={self.mode!r}: use 'naive' or 'boosted'")
        if self.tokens_per_second <= 0:
            raise ValueError(f"tokens_per_second={self.tokens_per_second!r} must be > 0 (try 50.0)")
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens={self.max_tokens!r} must be >= 1")
        if self.model_ttft < 0:
            raise ValueError(f"model_ttft={self.model_ttft!r} must be >= 0")

    @classmethod
    def from_env(cls) -> ChatSettings:
        """Read ``CHAT_MODE``, ``CHAT_MODEL_TTFT``, ``CHAT_TOKENS_PER_SECOND`` and friends."""
        env = os.environ
        base = cls()
        return replace(
            base,
            mode=env.get("CHAT_MODE", base.mode),  # type: ignore[arg-type]
            model_ttft=float(env.get("CHAT_MODEL_TTFT", base.model_ttft)),
            tokens_per_second=float(env.get("CHAT_TOKENS_PER_SECOND", base.tokens_per_second)),
            max_tokens=int(env.get("CHAT_MAX_TOKENS", base.max_tokens)),
            retrieval=env.get("CHAT_RETRIEVAL", "1") not in ("0", "false", "off"),
        )
