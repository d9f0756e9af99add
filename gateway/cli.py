"""Gateway commands of the ``spiker`` CLI: run, up, gateway, submit, watch, ls, get, cancel.

    spiker run examples/digits.yaml [--store DIR] [--out DIR] [--no-cache]
    spiker up [--port 50050] [--services-port 50051] [--tokens FILE]
    spiker submit SPEC --gateway HOST:PORT [--token-file F] [--watch]   (token: F or $SPIKER_TOKEN)
    spiker watch|get|cancel RUN_ID --gateway HOST:PORT [--token-file F]
    spiker ls --gateway HOST:PORT [--token-file F]

``run`` starts the four stage services and the gateway in this process on loopback ephemeral
ports (store from ``SPIKER_S3_*``, else ``--store`` / ``SPIKER_STORE_DIR`` / ``~/.spiker/store``),
submits the spec, shows a progress bar per stage and copies the report, plots and VHDL to
``--out`` (default ``runs/<run-id>/``). The exit code is 0 only if the run succeeded with 0
mismatches.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GATEWAY_ENV = "SPIKER_GATEWAY"
TOKEN_ENV = "SPIKER_TOKEN"


# -- shared helpers ----------------------------------------------------------------------------

def spec_text_for(path: str, client: Any) -> str:
    """The spec file as JSON text; a local .npz dataset is uploaded and referenced by sha256."""
    from spiker.flow.spec import load_flow_spec

    spec = load_flow_spec(path)
    doc = spec.to_dict()
    if spec.dataset_artifact is None and spec.dataset.name.endswith(".npz"):
        ref = client.upload(spec.dataset.name)
        doc["dataset"] = {**doc["dataset"], "artifact": ref.sha256, "name": Path(spec.dataset.name).name}
        print(f"uploaded {spec.dataset.name} ({ref.size} bytes) as {ref.sha256[:16]}...", file=sys.stderr)
    return json.dumps(doc)


class ProgressView:
    """One tqdm bar per stage, fed by a run's events."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.bars: dict[str, Any] = {}

    def _bar(self, stage: str) -> Any:
        from tqdm import tqdm

        if stage not in self.bars:
            self.bars[stage] = tqdm(desc=f"{stage:9s}", total=1, unit="step", leave=True, disable=not self.enabled,
                                    bar_format="{desc} {bar} {n_fmt}/{total_fmt} [{elapsed}] {postfix}")
        return self.bars[stage]

    def event(self, ev: Any) -> None:
        from gateway.client import stage_state_name, state_name

        kind = ev.WhichOneof("event")
        if kind == "stage_started":
            bar = self._bar(ev.stage_started.stage)
            bar.set_postfix_str("cache lookup" if ev.stage_started.attempt == 0 else
                                f"attempt {ev.stage_started.attempt}")
        elif kind == "progress":
            p = ev.progress
            bar = self._bar(p.stage if p.stage != "hdlgen" else "hdlgen")
            if p.total > 0:
                bar.total = p.total
                bar.n = min(p.current, p.total)
            acc = p.metrics.get("test_accuracy")
            bar.set_postfix_str(f"{p.phase}" + (f" acc {acc:.3f}" if acc is not None else ""))
        elif kind == "stage_finished":
            s = ev.stage_finished
            bar = self._bar(s.name)
            bar.n = bar.total
            state = stage_state_name(s.state)
            bar.set_postfix_str(f"{state}{' (cached)' if s.cached else ''} {s.seconds:.1f}s")
            bar.close()
        elif kind == "state_change" and not self.enabled:
            print(f"run {ev.run_id}: {state_name(ev.state_change.state)} {ev.state_change.message}",
                  file=sys.stderr)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def follow(client: Any, run_id: str, progress: bool = True) -> Any:
    """Stream a run's events to progress bars; returns the final Run."""
    view = ProgressView(progress)
    try:
        for ev in client.watch(run_id):
            view.event(ev)
            if ev.WhichOneof("event") == "summary":
                return ev.summary
    finally:
        view.close()
    return client.get(run_id)


