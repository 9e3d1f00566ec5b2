"""The ``streamboost`` command: ``demo``, ``dashboards export``, ``worker``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a whole number >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="streamboost", description="Fast, observable streaming for ASGI apps."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = commands.add_parser(
        "demo", help="run the example chat backend naive vs boosted and print the difference"
    )
    demo.add_argument("--requests", type=_positive_int, default=20, help="streams per mode (20)")
    demo.add_argument("--concurrency", type=_positive_int, default=4, help="streams at once (4)")
    demo.add_argument("--tokens", type=_positive_int, default=64, help="tokens per answer (64)")
    demo.add_argument(
        "--serve",
        action="store_true",
        help="keep the boosted app running with /metrics and print the URLs",
    )
    demo.add_argument("--port", type=int, default=8000, help="port for --serve (8000)")

    from ._deferred._worker import build_parser as add_worker_arguments

    add_worker_arguments(
        commands.add_parser("worker", help="run the consumer of a durable DeferredWriter")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(
            requests=args.requests,
            concurrency=args.concurrency,
            tokens=args.tokens,
            serve=args.serve,
            port=args.port,
        )
    if args.command == "worker":
        from ._deferred._worker import run

        return run(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects others


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
