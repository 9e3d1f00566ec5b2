"""Progress of ``streamboost demo``: a bar on a terminal, flushed lines anywhere else.

stdout is block-buffered when it is not a terminal, so without a flush a CI log shows nothing
until the demo ends; a bar drawn with carriage returns would be noise there.
"""

from __future__ import annotations

import sys
import time


def interactive() -> bool:
    """Both streams on a terminal: a person is watching."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def say(line: str) -> None:
    """A progress line on stdout, flushed (stdout is block-buffered when it is not a tty)."""
    print(f"streamboost demo: {line}", flush=True)


def progress(label: str, done: int, total: int, started: float) -> None:
    if not interactive():
        # A bar drawn with carriage returns is noise in a log: a line per quarter instead.
        quarters = {total * q // 4 for q in range(1, 5)}
        if done == 0:
            say(f"{label}: streaming {total} requests")
        elif done in quarters:
            say(f"{label}: {done}/{total} streams done ({time.monotonic() - started:.1f} s)")
        return
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r  {label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
