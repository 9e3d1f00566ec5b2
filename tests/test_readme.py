"""README.md stays true: its Python examples run, its option tables match the signatures, and
it names every public name and command-line flag."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from subprocess import PIPE
from typing import Any

import pytest

import streamboost
from streamboost._cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

# Run each example as a script; then, if it defines a streaming endpoint on `app`, serve `app`
# on real uvicorn (lifespan included), read the stream, and stop the server (its shutdown drains
# deferred work). A `DB` dict in the example must hold what the writers wrote by then.
HARNESS = """
import re, runpy, sys
import httpx
from streamboost._cli._loopback import uvicorn_in_thread

path = sys.argv[1]
code = open(path).read()
ns = runpy.run_path(path, run_name="__main__")
route = re.search(r'@\\w+\\.(get|post)\\("(/chat/stream)"\\)', code)
if route:
    with uvicorn_in_thread(ns["app"]) as base:
        body = {"user_id": "u1", "session_id": "s1", "message": "hi"}
        if route[1] == "post":
            response = httpx.post(base + route[2], json=body, timeout=10)
        else:
            response = httpx.get(base + route[2], timeout=10)
        assert response.status_code == 200, response.text
        assert response.text.count("data:") >= 2, response.text
        assert httpx.get(base + "/metrics", timeout=10).text.count("streamboost_") > 10
    if "DB" in ns:
        assert ns["DB"], "the deferred writer wrote nothing before shutdown ended"
    print("served", route[2])
"""


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def section(heading: str) -> str:
    """The text from a heading line starting with ``heading`` to the next heading."""
    match = re.search(rf"^{re.escape(heading)}.*?$(.*?)(?=^#)", README, flags=re.S | re.M)
    assert match, f"README has no heading starting with {heading!r}"
    return match.group(1)


def test_quick_start_is_exactly_two_commands() -> None:
    quick = section("## Quick start")
    (commands,) = re.findall(r"```bash\n(.*?)```", quick, flags=re.S)
    assert commands.splitlines() == ["uv run streamboost demo", "uv run pytest"]


def test_every_python_example_runs(tmp_path: Path) -> None:
    examples = blocks("python")
    assert len(examples) >= 5
    harness = tmp_path / "harness.py"
    harness.write_text(HARNESS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    processes = []
    for i, code in enumerate(examples):
        path = tmp_path / f"example_{i}.py"
        path.write_text(code)
        command = [sys.executable, str(harness), str(path)]
        processes.append(
            (code, subprocess.Popen(command, cwd=tmp_path, env=env, stdout=PIPE, stderr=PIPE))
        )
    failures = []
    for code, process in processes:
        out, err = process.communicate(timeout=180)  # a loaded CI machine
        if process.returncode != 0:
            failures.append(f"{code[:300]}\n---\n{err.decode()[-3000:]}")
        elif '"/chat/stream")' in code:
            assert "served /chat/stream" in out.decode(), code[:300]
    assert not failures, "\n\n".join(failures)
    assert sum('"/chat/stream")' in code for code in examples) >= 2


# Documented callables: the heading that introduces each table, and the callable.
DOCUMENTED: dict[str, Callable[..., Any]] = {
    "### `StreamBoost(": streamboost.StreamBoost,
    "### `CoalesceConfig(": streamboost.CoalesceConfig,
    "### `MetricBuckets(": streamboost.MetricBuckets,
    "### `AdmissionConfig(": streamboost.AdmissionConfig,
    "### `SharedLimit(": streamboost.SharedLimit,
    "### `phase(": streamboost.phase,
    "### `gather_phases(": streamboost.gather_phases,
    "### `Cache(": streamboost.Cache,
    "### `cached(": streamboost.cached,
    "### `configure_defer(": streamboost.configure_defer,
    "### `DeferConfig(": streamboost.DeferConfig,
    "### `RetryPolicy(": streamboost.RetryPolicy,
    "### `DeferredWriter(": streamboost.DeferredWriter,
    "### `delta_buffer(": streamboost.delta_buffer,
}

# Type aliases of the annotations, spelled out in the README.
ALIASES = {
    "Clock": "Callable[[], float]",
    "Tags": "Sequence[str] | Callable[..., Sequence[str]]",
}


def table_rows(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("|")]
    rows = [re.split(r"(?<!\\)\|", line)[1:-1] for line in lines[2:]]  # past head and rule
    return [[cell.strip().replace("\\|", "|") for cell in row] for row in rows]


def documented_parameters(target: Callable[..., Any], listed: set[str]) -> dict[str, Any]:
    """Every option (a default, or keyword-only) of ``target``; required positional ones
    (``app``, ``sink``) are named in the heading and only checked when the table lists them."""
    signature = inspect.signature(target)
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {
        name: p
        for name, p in signature.parameters.items()
        if p.kind not in skip
        and name != "self"
        and (p.default is not p.empty or p.kind is p.KEYWORD_ONLY or name in listed)
    }


@pytest.mark.parametrize("heading", sorted(DOCUMENTED))
def test_option_tables_match_the_signatures(heading: str) -> None:
    target = DOCUMENTED[heading]
    rows = table_rows(section(heading))
    assert rows, f"no option table under {heading}"
    parameters = documented_parameters(target, {row[0].strip("`") for row in rows})
    assert [row[0].strip("`") for row in rows] == list(parameters)
    namespace = {name: getattr(streamboost, name) for name in streamboost.__all__}
    for name, kind, default, meaning in rows:
        parameter = parameters[name.strip("`")]
        annotation = str(parameter.annotation)
        for alias, spelled in ALIASES.items():
            annotation = re.sub(rf"\b{alias}\b", spelled, annotation)
        if annotation != "Any":  # documented by what it accepts
            assert kind.strip("`") == annotation, name
        first = re.match(r"`([^`]*)`", default)
        if parameter.default is inspect.Parameter.empty:
            assert default == "required", name
        else:
            assert first, f"{name}: the default cell must start with the value in backticks"
            assert eval(first.group(1), namespace) == parameter.default, name
        assert meaning, name


def test_every_public_name_is_documented() -> None:
    missing = [name for name in streamboost.__all__ if f"`{name}" not in README]
    assert not missing


def test_command_line_flags_exist() -> None:
    text = section("## Command line")
    parser = build_parser()
    helps = []
    for command in (["demo"], ["dashboards", "export"], ["worker"]):
        with pytest.raises(SystemExit):
            parser.parse_args([*command, "--help"])
    subparsers = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    stack = [p for action in subparsers for p in action.choices.values()]  # type: ignore[attr-defined]
    while stack:
        sub = stack.pop()
        helps.append(sub.format_help())
        for action in sub._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                stack.extend(action.choices.values())  # type: ignore[attr-defined]
    every_help = "\n".join(helps)
    for flag in set(re.findall(r"--[a-z][a-z-]+", text)):
        assert flag in every_help, flag


def test_examples_are_valid_python_as_written() -> None:
    for code in blocks("python"):
        ast.parse(code)
