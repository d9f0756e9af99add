"""The whole stack on one machine: ``spiker run`` (in this process) and ``spiker up`` (two processes).

    spiker run examples/digits.yaml [--store DIR] [--out DIR] [--no-cache]
    spiker up [--port 50050] [--services-port 50051] [--tokens FILE]

``run`` starts the four stage services and the gateway in this process on loopback ephemeral
ports (store from ``SPIKER_S3_*``, else ``--store`` / ``SPIKER_STORE_DIR`` / ``~/.spiker/store``),
submits the spec, shows a progress bar per stage and downloads the run's files (model, history,
sweep, selection, simulation report, resources, plots, VHDL, reports; as ``spiker get --download``)
to ``--out`` (default ``runs/<run-id>/``). The exit code is 0 only if the run succeeded with 0
mismatches. ``up`` runs ``spiker serve all`` and ``spiker gateway`` as supervised child processes.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiker.cli import UsageError
from spiker_gateway.cli import TOKEN_ENV, WEB_PORT, check_dataset, spec_text_for, token_table, web_bind_host
from spiker_gateway.watch import follow, print_summary

if TYPE_CHECKING:  # gRPC and the stack load when a command runs, after the job server has started
    from spiker.store import ArtifactStore
    from spiker_gateway.stages import RetryPolicy
    from spiker_gateway.validate import Limits


class LocalStack:
    """The four stage services and a gateway in this process on loopback ephemeral ports."""

    def __init__(self, store: ArtifactStore, limits: Limits | None = None, token: str | None = None,
                 max_jobs: int = 2, work_root: str | Path | None = None,
                 worker_env: Mapping[str, str] | None = None, policy: RetryPolicy | None = None,
                 resume: bool = False) -> None:
        from spiker_app.services import SERVICE_NAMES, build_stage_server
        from spiker_gateway.auth import new_token
        from spiker_gateway.server import DEFAULT_HOST, all_targets, build_gateway
        from spiker_services.common.runtime import Runtime

        self.store = store
        self.token = token or new_token()
        self._work = None if work_root else tempfile.TemporaryDirectory(prefix="spiker-run-")
        root = Path(work_root) if work_root else Path(self._work.name)  # type: ignore[union-attr]
        self.runtime = Runtime(store, max_jobs=max_jobs, work_root=root, worker_env=worker_env)
        service_token = new_token()  # only this process's gateway may call its services
        self.services = build_stage_server(SERVICE_NAMES, self.runtime, host=DEFAULT_HOST, port=0,
                                           service_token=service_token)
        try:
            self.gateway = build_gateway(store, all_targets(f"{DEFAULT_HOST}:{self.services.port}"),
                                         {self.token: "local"}, limits=limits, policy=policy, resume=resume,
                                         service_token=service_token)
        except BaseException:
            self.services.stop(0)
            raise
        self._closed = threading.Event()

    @property
    def target(self) -> str:
        return self.gateway.target

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self.gateway.stop(1.0)
        self.services.stop(1.0).wait(10)
        if self._work is not None:
            self._work.cleanup()

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def cmd_run(args: argparse.Namespace) -> int:
    """``spiker run``: the spec through a :class:`LocalStack`, with progress; its files to ``--out``."""
    from spiker.flow.spec import load_flow_spec
    from spiker_services.common.jobserver import start_job_server

    spec = load_flow_spec(args.spec)  # bad spec or bad dataset file: exit 2 before anything starts
    try:
        check_dataset(spec)
    except UsageError as exc:
        raise UsageError(f"{args.spec}: {exc}") from None
    start_job_server()  # its preload runs while this process imports the stack
    from spiker.store import open_store
    from spiker_gateway.client import GatewayClient
    from spiker_gateway.validate import Limits

    if not args.verbose:  # the run's events are shown; the in-process services' own logs would repeat them
        for name in ("spiker_services", "spiker_gateway", "spiker"):
            logging.getLogger(name).setLevel(logging.WARNING)
    store = open_store(args.store)
    limits = Limits(max_concurrent_runs=1)
    with LocalStack(store, limits=limits, max_jobs=args.max_jobs) as stack, \
            GatewayClient(stack.target, stack.token) as client:
        text = spec_text_for(spec, client)
        run = client.submit(text, no_cache=args.no_cache)
        print(f"run {run.run_id} on {store!r}", file=sys.stderr)

        def on_term(*_: Any) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, on_term)  # stop like Ctrl-C: the run is cancelled, not left running
        try:
            final = follow(client, run.run_id, progress=not args.quiet)
        except KeyboardInterrupt:
            client.cancel(run.run_id)
            raise
        out = Path(args.out) if args.out else Path("runs") / final.run_id
        if final.report_json:  # the same files as `spiker get --download`, through the same RPC
            files = client.download_run(final.run_id, out)
            print(f"wrote {len(files)} files to {out}", file=sys.stderr)
        return print_summary(final)


def cmd_up(args: argparse.Namespace) -> int:
    """Start the services and the gateway as two child processes; stop both on Ctrl-C/SIGTERM."""
    from spiker_gateway.auth import ENV_VAR, new_token

    env = dict(os.environ)
    token = None
    if not args.tokens and not env.get(ENV_VAR):
        token = new_token()
        env[ENV_VAR] = f"{token}:{os.environ.get('USER', 'local') or 'local'}"
    else:
        token_table(args.tokens)  # fail early on a bad file
    store = ["--store", args.store] if args.store else []
    services_cmd = [sys.executable, "-m", "spiker_app.serve", "serve", "all", "--host", "127.0.0.1",
                    "--port", str(args.services_port), "--max-jobs", str(args.max_jobs), *store]
    gateway_cmd = [sys.executable, "-m", "spiker_gateway.cli", "gateway", "--host", args.host, "--port", str(args.port),
                   "--services", f"127.0.0.1:{args.services_port}", "--max-runs", str(args.max_runs),
                   "--web-port", str(args.web_port), *store]
    if args.tokens:
        gateway_cmd += ["--tokens", args.tokens]
    for flag in ("tls_cert", "tls_key"):
        if getattr(args, flag):
            gateway_cmd += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    from spiker_api.service_token import TOKEN_ENV as SERVICE_TOKEN_ENV
    from spiker_api.service_token import TOKEN_FILE_ENV as SERVICE_TOKEN_FILE_ENV
    from spiker_gateway.supervise import Supervisor

    if not env.get(SERVICE_TOKEN_ENV) and not env.get(SERVICE_TOKEN_FILE_ENV):
        env[SERVICE_TOKEN_ENV] = new_token()  # only this gateway may call these services
    supervisor = Supervisor({"services": services_cmd, "gateway": gateway_cmd}, env)
    supervisor.start()  # a child that dies is restarted with back-off (and logged)
    procs = [c.proc for c in supervisor.children]
    tls = bool(args.tls_cert and args.tls_key)
    print(f"spiker up: services pid {procs[0].pid} on 127.0.0.1:{args.services_port}, gateway pid "
          f"{procs[1].pid} on {args.host}:{args.port}"
          + (f", run browser on {'https' if tls else 'http'}://{web_bind_host(None, args.host, tls)}:{args.web_port}"
             if args.web_port >= 0 else ""), flush=True)
    if token:
        print(f"spiker up: token {token} (export {TOKEN_ENV}={token})", flush=True)
    stopping = {"flag": False}

    def on_signal(*_: Any) -> None:
        stopping["flag"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    try:
        supervisor.run(lambda: stopping["flag"])
    finally:
        supervisor.stop()
    return 0


def add_cli_commands(subparsers: Any) -> None:
    """Add ``run`` and ``up`` to a ``spiker`` CLI's subparsers (each sets ``func``)."""
    p = subparsers.add_parser("run", help="run a flow spec end to end on this machine (gateway + services)")
    p.add_argument("spec", help="flow spec (YAML or JSON)")
    p.add_argument("--store", help="local store directory when SPIKER_S3_ENDPOINT is unset "
                                   "(default $SPIKER_STORE_DIR or ~/.spiker/store)")
    p.add_argument("--out", help="write the run's files here: model.pt, history.json, sweep.csv/.json, sim.json, "
                                 "resources.json, plots/, vhdl/, report.md/.json (default runs/<run-id>)")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--max-jobs", type=int, default=2, help="stage jobs at once per service (default 2)")
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("up", help="start the stage services and the gateway as separate processes")
    p.add_argument("--host", default="127.0.0.1", help="gateway bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50050, help="gateway port (default 50050)")
    p.add_argument("--services-port", type=int, default=50051, help="stage services port (default 50051)")
    p.add_argument("--store", help="local store directory when SPIKER_S3_ENDPOINT is unset")
    p.add_argument("--tokens", help="token file: lines 'TOKEN USER' (else $SPIKER_GATEWAY_TOKENS, else one "
                                    "random token is printed)")
    p.add_argument("--max-runs", type=int, default=2, help="runs at once; more queue (default 2)")
    p.add_argument("--web-port", type=int, default=WEB_PORT, help=f"port of the web run browser (default "
                   f"{WEB_PORT}; -1: none)")
    p.add_argument("--max-jobs", type=int, default=2, help="stage jobs at once (default 2)")
    p.add_argument("--tls-cert", help="TLS certificate (PEM) of the gateway")
    p.add_argument("--tls-key", help="TLS private key (PEM) of the gateway")
    p.set_defaults(func=cmd_up)