def print_summary(run: Any) -> int:
    """Print the run's outcome and report; the exit code (0: succeeded with 0 mismatches)."""
    from gateway.client import state_name

    state = state_name(run.state)
    print(f"run {run.run_id} ({run.name}): {state}")
    if run.HasField("error") and run.error.message:
        field = f" [{run.error.field}]" if run.error.field else ""
        print(f"error{field}: {run.error.message}")
    if not run.report_json:
        return 1
    r = json.loads(run.report_json)
    res = r["resources"]
    print(f"accuracy: float {r['float_accuracy']}, quantized {r['quant_accuracy']}, hardware {r['hw_accuracy']}")
    print(f"mismatches: {r['mismatches']} on {r['samples']} samples; optim_params {r['optim_params']}")
    print(f"cycles/inference: mean {r['cycles_mean']} (bound {r['bound_mean']}); "
          f"resources: LUT {res['lut']}, FF {res['ff']}, BRAM {res['bram']}, DSP {res['dsp']}")
    from gateway.stages import STAGES

    print("stages: " + ", ".join(f"{n} {r['stages'][n]['seconds']:.1f}s"
                                 f"{' (cached)' if r['stages'][n]['cached'] else ''}"
                                 f"{' (skipped)' if r['stages'][n]['state'] == 'skipped' else ''}"
                                 for n in STAGES if n in r["stages"]))
    return 0 if state == "succeeded" and r["mismatches"] == 0 else 1


def copy_outputs(store: Any, run: Any, out: Path) -> list[Path]:
    """Copy the run's files under ``runs/<id>/`` (report, plots, VHDL) from the store to ``out``."""
    prefix = f"runs/{run.run_id}/"
    written = []
    for key in sorted(set(run.artifacts.values())):
        if not key.startswith(prefix):
            continue
        dest = out / key[len(prefix):]
        store.get_file(store.ref_for(key), dest)
        written.append(dest)
    return written


# -- commands --------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from services.common.jobserver import start_job_server

    start_job_server()  # its preload runs while this process imports the stack
    from gateway.client import GatewayClient
    from gateway.server import LocalStack
    from gateway.validate import Limits
    from spiker.store import open_store

    if not args.quiet and not args.verbose:  # progress bars instead of log lines
        for name in ("services", "gateway", "spiker"):
            logging.getLogger(name).setLevel(logging.WARNING)
    store = open_store(args.store)
    limits = Limits(max_concurrent_runs=1)
    with LocalStack(store, limits=limits, max_jobs=args.max_jobs) as stack, \
            GatewayClient(stack.target, stack.token) as client:
        text = spec_text_for(args.spec, client)
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
        if final.report_json:
            files = copy_outputs(store, final, out)
            print(f"wrote {len(files)} files to {out}", file=sys.stderr)
        return print_summary(final)


def _client(args: argparse.Namespace) -> Any:
    from gateway.client import GatewayClient

    target = args.gateway or os.environ.get(GATEWAY_ENV)
    if not target:
        raise SystemExit("spiker: give --gateway HOST:PORT or set SPIKER_GATEWAY")
    return GatewayClient(target, _client_token(args), args.ca_cert)


def _client_token(args: argparse.Namespace) -> str | None:
    """--token-file, else $SPIKER_TOKEN (or the older $SPIKER_GATEWAY_TOKEN), else a --token (warned: ps shows it)."""
    from gateway.auth import client_token

    try:
        token = client_token(getattr(args, "token_file", None)) or os.environ.get("SPIKER_GATEWAY_TOKEN")
    except (OSError, ValueError) as exc:
        raise SystemExit(f"--token-file: {exc}") from None
    if token is None and getattr(args, "token", None):
        warnings.warn("--token on the command line is visible to every user of this machine (ps); use "
                      "--token-file FILE or $SPIKER_TOKEN", UserWarning, stacklevel=2)
        token = args.token
    return token


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        run = client.submit(spec_text_for(args.spec, client), no_cache=args.no_cache)
        print(run.run_id)
        if args.watch:
            return print_summary(follow(client, run.run_id, progress=not args.quiet))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return print_summary(follow(client, args.run_id, progress=not args.quiet))


def cmd_ls(args: argparse.Namespace) -> int:
    from gateway.client import state_name

    with _client(args) as client:
        for run in client.list(args.limit):
            created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.created_at))
            queue = f" (queue position {run.queue_position})" if run.queue_position else ""
            print(f"{run.run_id}  {state_name(run.state):9s}  {created}  {run.name}{queue}")
    return 0


