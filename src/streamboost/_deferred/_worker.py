"""The stream worker on its own: ``streamboost worker myapp.writers:messages``.

An app can produce with ``DeferredWriter(..., durable="redis://...", worker=False)`` and leave
the writes to worker processes on other machines, which import the same writer (or a sink).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
from collections.abc import Sequence
from typing import Any

from .. import _checks
from ._writer import DeferredWriter

logger = logging.getLogger("streamboost.deferred")


async def run_worker(
    writer: DeferredWriter[Any],
    *,
    stop: asyncio.Event | None = None,
    drain_timeout: float | None = None,
) -> int:
    """Consume ``writer``'s stream until ``stop`` is set (default: SIGTERM or SIGINT), drain,
    and return the number of items left on the stream."""
    _checks.seconds("drain_timeout", drain_timeout, default=30.0, none=True)
    if not writer.durable:
        raise ValueError(
            f"writer {writer.name!r} is not durable; run_worker() needs durable='redis://...'"
        )
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if stop is None:
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, stop.set)
                handled.append(signum)
            except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
                pass
    await writer.start(worker=True)
    logger.info("worker for %r consuming stream %r", writer.name, writer.stream)
    try:
        await stop.wait()
    finally:
        left = await writer.aclose(drain_timeout)
        for signum in handled:
            loop.remove_signal_handler(signum)
    return left


def load_target(spec: str) -> object:
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"target={spec!r}: use 'package.module:attribute'")
    target: object = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    return target


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(
        prog="streamboost worker", description="Run the consumer of a durable DeferredWriter."
    )
    parser.add_argument(
        "target", help="module:attribute of a durable DeferredWriter, or of a sink callable"
    )
    parser.add_argument("--redis", help="redis:// URL (required when target is a sink)")
    parser.add_argument("--name", default="messages", help="writer name (sink targets)")
    parser.add_argument("--stream", help="stream key (default streamboost:deferred:<name>)")
    parser.add_argument("--group", default="streamboost", help="consumer group")
    parser.add_argument("--max-batch", type=int, default=500)
    parser.add_argument("--max-delay", type=float, default=0.2)
    parser.add_argument("--retries", type=int, default=5)
    parser.add_argument("--claim-idle", type=float, default=60.0)
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--dead-letter", help="JSONL path or redis:// URL for dead letters")
    return parser


def writer_from_args(args: argparse.Namespace) -> DeferredWriter[Any]:
    target = load_target(args.target)
    if isinstance(target, DeferredWriter):
        return target
    if not callable(target):
        raise ValueError(f"{args.target!r} is neither a DeferredWriter nor a callable sink")
    if not args.redis:
        raise ValueError("--redis redis://host:port/db is required when the target is a sink")
    return DeferredWriter(
        target,
        name=args.name,
        durable=args.redis,
        stream=args.stream,
        group=args.group,
        max_batch=args.max_batch,
        max_delay=args.max_delay,
        retries=args.retries,
        claim_idle=args.claim_idle,
        drain_timeout=args.drain_timeout,
        dead_letter=args.dead_letter,
    )


def run(args: argparse.Namespace) -> int:
    """Run the worker for arguments parsed by ``build_parser``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    writer = writer_from_args(args)
    left = asyncio.run(run_worker(writer, drain_timeout=args.drain_timeout))
    return 1 if left else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``streamboost worker``; returns the exit status."""
    return run(build_parser().parse_args(argv))
