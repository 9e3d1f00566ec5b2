"""Who may scrape: the client networks and the bearer token of the in-app ``/metrics``.

The check runs once per scrape, before any collection: the client address from the ASGI
scope (the direct peer, unless the server rewrites it from proxy headers) must lie in an
allowed network, and the ``authorization`` header must carry the token. The token is kept
as bytes and compared in constant time; it never appears in a message or a repr.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Collection
from typing import Any, Final

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 6750's b64token: what a bearer token may contain so it fits in a header unchanged.
_TOKEN: Final = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_HOST: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


def check_host(host: str) -> str:
    """``host`` if it is an IP address or a host name, for ``metrics_host``."""
    if isinstance(host, str):
        try:
            ipaddress.ip_address(host)
            return host
        except ValueError:
            if _HOST.fullmatch(host):
                return host
    raise ValueError(
        f"metrics_host={host!r} must be an IP address or host name to bind, e.g. "
        "'127.0.0.1' (default, this machine only) or '0.0.0.0' (every interface)"
    )


def parse_networks(allow: Collection[str] | None) -> tuple[Network, ...] | None:
    """The networks of ``metrics_allow`` (None: any client)."""
    if allow is None:
        return None
    if isinstance(allow, str):
        raise ValueError(
            f"metrics_allow={allow!r} must be a collection of networks, e.g. [{allow!r}]"
        )
    networks = []
    for network in allow:
        try:
            networks.append(ipaddress.ip_network(network, strict=False))
        except (TypeError, ValueError):
            raise ValueError(
                f"metrics_allow: {network!r} is not a network; use CIDR notation such as "
                "'10.0.0.0/8', '127.0.0.1/32' or 'fd00::/8'"
            ) from None
    if not networks:
        raise ValueError(
            "metrics_allow=[] would refuse every scrape; name the scrapers' networks, "
            "e.g. ['10.0.0.0/8'], or use metrics_path=None to serve no endpoint"
        )
    return tuple(networks)


def check_token(token: str | None) -> bytes | None:
    if token is None:
        return None
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        # The value itself is a secret: only its type and length are named.
        kind = (
            f"a {type(token).__name__} of length {len(token)}"
            if isinstance(token, str)
            else type(token).__name__
        )
        raise ValueError(
            f"metrics_token ({kind}, value not shown) must be a non-empty bearer token of "
            "letters, digits and -._~+/ (then '=' padding), e.g. secrets.token_urlsafe(32)"
        )
    return token.encode("ascii")


class MetricsGuard:
    """Decides whether a scrape may be answered; ``refusal(scope)`` is None when it may."""

    __slots__ = ("_networks", "_token")

    def __init__(self, networks: tuple[Network, ...] | None, token: bytes | None) -> None:
        self._networks = networks
        self._token = token

    def __repr__(self) -> str:
        return f"MetricsGuard(networks={self._networks!r}, token={'set' if self._token else None})"

    def refusal(self, scope: dict[str, Any]) -> int | None:
        """403 for a client outside the networks, 401 without the token, else None."""
        if self._networks is not None and not self._allowed(scope.get("client")):
            return 403
        token = self._token
        if token is not None:
            presented = b""
            for name, value in scope.get("headers", ()):
                if name.lower() == b"authorization":
                    scheme, _, credentials = value.partition(b" ")
                    if scheme.lower() == b"bearer":
                        presented = credentials.strip()
                    break
            if not hmac.compare_digest(presented, token):
                return 401
        return None

    def _allowed(self, client: Any) -> bool:
        # No client address (a Unix socket, some test clients): refused, nothing to check.
        if not client:
            return False
        try:
            address = ipaddress.ip_address(client[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        assert self._networks is not None
        return any(address in network for network in self._networks)