def cmd_get(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    with _client(args) as client:
        run = client.get(args.run_id)
        if args.json:
            print(json_format.MessageToJson(run, preserving_proto_field_name=True))
            return 0
        from gateway.client import stage_state_name

        for s in run.stages:
            print(f"  {s.name:9s} {stage_state_name(s.state):9s} {s.seconds:7.1f}s"
                  f"{'  cached' if s.cached else ''}{'  attempts ' + str(s.attempts) if s.attempts > 1 else ''}")
        return print_summary(run)


def cmd_cancel(args: argparse.Namespace) -> int:
    from gateway.client import state_name

    with _client(args) as client:
        run = client.cancel(args.run_id)
        print(f"{run.run_id}: {state_name(run.state)}")
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    """Serve the gateway until SIGTERM/SIGINT."""
    import threading

    from gateway.auth import load_tokens
    from gateway.server import all_targets, build_gateway
    from gateway.validate import Limits
    from spiker.store import open_store

    if args.services:
        targets = all_targets(args.services)
    else:
        targets = {"trainer": args.trainer, "optimizer": args.optimizer, "hdlgen": args.hdlgen,
                   "simulator": args.simulator}
        if not all(targets.values()):
            raise SystemExit("spiker gateway: give --services HOST:PORT or all of --trainer/--optimizer/"
                             "--hdlgen/--simulator")
    from gateway.auth import TokenAuth

    tokens = TokenAuth(load_tokens(args.tokens), args.tokens)  # SIGHUP re-reads the file
    signal.signal(signal.SIGHUP, lambda *_: tokens.reload())
    limits = Limits(max_concurrent_runs=args.max_runs, max_upload_bytes=args.max_upload_mb * 1024 * 1024)
    server = build_gateway(open_store(args.store), targets, tokens, host=args.host, port=args.port,
                           limits=limits, tls_cert=args.tls_cert, tls_key=args.tls_key)
    print(f"spiker gateway: listening on {args.host}:{server.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    server.stop(2.0)
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    """Start the services and the gateway as two child processes; stop both on Ctrl-C/SIGTERM."""
    from gateway.auth import ENV_VAR, load_tokens, new_token

    env = dict(os.environ)
    token = None
    if not args.tokens and not env.get(ENV_VAR):
        token = new_token()
        env[ENV_VAR] = f"{token}:{os.environ.get('USER', 'local') or 'local'}"
    else:
        load_tokens(args.tokens)  # fail early on a bad file
    store = ["--store", args.store] if args.store else []
    services_cmd = [sys.executable, "-m", "spiker.serve", "serve", "all", "--host", "127.0.0.1",
                    "--port", str(args.services_port), "--max-jobs", str(args.max_jobs), *store]
    gateway_cmd = [sys.executable, "-m", "gateway.cli", "gateway", "--host", args.host, "--port", str(args.port),
                   "--services", f"127.0.0.1:{args.services_port}", "--max-runs", str(args.max_runs), *store]
    if args.tokens:
        gateway_cmd += ["--tokens", args.tokens]
    for flag in ("tls_cert", "tls_key"):
        if getattr(args, flag):
            gateway_cmd += [f"--{flag.replace('_', '-')}", getattr(args, flag)]
    procs = [subprocess.Popen(services_cmd, env=env)]
    procs.append(subprocess.Popen(gateway_cmd, env=env))
    print(f"spiker up: services pid {procs[0].pid} on 127.0.0.1:{args.services_port}, gateway pid "
          f"{procs[1].pid} on {args.host}:{args.port}", flush=True)
    if token:
        print(f"spiker up: token {token} (export {TOKEN_ENV}={token})", flush=True)
    stopping = {"flag": False}

    def on_signal(*_: Any) -> None:
        stopping["flag"] = True

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    code = 0
    while not stopping["flag"]:
        if any(p.poll() is not None for p in procs):
            code = 1
            break
        time.sleep(0.5)
    for p in reversed(procs):
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
    return code


# -- registration ------------------------------------------------------------------------------

def _guard(func: Any) -> Any:
    """Report a failed gateway call as one line (status, field, message) with exit code 2."""
    import functools

    @functools.wraps(func)
    def wrapper(args: argparse.Namespace) -> int:
        import grpc

        try:
            return func(args)
        except grpc.RpcError as err:
            from services.common.errors import error_detail

            detail = error_detail(err)
            field = f" [{detail['field']}]" if detail["field"] else ""
            print(f"spiker: error: {err.code().name}{field}: {detail['message'] or err.details()}", file=sys.stderr)
            return 2

    return wrapper


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gateway", help=f"gateway address HOST:PORT (default ${GATEWAY_ENV})")
    p.add_argument("--token-file", help="file whose first line is your bearer token (else $SPIKER_TOKEN)")
    p.add_argument("--token", help=argparse.SUPPRESS)  # deprecated: visible in ps
    p.add_argument("--ca-cert", help="CA certificate (PEM) of a TLS gateway")


def add_cli_commands(subparsers: Any) -> None:
    """Add the gateway commands to a ``spiker`` CLI's subparsers (each sets ``func``)."""
    p = subparsers.add_parser("run", help="run a flow spec end to end on this machine (gateway + services)")
    p.add_argument("spec", help="flow spec (YAML or JSON)")
    p.add_argument("--store", help="local store directory when SPIKER_S3_ENDPOINT is unset "
                                   "(default $SPIKER_STORE_DIR or ~/.spiker/store)")
    p.add_argument("--out", help="copy report, plots and VHDL here (default runs/<run-id>)")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--max-jobs", type=int, default=2, help="stage jobs at once per service (default 2)")
    p.set_defaults(func=_guard(cmd_run))

    p = subparsers.add_parser("up", help="start the stage services and the gateway as separate processes")
    p.add_argument("--host", default="127.0.0.1", help="gateway bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50050, help="gateway port (default 50050)")
    p.add_argument("--services-port", type=int, default=50051, help="stage services port (default 50051)")
    p.add_argument("--store", help="local store directory when SPIKER_S3_ENDPOINT is unset")
    p.add_argument("--tokens", help="token file: lines 'TOKEN USER' (else $SPIKER_GATEWAY_TOKENS, else one "
                                    "random token is printed)")
    p.add_argument("--max-runs", type=int, default=2, help="runs at once; more queue (default 2)")
    p.add_argument("--max-jobs", type=int, default=2, help="stage jobs at once (default 2)")
    p.add_argument("--tls-cert", help="TLS certificate (PEM) of the gateway")
    p.add_argument("--tls-key", help="TLS private key (PEM) of the gateway")
    p.set_defaults(func=cmd_up)

    p = subparsers.add_parser("gateway", help="serve the gateway (stage services run elsewhere)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50050, help="port (0: any free port; default 50050)")
    p.add_argument("--services", help="HOST:PORT of `spiker serve all`")
    for name in ("trainer", "optimizer", "hdlgen", "simulator"):
        p.add_argument(f"--{name}", help=f"HOST:PORT of the {name} service")
    p.add_argument("--store", help="local store directory when SPIKER_S3_ENDPOINT is unset")
    p.add_argument("--tokens", help="token file: lines 'TOKEN USER' (also $SPIKER_GATEWAY_TOKENS)")
    p.add_argument("--max-runs", type=int, default=2, help="runs at once; more queue FIFO (default 2)")
    p.add_argument("--max-upload-mb", type=int, default=64, help="largest dataset upload (default 64 MiB)")
    p.add_argument("--tls-cert", help="TLS certificate (PEM)")
    p.add_argument("--tls-key", help="TLS private key (PEM)")
    p.set_defaults(func=cmd_gateway)

    p = subparsers.add_parser("submit", help="submit a flow spec to a gateway")
    p.add_argument("spec", help="flow spec (YAML or JSON); a local .npz dataset is uploaded")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--watch", action="store_true", help="follow the run until it ends")
    _client_args(p)
    p.set_defaults(func=_guard(cmd_submit))

    for name, func, text in (("watch", cmd_watch, "follow a run until it ends"),
                             ("get", cmd_get, "show a run's record and report"),
                             ("cancel", cmd_cancel, "cancel a queued or running run")):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("run_id")
        if name == "get":
            p.add_argument("--json", action="store_true", help="the whole record as JSON")
        _client_args(p)
        p.set_defaults(func=_guard(func))

    p = subparsers.add_parser("ls", help="list your runs on a gateway")
    p.add_argument("--limit", type=int, default=0, help="newest N runs (0: all)")
    _client_args(p)
    p.set_defaults(func=_guard(cmd_ls))


def main(argv: list[str] | None = None) -> int:
    """``python -m gateway.cli <command> ...`` (the same commands as the ``spiker`` CLI)."""
    parser = argparse.ArgumentParser(prog="spiker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    add_cli_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
