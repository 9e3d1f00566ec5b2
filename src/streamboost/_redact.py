"""``redact_url``: a URL fit for a message, a log line or a repr, without its password."""

from __future__ import annotations

import re

_QUERY_SECRET = re.compile(r"(?i)([?&](?:password|pass|pwd)=)[^&#]*")


def redact_url(url: str) -> str:
    """``url`` with the password of its userinfo (and a ``password=`` query) as ``***``."""
    scheme, sep, rest = url.partition("://")
    if sep:
        end = len(rest)
        for stop in "/?#":
            at = rest.find(stop)
            if at >= 0:
                end = min(end, at)
        netloc = rest[:end]
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:***@{host}" if colon else f"***@{host}"
            url = f"{scheme}://{netloc}{rest[end:]}"
    return _QUERY_SECRET.sub(r"\1***", url)
