"""What ``pip install streamboost`` gives: the wheel in a fresh virtualenv, outside the checkout.

The core needs the OpenTelemetry API only: a stream runs end to end with the SDK hidden by a
meta-path blocker (in this environment) and in a fresh virtualenv holding just the wheel,
uvicorn and httpx. ``streamboost demo`` runs from an empty directory after installing the
wheel with its ``demo`` extra. These are real checks (CI runs them, and fails when ``uv``
cannot build or install); packages come from uv's cache when it has them, else the index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from tests.needs import missing

from streamboost._stream import _kernel

ROOT = Path(__file__).resolve().parent.parent
API_ONLY_APP = Path(__file__).resolve().parent / "api_only_app.py"
STREAM = ROOT / "src" / "streamboost" / "_stream"
# The C kernel's source: _speedups.c and the parts it includes (one translation unit).
C_SOURCE = sorted(
    path.relative_to(ROOT).as_posix()
    for path in [STREAM / "_speedups.c", *(STREAM / "_speedups_c").glob("*.h")]
)


def _env() -> dict[str, str]:
    """The environment without this checkout's virtualenv or paths."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    if not found:
        missing("uv is not installed; install it with: python3 -m pip install uv")
        raise AssertionError("unreachable")
    return found


def _run(command: Sequence[str | Path], *, timeout: float, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert result.returncode == 0, f"{command}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _uv_cached_first(args: Sequence[str | Path], *, timeout: float) -> None:
    """``uv <args> --offline`` (uv's cache), else the same from the index."""
    uv = _uv()
    offline = subprocess.run(
        [uv, *map(str, args), "--offline"], env=_env(), capture_output=True, timeout=timeout
    )
    if offline.returncode != 0:
        _run([uv, *args], timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """streamboost's wheel, built from this checkout (with the C extension unless disabled)."""
    out = tmp_path_factory.mktemp("dist")
    _uv_cached_first(["build", "--wheel", "--out-dir", out, ROOT], timeout=300)
    (built,) = out.glob("streamboost-*.whl")
    return built


def _venv(where: Path, *requirements: str | Path) -> Path:
    _uv_cached_first(["venv", "--python", sys.executable, where], timeout=120)
    python = where / "bin" / "python"
    _uv_cached_first(["pip", "install", "--python", python, *requirements], timeout=300)
    return python


def test_a_stream_runs_with_the_opentelemetry_sdk_hidden(tmp_path: Path) -> None:
    out = _run([sys.executable, API_ONLY_APP, "--block"], cwd=tmp_path, timeout=90)
    assert out.startswith("ok streamboost <CacheStats 'api_only': hits=1 misses=1"), out


def test_the_wheel_needs_only_the_opentelemetry_api(wheel: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv", wheel, "uvicorn", "httpx")
    installed = _run([_uv(), "pip", "list", "--python", python], timeout=60)
    names = {line.split()[0] for line in installed.splitlines()[2:]}
    assert "opentelemetry-api" in names and "opentelemetry-sdk" not in names, installed
    out = _run([python, API_ONLY_APP], cwd=tmp_path, timeout=90)  # outside the checkout
    assert out.startswith("ok streamboost <CacheStats 'api_only': hits=1 misses=1"), out


def test_streamboost_demo_runs_from_an_empty_directory(wheel: Path, tmp_path: Path) -> None:
    python = _venv(tmp_path / "venv", f"{wheel}[demo]")
    empty = tmp_path / "empty"
    empty.mkdir()
    command = [python.parent / "streamboost", "demo", "--requests", "2", "--concurrency", "2",
               "--tokens", "3"]  # fmt: skip
    # stdout is a pipe here: progress lines, then the table.
    out = _run(command, cwd=empty, timeout=120)
    lines = out.splitlines()
    assert lines[0].startswith("streamboost demo: the example chat backend, naive then boosted")
    for mode in ("naive", "boosted", "boosted, no retrieval"):
        assert f"streamboost demo: {mode}: streaming 2 requests" in lines
        done = f"streamboost demo: {mode}: 2/2 streams done ("
        assert any(line.startswith(done) for line in lines), out
    header = next(line for line in lines if line.split()[:2] == ["naive", "boosted"])
    rows = {line[:32].strip(): line[32:].split() for line in lines[lines.index(header) + 2 :]}
    naive, boosted, no_retrieval = (float(v) for v in rows["TTFT p50"][::2])
    assert naive > boosted > no_retrieval >= 200  # the simulated model's own 200 ms
    assert rows["cache hit rate"] == ["-", "100%", "100%"]
    assert list(empty.iterdir()) == []  # nothing left in the directory it ran from


def _has_shared_object(names: list[str]) -> bool:
    return any(n.startswith("streamboost/_stream/_speedups.") and n.endswith(".so") for n in names)


def test_the_wheel_ships_the_c_kernel_built_not_its_source(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    source = [n for n in names if n.endswith((".c", ".h")) or "_speedups_c" in n]
    assert not source, f"C source in the wheel (pyproject.toml: wheel exclude): {source}"
    # Where this checkout's kernel is the C one, the wheel's must be too.
    assert _has_shared_object(names) == _kernel.NATIVE, names


def test_the_sdist_holds_every_part_of_the_c_kernel_and_builds(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    _uv_cached_first(["build", "--sdist", "--out-dir", out, ROOT], timeout=300)
    (sdist,) = out.glob("streamboost-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert len(C_SOURCE) > 1, C_SOURCE  # _speedups.c and its parts
    absent = [name for name in C_SOURCE if name not in names]
    assert not absent, f"missing from the sdist: {absent}"
    # The wheel built from the sdist alone compiles the kernel: no part is left behind.
    _uv_cached_first(["build", "--wheel", "--out-dir", out, sdist], timeout=300)
    (built,) = out.glob("streamboost-*.whl")
    with zipfile.ZipFile(built) as archive:
        assert _has_shared_object(archive.namelist()) == _kernel.NATIVE
