"""StreamBoost for Django ASGI apps: route templates as labels, a warning for buffered streams.

Usage::

    application = StreamBoost(get_asgi_application(), route=streamboost_django.route)

with ``"streamboost_django.middleware"`` in ``settings.MIDDLEWARE``. The middleware writes the
resolved URL pattern (``request.resolver_match.route``, e.g. ``/chat/<int:room>/stream``, with
a leading slash so every label starts with one) into the ASGI scope, where ``route`` reads it.
"""

from __future__ import annotations

from ._middleware import SCOPE_KEY, middleware, route

__all__ = ["SCOPE_KEY", "middleware", "route"]
