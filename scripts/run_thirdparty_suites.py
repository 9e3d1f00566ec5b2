"""Run Starlette's, FastAPI's and sse-starlette's own test suites bare and with every app they
build wrapped in StreamBoost; print the counts and every test that passes bare but fails wrapped.

    uv run --frozen python scripts/run_thirdparty_suites.py [--suite starlette] [--workdir DIR]

It downloads the sdists of the versions installed in this project's environment (their code is
never committed here), makes a throwaway virtualenv with each suite's test dependencies, and
runs pytest twice per suite: bare, and with ``-p thirdparty_wrap`` (scripts/thirdparty_wrap.py),
which wraps the app given to ``TestClient`` and ``httpx.ASGITransport`` in ``StreamBoost(app,
metrics=False, metrics_path=None, otel=False)``. StreamBoost is imported from this checkout's
``src`` (with its C extension when built; ``STREAMBOOST_NO_EXTENSIONS=1`` for the Python path).

Slow (minutes): a check for developers, not part of the test suite. Needs PyPI.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Each suite's test dependencies (from its pyproject's test group, without linters, coverage
# and docs tools), and the pytest arguments that select its unit tests.
SUITES: dict[str, dict[str, list[str]]] = {
    "starlette": {
        "deps": [
            "starlette[full]",
            "httpx2[zstd]",
            "blockbuster",
            "importlib-metadata",
            "opentelemetry-sdk",
            "trio",
            "typing_extensions",
        ],
        "args": ["tests"],
    },
    "fastapi": {
        "deps": [
            "fastapi[all]",
            "opentelemetry-instrumentation-fastapi",
            "logfire",
            "sentry-sdk",
            "opentelemetry-sdk",
            "opentelemetry-exporter-otlp-proto-http",
            "httpx",
            "httpx2",
            "python-slugify",
            "anyio[trio]",
            "dirty-equals",
            "flask",
            "inline-snapshot",
            "pwdlib[argon2]",
            "pyjwt",
            "pyyaml",
            "sqlmodel",
            "strawberry-graphql",
            "typer",
            "a2wsgi",
            "pytest-xdist",
        ],
        # Benchmarks and the docs' translation checks are not about serving.
        "args": ["tests", "--ignore=tests/benchmarks", "--ignore=tests/memory_benchmarks"],
    },
    "sse-starlette": {
        "deps": [
            "asgi-lifespan",
            "httpx2",
            "httpx",
            "pytest-asyncio",
            "uvicorn",
            "portend",
            "psutil",
            "tenacity",
        ],
        # Integration tests start Docker containers.
        "args": ["tests", "-m", "not integration and not experimentation"],
    },
}


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kwargs)  # type: ignore[call-overload, no-any-return]


def fetch(python: Path, name: str, version: str, workdir: Path) -> Path:
    """Download and unpack ``name==version``'s sdist; return its source directory."""
    dist = workdir / "dist"
    dist.mkdir(exist_ok=True)
    run(
        [str(python), "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q",
         "-d", str(dist), f"{name}=={version}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    stem = name.replace("-", "_")
    (archive,) = [p for p in dist.iterdir() if p.name.lower().startswith(f"{stem}-{version}")]
    with tarfile.open(archive) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / archive.name.removesuffix(".tar.gz")


def make_venv(name: str, version: str, workdir: Path) -> Path:
    """A virtualenv with the suite's package, its test deps and StreamBoost's dependencies."""
    venv = workdir / f"venv-{name}"
    python = venv / "bin" / "python"
    if not python.exists():
        run(["uv", "venv", "-q", "--seed", "--python", sys.executable, str(venv)])
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = [f"{n}=={importlib.metadata.version(n)}" for n in ("starlette", "anyio")]
    if name != "starlette":
        pins.append(f"{name}=={version}")
    deps = [*SUITES[name]["deps"], *project["dependencies"], "pytest", "pytest-timeout"]
    run(["uv", "pip", "install", "-q", "--python", str(python), *deps, *pins])
    return python


def pytest_outcomes(
    name: str, python: Path, source: Path, wrapped: bool, xml: Path
) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT / "src"), str(ROOT / "scripts")]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    cmd = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=60",
           "--continue-on-collection-errors",
           f"--junitxml={xml}", *SUITES[name]["args"]]  # fmt: skip
    if wrapped:
        cmd[3:3] = ["-p", "thirdparty_wrap"]
    subprocess.run(cmd, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    outcomes: dict[str, str] = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        test = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            outcomes[test] = "failed"
        elif "skipped" in kinds:
            outcomes[test] = "skipped"
        else:
            outcomes[test] = "passed"
    return outcomes


def check(name: str, workdir: Path) -> list[str]:
    version = importlib.metadata.version(name)
    python = make_venv(name, version, workdir)
    source = fetch(python, name, version, workdir)
    bare = pytest_outcomes(name, python, source, False, workdir / f"{name}-bare.xml")
    wrapped = pytest_outcomes(name, python, source, True, workdir / f"{name}-wrapped.xml")

    def count(outcomes: dict[str, str], kind: str) -> int:
        return sum(1 for value in outcomes.values() if value == kind)

    broken = sorted(t for t, o in bare.items() if o == "passed" and wrapped.get(t) != "passed")
    print(f"{name} {version}:")
    for label, outcomes in (("bare", bare), ("wrapped", wrapped)):
        print(
            f"  {label:8} {count(outcomes, 'passed'):5} passed {count(outcomes, 'failed'):4} "
            f"failed {count(outcomes, 'skipped'):4} skipped"
        )
    print(f"  pass bare, fail wrapped: {len(broken)}")
    for test in broken:
        print(f"    {test}")
    return broken


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", choices=sorted(SUITES), action="append")
    parser.add_argument("--workdir", type=Path, help="keep downloads and venvs here (reused)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="streamboost-thirdparty-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        broken = [t for name in args.suite or list(SUITES) for t in check(name, workdir)]
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
