"""Helpers shared by the deferred-write tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass

import asyncpg


@dataclass
class PgTable:
    dsn: str
    name: str
    pool: asyncpg.Pool

    async def numbers(self) -> list[int]:
        rows = await self.pool.fetch(f"SELECT n FROM {self.name} ORDER BY n")
        return [row["n"] for row in rows]

    async def count(self) -> int:
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {self.name}"))


class ServerProcess:
    """``uvicorn tests.deferred.proc_app:app`` in a subprocess on 127.0.0.1, port 0."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "tests.deferred.proc_app:app",
             "--host", "127.0.0.1", "--port", "0", "--log-level", "info"],
            env={**os.environ, **env}, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        self.log: list[str] = []
        self.url = self._wait_for_url()

    def _wait_for_url(self) -> str:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:  # ends when the process exits
            self.log.append(line)
            match = re.search(r"Uvicorn running on (http://127\.0\.0\.1:\d+)", line)
            if match:
                self._reader = threading.Thread(target=self._drain_log, daemon=True)
                self._reader.start()
                return match.group(1)
        raise RuntimeError("uvicorn did not start:\n" + "".join(self.log))

    def _drain_log(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)

    def signal(self, signum: int) -> int:
        self.proc.send_signal(signum)
        code = self.proc.wait(60)
        self._close_log()
        return code

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def _close_log(self) -> None:
        self._reader.join(5)  # the log is complete once the pipe reached its end
        if self.proc.stderr is not None and not self._reader.is_alive():
            self.proc.stderr.close()
