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
        help="serve the boosted app on 127.0.0.1 with /metrics for Prometheus and Grafana",
    )
    demo.add_argument("--port", type=int, default=8000, help="port for --serve (8000)")
    demo.add_argument(
        "--duration", type=float, default=None, help="with --serve: stop after SECONDS"
    )
    demo.add_argument("--no-load", action="store_true", help="with --serve: no background streams")

    serve = commands.add_parser(
        "serve",
        help="run an existing ASGI app behind StreamBoost, no code change",
        epilog="After '--', the server's own options, passed unchanged: "
        "streamboost serve myapp:app --server gunicorn --workers 4 -- --max-requests 1000",
    )
    serve.add_argument("target", help="the app as package.module:app")
    serve.add_argument(
        "--server", choices=("uvicorn", "hypercorn", "granian", "gunicorn"), default="uvicorn"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
    serve.add_argument("--workers", type=_positive_int, default=1, help="processes (1)")
    serve.add_argument("--no-coalesce", action="store_true", help="forward every chunk as sent")
    serve.add_argument(
        "--metrics-path", default="/metrics", help="where /metrics is served ('' for none)"
    )
    serve.add_argument(
        "--app-dir", default=None, help="look for the target's module here (current directory)"
    )

    dashboards = commands.add_parser("dashboards", help="Grafana dashboards and provisioning")
    dashboard_commands = dashboards.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = dashboard_commands.add_parser(
        "export",
        help="write dashboards, Grafana provisioning and Prometheus config/alerts into DIR",
    )
    export.add_argument("dest", metavar="DIR", help="folder to write into (created if missing)")
    export.add_argument("--force", action="store_true", help="overwrite files that exist")

    from .._deferred._worker import build_parser as add_worker_arguments

    add_worker_arguments(
        commands.add_parser("worker", help="run the consumer of a durable DeferredWriter")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `streamboost serve app:app -- --max-requests 1000`: the rest is the server's own.
    server_args: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, server_args = argv[:at], argv[at + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if server_args and args.command != "serve":
        parser.error(f"options after '--' ({' '.join(server_args)}) are only for 'serve'")
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo(
            requests=args.requests,
            concurrency=args.concurrency,
            tokens=args.tokens,
            serve=args.serve,
            port=args.port,
            duration=args.duration,
            load=not args.no_load,
        )
    if args.command == "serve":
        from ._serve import serve

        try:
            return serve(
                args.target,
                server=args.server,
                host=args.host,
                port=args.port,
                workers=args.workers,
                coalesce=not args.no_coalesce,
                metrics_path=args.metrics_path or None,
                app_dir=args.app_dir,
                server_args=server_args,
            )
        except ValueError as exc:
            print(f"streamboost serve: {exc}", file=sys.stderr)
            return 2
    if args.command == "dashboards":
        from ._dashboards import export_dashboards

        try:
            written = export_dashboards(args.dest, overwrite=args.force)
        except (FileExistsError, NotADirectoryError) as exc:
            print(f"streamboost dashboards export: {exc}", file=sys.stderr)
            return 2
        for path in written:
            print(path)
        return 0
    if args.command == "worker":
        from .._deferred._worker import run

        return run(args)
    raise AssertionError(f"unhandled command {args.command!r}")  # argparse rejects others


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
