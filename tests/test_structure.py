"""The package's shape, checked from its source: no import cycles, no module over 300 lines.

The import graph is built with ``ast`` from every module of ``src/streamboost``. Every import
counts as an edge: at module level, inside functions, and inside ``if TYPE_CHECKING:`` (a cycle
hidden from the interpreter is still one for the reader). Importing ``pkg.sub`` from outside
``pkg`` also runs ``pkg/__init__``, so that is an edge too.

The two allow-lists below are empty since the send path's redesign (issue 12); an entry that
no longer holds fails the test, so they can only shrink.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "streamboost"
MAX_LINES = 300

# Modules over MAX_LINES, and import cycles (each as the set of modules it runs through),
# allowed: none. Kept as lists so an exception, should one ever be needed, is written here
# with its reason.
LONG_MODULES_ALLOWED: frozenset[str] = frozenset()
CYCLES_ALLOWED: frozenset[frozenset[str]] = frozenset()


def modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package is its __init__)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _absolute(name: str, path: Path, level: int, module: str | None) -> str:
    """The absolute name of ``from <level dots><module> import ...`` in module ``name``."""
    if level == 0:
        return module or ""
    base = name.split(".")
    if not _is_package(path):
        base.pop()
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file."""
    targets: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(name, path, node.level, node.module)
            for alias in node.names:
                # `from pkg import sub` imports the module pkg.sub; any other name is pkg's.
                sub = f"{source}.{alias.name}"
                targets.add(sub if sub in known else source)
    edges: set[str] = set()
    own_packages = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 2)}
    for target in targets:
        if target not in known:
            continue
        edges.add(target)
        # Importing pkg.sub from outside pkg runs pkg/__init__ first.
        parts = target.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent not in own_packages and parent in known:
                edges.add(parent)
    edges.discard(name)
    return edges


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def test_the_graph_sees_every_kind_of_import() -> None:
    graph = import_graph()
    # Module level, relative to a sibling package.
    assert "streamboost._export._spec" in graph["streamboost._cache._metrics"]
    # ...which runs that package's __init__ first.
    assert "streamboost._export" in graph["streamboost._cache._metrics"]
    # Inside a function.
    assert "streamboost._cli._serve" in graph["streamboost._cli._main"]
    # Inside `if TYPE_CHECKING:`.
    assert "streamboost._cache._redis" in graph["streamboost._cache._events"]
    # `from . import module`.
    assert (
        "streamboost._export.prometheus._int_sync"
        in graph["streamboost._export.prometheus._observer"]
    )


def test_cycles_are_found() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(graph) == [frozenset({"a", "b", "c"})]


def test_no_import_cycles() -> None:
    found = set(cycles(import_graph()))
    new = sorted(sorted(c) for c in found - CYCLES_ALLOWED)
    assert not new, f"import cycles: {new}"
    gone = sorted(sorted(c) for c in CYCLES_ALLOWED - found)
    assert not gone, f"fixed, remove from CYCLES_ALLOWED: {gone}"


def test_no_module_over_300_lines() -> None:
    lengths = {
        path.relative_to(SRC).as_posix(): len(path.read_text().splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    long = {name: n for name, n in sorted(lengths.items()) if n > MAX_LINES}
    assert set(long) <= LONG_MODULES_ALLOWED, f"over {MAX_LINES} lines: {long}"
    short = sorted(LONG_MODULES_ALLOWED - set(long))
    assert not short, f"now at most {MAX_LINES} lines, remove from LONG_MODULES_ALLOWED: {short}"


def test_the_c_kernel_is_in_parts_of_at_most_300_lines() -> None:
    # _speedups.c is one translation unit made of parts it includes (_speedups_c/*.h): each
    # part, and the file itself, is held to the modules' limit.
    stream = PACKAGE / "_stream"
    source = stream / "_speedups.c"
    parts = sorted((stream / "_speedups_c").glob("*.h"))
    included = [
        line.split('"')[1]
        for line in source.read_text().splitlines()
        if line.startswith('#include "')
    ]
    # Every part is included, once: a part left out is not compiled, one included twice does
    # not compile (its statics defined again).
    assert sorted(included) == [f"_speedups_c/{p.name}" for p in parts], included
    lengths = {
        path.relative_to(SRC).as_posix(): len(path.read_text().splitlines())
        for path in [source, *parts]
    }
    long = {name: n for name, n in lengths.items() if n > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"
