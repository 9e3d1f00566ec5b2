"""The simulated LLM streaming OpenAI chunks (code: ``streamboost._cli._demo_app._model``)."""

from streamboost._cli._demo_app._model import WORDS, generate

__all__ = ["WORDS", "generate"]
