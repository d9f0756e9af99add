"""Entry points of the gRPC stage services and the sweep worker (``spiker serve``, ``spiker worker``).

    spiker serve trainer --port 50051 [--host 127.0.0.1] [--store DIR]
    spiker worker sweep --task tasks/sweep/<id>/task.json --count 8 [--index 3]

The services live in the ``spiker_services`` package and need gRPC; this module imports them
only when called, so ``spiker --help`` and the library commands never load gRPC. Without
``--index`` the worker reads ``JOB_COMPLETION_INDEX`` (a Kubernetes Indexed Job).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

log = logging.getLogger(__name__)

SERVICE_CHOICES = ("trainer", "optimizer", "hdlgen", "simulator", "all")


def serve(name: str, host: str = "127.0.0.1", port: int = 50051, store_dir: str | None = None,
          max_jobs: int = 1, max_queue: int = 16, max_message_bytes: int | None = None,
          grace: float = 10.0, work_dir: str | None = None) -> int:
    """Run service ``name`` (or ``all`` four) until SIGTERM/SIGINT; returns the exit code.

    The store comes from the environment (``SPIKER_S3_*``, else ``store_dir`` /
    ``SPIKER_STORE_DIR`` / ``~/.spiker/store``), see docs/store.md. ``max_message_bytes``: the
    largest request (None: ``spiker_api.limits.SERVICE_MAX_MESSAGE_BYTES``, 4 MiB).
    """
    from spiker.store import open_store
    from spiker_api.limits import SERVICE_MAX_MESSAGE_BYTES
    from spiker_app.services import SERVICE_NAMES, build_stage_server
    from spiker_services.common.runtime import Runtime
    from spiker_services.common.server import run_until_signal

    names = list(SERVICE_NAMES) if name == "all" else [name]
    store = open_store(store_dir)
    runtime = Runtime(store, max_jobs=max_jobs, work_root=work_dir)
    if max_message_bytes is None:
        max_message_bytes = SERVICE_MAX_MESSAGE_BYTES
    server = build_stage_server(names, runtime, host=host, port=port, max_message_bytes=max_message_bytes,
                                max_queue=max_queue)
    print(f"spiker serve: {', '.join(names)} listening on {host}:{server.port}", flush=True)
    run_until_signal(server, grace)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    return serve(args.name, host=args.host, port=args.port, store_dir=args.store, max_jobs=args.max_jobs,
                 max_queue=args.max_queue, max_message_bytes=args.max_message_bytes, grace=args.grace)


def _cmd_worker_sweep(args: argparse.Namespace) -> int:
    try:
        from spiker_services.optimizer.worker import worker_sweep

        key = worker_sweep(args.task, args.index, args.count)
    except Exception as exc:  # noqa: BLE001 - reported as one parseable line for the service
        from spiker_api.errors import describe_error
        from spiker_services.common.runtime import WORKER_ERROR_PREFIX

        info = describe_error(exc)
        print(f"spiker worker: error: {exc}", file=sys.stderr)
        print(WORKER_ERROR_PREFIX + json.dumps(info.to_dict()), file=sys.stderr, flush=True)
        return 2
    print(key)
    return 0


def add_cli_commands(subparsers: Any) -> None:
    """Add ``serve`` and ``worker sweep`` to a ``spiker`` CLI's subparsers (each sets ``func``)."""
    p = subparsers.add_parser("serve", help="run a gRPC stage service")
    p.add_argument("name", choices=SERVICE_CHOICES, help="service to run ('all': the four on one port)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50051, help="port (0: any free port; default 50051)")
    p.add_argument("--store", default=None, help="local store directory when SPIKER_S3_ENDPOINT is unset")
    p.add_argument("--max-jobs", type=int, default=1, help="jobs run at once; more calls wait (default 1)")
    p.add_argument("--max-queue", type=int, default=16, help="calls that may wait for a slot (default 16)")
    p.add_argument("--max-message-bytes", type=int, default=None,
                   help="largest accepted request (default 4 MiB)")
    p.add_argument("--grace", type=float, default=10.0, help="seconds running calls get on SIGTERM")
    p.set_defaults(func=_cmd_serve)

    w = subparsers.add_parser("worker", help="batch workers (the unit of a Kubernetes Job)")
    wsub = w.add_subparsers(dest="worker_command", required=True)
    s = wsub.add_parser("sweep", help="score one shard of a bit-width sweep task")
    s.add_argument("--task", required=True, help="store key of the task document")
    s.add_argument("--index", type=int, default=None, help="shard index (default $JOB_COMPLETION_INDEX)")
    s.add_argument("--count", type=int, required=True, help="number of shards")
    s.set_defaults(func=_cmd_worker_sweep)


def main(argv: list[str] | None = None) -> int:
    """``python -m spiker_app.serve serve|worker ...`` (the same commands as the ``spiker`` CLI)."""
    parser = argparse.ArgumentParser(prog="spiker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_cli_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
