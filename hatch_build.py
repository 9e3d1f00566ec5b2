"""Hatchling build hook: compile the optional C extension ``streamboost._stream._speedups``.

The extension is an accelerator, never a requirement: when it cannot be built (no compiler, no
Python headers, an error in the C file) the build warns and goes on as pure Python, and the
package falls back to its Python code paths. ``STREAMBOOST_NO_EXTENSIONS=1`` skips compiling.

Wheels get the shared object through ``force_include`` and a platform tag. Editable installs
(``uv sync`` of this project) import from ``src/``, so the shared object is written there.
"""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

MODULE = "streamboost._stream._speedups"
SOURCE = Path("src", "streamboost", "_stream", "_speedups.c")
PACKAGE_DIR = Path("src", "streamboost", "_stream")
NO_EXTENSIONS_ENV = "STREAMBOOST_NO_EXTENSIONS"
# -O2 after the interpreter's own CFLAGS (which may say -O3), so it is the level that applies.
COMPILE_ARGS = ["-O2", "-Wall"]


class SpeedupsBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        self._tmpdir: str | None = None
        editable = version == "editable"
        root = Path(self.root)
        if os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0"):
            self._warn(f"{NO_EXTENSIONS_ENV} is set: building {MODULE} is skipped, pure Python")
            if editable:
                self._remove_importable(root)
            return
        self._tmpdir = tempfile.mkdtemp(prefix="streamboost-build-")
        built = self._compile(root, Path(self._tmpdir))
        if built is None:
            if editable:
                # A stale shared object would still be imported, hiding that the C file did
                # not build.
                self._remove_importable(root)
            return
        # Tagged for this interpreter and platform, for the editable wheel too: uv's cache then
        # does not hand an editable build made for another interpreter to this one.
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        if editable:
            target = root / PACKAGE_DIR / built.name
            # Replace rather than overwrite: a running process may have the old file mapped.
            staged = target.with_name(target.name + ".tmp")
            shutil.copyfile(built, staged)
            os.replace(staged, target)
        else:
            build_data["force_include"][str(built)] = f"streamboost/_stream/{built.name}"

    def finalize(self, version: str, build_data: dict[str, Any], artifact_path: str) -> None:
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _compile(self, root: Path, tmpdir: Path) -> Path | None:
        """Build the extension into ``tmpdir``; its path, or None (after a warning) on failure."""
        try:
            from setuptools import Distribution, Extension
            from setuptools.command.build_ext import build_ext
            from setuptools.errors import BaseError, CCompilerError
        except ImportError as exc:
            self._warn(f"cannot build {MODULE}, continuing as pure Python", str(exc))
            return None
        ext = Extension(MODULE, [str(SOURCE)], extra_compile_args=COMPILE_ARGS)
        dist = Distribution({"name": "streamboost", "ext_modules": [ext]})
        dist.script_name = "hatch_build.py"
        cmd = build_ext(dist)
        cmd.build_lib = str(tmpdir / "lib")
        cmd.build_temp = str(tmpdir / "temp")
        cmd.inplace = False
        cwd = os.getcwd()
        # Relative source paths keep absolute build paths out of the object files.
        os.chdir(root)
        try:
            cmd.ensure_finalized()
            cmd.run()
            built = Path(cmd.get_ext_fullpath(MODULE))
        except (BaseError, CCompilerError, OSError) as exc:
            self._warn(
                f"compiling {SOURCE.as_posix()} failed, continuing as pure Python "
                "(uv: rerun with -v to see the compiler output)",
                str(exc),
            )
            return None
        finally:
            os.chdir(cwd)
        return built

    def _remove_importable(self, root: Path) -> None:
        """Delete every ``_speedups`` shared object this interpreter would import from src/."""
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            stale = root / PACKAGE_DIR / f"_speedups{suffix}"
            if stale.exists():
                stale.unlink()
                self._warn(f"removed {stale.relative_to(root)}")

    def _warn(self, message: str, detail: str = "") -> None:
        # On stderr: uv shows a backend's output only when the build fails or with -v, so a
        # pure-Python fallback is quiet there; `streamboost._stream.NATIVE` tells which path
        # runs, and CI fails when it is not the C one (tests/test_kernel.py).
        text = f"streamboost build: WARNING: {message}"
        self.app.display_warning(f"{text}: {detail}" if detail else text)
