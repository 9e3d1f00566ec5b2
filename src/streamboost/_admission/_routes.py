"""Route templates matched against a request's path, before any router has seen it.

Admission acts before the app runs, so ``scope["route"]`` is not set yet: the configured
templates are compiled once into one regular expression. ``{name}`` matches one path segment,
``{name:path}`` the rest of the path; the server's ``root_path`` is not part of the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z]+))?\}")
_CONVERTERS = {"str": "[^/]+", "int": "[0-9]+", "float": "[0-9.]+", "uuid": "[0-9a-fA-F-]+"}
_PATH = ".*"


def _pattern(template: str) -> str:
    out: list[str] = []
    at = 0
    for match in _PARAM.finditer(template):
        out.append(re.escape(template[at : match.start()]))
        kind = match.group(2) or "str"
        if kind == "path":
            out.append(_PATH)
        elif kind in _CONVERTERS:
            out.append(_CONVERTERS[kind])
        else:
            raise ValueError(
                f"route_limits key {template!r}: unknown converter {kind!r}; use one of "
                f"{sorted([*_CONVERTERS, 'path'])}"
            )
        at = match.end()
    out.append(re.escape(template[at:]))
    return "".join(out)


class RouteMatcher:
    """``match(scope)``: the first configured template the path matches, or None."""

    __slots__ = ("_names", "_regex")

    def __init__(self, templates: Iterable[str]) -> None:
        self._names = list(templates)
        alternatives = [f"(?P<r{i}>{_pattern(t)})" for i, t in enumerate(self._names)]
        self._regex = re.compile("|".join(alternatives)) if alternatives else None

    def match(self, scope: Mapping[str, Any]) -> str | None:
        regex = self._regex
        if regex is None:
            return None
        path: str = scope.get("path", "")
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        found = regex.fullmatch(path)
        if found is None:
            return None
        return self._names[int(str(found.lastgroup)[1:])]
