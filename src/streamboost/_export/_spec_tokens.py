"""The token-usage part of the export spec: ``streamboost_tokens_total`` and its OTel twin.

Counted once per stream that reported usage (``_stream._usage``), at its end. The family has
a ``tenant`` label only when ``StreamBoost(tenant=...)`` is given (``TOKENS_BY_TENANT``); one
registry holds one of the two. Its own module so ``_spec`` stays under 300 lines.
"""

from __future__ import annotations

from typing import Final

from ._spec import _P, Family, OTelHistogram

TOKEN_KINDS: Final = ("prompt", "completion", "cached", "reasoning")
UNKNOWN: Final = "unknown"
"""The ``model`` label of usage without a model, the ``tenant`` label when none was given."""
TENANT_ERROR: Final = "error"
"""The ``tenant`` label when the tenant callable raised."""

_HELP: Final = (
    "Tokens the streams reported in their usage, by kind: prompt, completion, cached "
    "(prompt tokens read from a cache), reasoning (completion tokens spent reasoning)."
)
TOKENS: Final = Family(_P + "tokens", _HELP, "counter", ("route", "model", "kind"))
TOKENS_BY_TENANT: Final = Family(
    _P + "tokens", _HELP, "counter", ("route", "model", "kind", "tenant")
)

# OpenTelemetry GenAI semantic conventions: a histogram per request, token types input and
# output (cached and reasoning tokens have no token type there: Prometheus only).
TOKEN_ADVICE: Final = (
    *(1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304),
    *(16777216, 67108864),
)
OTEL_TOKENS: Final = OTelHistogram(
    "gen_ai.client.token.usage",
    "{token}",
    "Measures number of input and output tokens used.",
    TOKEN_ADVICE,
)
OTEL_TOKEN_TYPES: Final = {"prompt": "input", "completion": "output"}
