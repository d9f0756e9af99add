"""Gateway commands of the ``spiker`` CLI: gateway, submit, watch, ls, get, cancel, gc.

    spiker gateway [--port 50050] --services HOST:PORT [--tokens FILE]
    spiker submit SPEC --gateway HOST:PORT [--token-file F] [--watch]   (token: F or $SPIKER_TOKEN)
    spiker watch|get|cancel RUN_ID --gateway HOST:PORT [--token-file F]
    spiker ls --gateway HOST:PORT [--token-file F]

``spiker run`` and ``spiker up``, which start the stage services too, are the composition
root's (spiker_app/local.py); they use this module's spec upload and the run views of
:mod:`spiker_gateway.watch`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spiker.cli import UsageError, register_error_formatter
from spiker_gateway.watch import follow, print_summary

if TYPE_CHECKING:
    from spiker.flow.spec import FlowSpec

log = logging.getLogger(__name__)

GATEWAY_ENV = "SPIKER_GATEWAY"
#: default port of the web run browser (``spiker gateway``/``spiker up``)
WEB_PORT = 50080
TOKEN_ENV = "SPIKER_TOKEN"


# -- shared helpers ----------------------------------------------------------------------------

def spec_text_for(spec: FlowSpec, client: Any) -> str:
    """A loaded spec file (``load_flow_spec``) as JSON text; a local .npz dataset is uploaded and
    referenced by sha256."""
    doc = spec.to_dict()
    if spec.dataset_artifact is None and spec.dataset.name.endswith(".npz"):
        ref = client.upload(spec.dataset.name)
        doc["dataset"] = {**doc["dataset"], "artifact": ref.sha256, "name": Path(spec.dataset.name).name}
        print(f"uploaded {spec.dataset.name} ({ref.size} bytes) as {ref.sha256[:16]}...", file=sys.stderr)
    if spec.model is not None and spec.model.nir is not None:
        doc.update(upload_model(spec, client))
    return json.dumps(doc)


def check_dataset(spec: Any) -> None:
    """Load a local .npz dataset here as the train stage will, before anything is uploaded or
    started: a bad file (layout, keys, labels, inputs or steps that do not fit the net) is one
    error naming the user's file and key; a random split is warned about once, here."""
    from spiker.flow.stages import load_data

    name = spec.dataset.name
    if spec.dataset_artifact is not None or not name.endswith(".npz"):
        return
    if not Path(name).is_file():
        raise UsageError(f"dataset.name: no such file {name}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_data(spec)
    for w in {str(w.message): w for w in caught}.values():  # each once, as one line
        print(f"spiker: warning: {w.message}", file=sys.stderr)


def upload_model(spec: Any, client: Any) -> dict[str, Any]:
    """Upload the spec's ``model.nir`` as spiker's own NIR export (with its time step, resets and
    n_cycles, so the services read it as loaded here); the spec's new ``model`` and ``net``."""
    import tempfile

    from spiker import nir as spiker_nir

    snn = spiker_nir.load(spec.model.nir, **{**spec.model.load_args(), "n_cycles": spec.net_spec.n_cycles})
    with tempfile.TemporaryDirectory() as tmp:
        data = spiker_nir.save(snn, Path(tmp) / "model.nir").read_bytes()
    ref = client.upload_bytes(data, "model.nir")
    print(f"uploaded {spec.model.nir} as spiker NIR ({ref.size} bytes) {ref.sha256[:16]}...", file=sys.stderr)
    return {"model": {"artifact": ref.sha256}, "net": snn.spec.to_dict()}


# -- commands --------------------------------------------------------------------------------

def _client(args: argparse.Namespace) -> Any:
    from spiker_gateway.client import GatewayClient

    target = args.gateway or os.environ.get(GATEWAY_ENV)
    if not target:
        raise UsageError("give --gateway HOST:PORT or set SPIKER_GATEWAY")
    return GatewayClient(target, _client_token(args), args.ca_cert)


def _client_token(args: argparse.Namespace) -> str | None:
    """--token-file, else $SPIKER_TOKEN (or the older $SPIKER_GATEWAY_TOKEN), else a --token (warned: ps shows it)."""
    from spiker_gateway.auth import client_token

    try:
        token = client_token(getattr(args, "token_file", None)) or os.environ.get("SPIKER_GATEWAY_TOKEN")
    except (OSError, ValueError) as exc:
        raise UsageError(f"--token-file: {exc}") from None
    if token is None and getattr(args, "token", None):
        warnings.warn("--token on the command line is visible to every user of this machine (ps); use "
                      "--token-file FILE or $SPIKER_TOKEN", UserWarning, stacklevel=2)
        token = args.token
    return token


def cmd_submit(args: argparse.Namespace) -> int:
    from spiker.flow.spec import load_flow_spec

    spec = load_flow_spec(args.spec)
    check_dataset(spec)
    with _client(args) as client:
        run = client.submit(spec_text_for(spec, client), no_cache=args.no_cache)
        print(run.run_id)
        if args.watch:
            return print_summary(follow(client, run.run_id, progress=not args.quiet))
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        return print_summary(follow(client, args.run_id, progress=not args.quiet))


def cmd_gc(args: argparse.Namespace) -> int:
    """Retention: see spiker_gateway/gc.py."""
    from spiker.store import open_store
    from spiker_gateway.gc import collect

    if args.ttl_days <= 0:
        raise UsageError("--ttl-days must be > 0")
    report = collect(open_store(args.store), args.ttl_days * 86400.0, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    print(f"spiker gc: {verb} {len(report.runs)} run(s), {report.uploads} upload(s), {report.cache_entries} "
          f"cache entr(ies), {report.artifacts} artifact(s) ({report.bytes_freed} bytes); kept "
          f"{report.kept_artifacts} referenced artifact(s)")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from spiker_gateway.client import state_name

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
        if args.download:
            files = client.download_run(args.run_id, args.download)
            print(f"wrote {len(files)} files to {args.download}", file=sys.stderr)
        if args.json:
            print(json_format.MessageToJson(run, preserving_proto_field_name=True))
            return 0
        from spiker_gateway.client import stage_state_name

        for s in run.stages:
            print(f"  {s.name:9s} {stage_state_name(s.state):9s} {s.seconds:7.1f}s"
                  f"{'  cached' if s.cached else ''}{'  attempts ' + str(s.attempts) if s.attempts > 1 else ''}")
        return print_summary(run)


def cmd_cancel(args: argparse.Namespace) -> int:
    from spiker_gateway.client import state_name

    with _client(args) as client:
        run = client.cancel(args.run_id)
        print(f"{run.run_id}: {state_name(run.state)}")
    return 0


def rpc_error_line(exc: BaseException) -> str | None:
    """The one line of a gRPC error from the gateway or a service: code, [field], message."""
    grpc = sys.modules.get("grpc")
    if grpc is None or not isinstance(exc, grpc.RpcError) or not hasattr(exc, "code"):
        return None
    from spiker_api.errors import error_detail

    detail = error_detail(exc)
    field = f" [{detail['field']}]" if detail["field"] else ""
    return f"{exc.code().name}{field}: {detail['message'] or exc.details()}"


register_error_formatter(rpc_error_line)  # spiker's CLI prints it as one line


def web_bind_host(web_host: str | None, host: str, tls: bool) -> str:
    """Where the run browser listens: a token login must not cross plain HTTP on a public address.

    With TLS it follows ``--web-host`` or the gateway's ``--host``; without TLS it stays on 127.0.0.1
    unless ``--web-host`` names an address explicitly (e.g. behind a TLS-terminating proxy; warned).
    """
    if tls:
        return web_host or host
    if web_host is None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            logging.getLogger(__name__).warning(
                "spiker gateway: no TLS: the run browser listens on 127.0.0.1 only (give --tls-cert/--tls-key, "
                "or --web-host behind a TLS proxy)")
        return "127.0.0.1"
    if web_host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger(__name__).warning("spiker gateway: the run browser on %s serves PLAINTEXT: logins "
                                            "cross the network unencrypted unless a TLS proxy fronts it", web_host)
    return web_host


def cmd_gateway(args: argparse.Namespace) -> int:
    """Serve the gateway until SIGTERM/SIGINT."""
    import threading

    from spiker.store import open_store
    from spiker_gateway.server import all_targets, build_gateway
    from spiker_gateway.validate import Limits

    if args.services:
        targets = all_targets(args.services)
    else:
        targets = {"trainer": args.trainer, "optimizer": args.optimizer, "hdlgen": args.hdlgen,
                   "simulator": args.simulator}
        if not all(targets.values()):
            raise UsageError("spiker gateway: give --services HOST:PORT or all of --trainer/--optimizer/"
                             "--hdlgen/--simulator")
    from spiker_gateway.auth import TokenAuth

    tokens = token_table(args.tokens)
    if not tokens:
        raise UsageError("no tokens configured: give --tokens FILE or set SPIKER_GATEWAY_TOKENS")
    tokens = TokenAuth(tokens, args.tokens)  # SIGHUP re-reads the file
    signal.signal(signal.SIGHUP, lambda *_: tokens.reload())
    limits = Limits(max_concurrent_runs=args.max_runs, max_upload_bytes=args.max_upload_mb * 1024 * 1024)
    if args.tls_dir and not (args.tls_cert or args.tls_key):
        cert, key = Path(args.tls_dir) / "tls.crt", Path(args.tls_dir) / "tls.key"
        if cert.is_file() and key.is_file():
            args.tls_cert, args.tls_key = str(cert), str(key)
        else:
            logging.getLogger(__name__).warning("spiker gateway: no tls.crt/tls.key in %s: serving PLAINTEXT",
                                                args.tls_dir)
    store = open_store(args.store)
    try:
        server = build_gateway(store, targets, tokens, host=args.host, port=args.port,
                               limits=limits, tls_cert=args.tls_cert, tls_key=args.tls_key,
                               health_port=args.health_port)
    except RuntimeError as exc:  # grpc's bind failure
        if "bind" not in str(exc).lower():
            raise
        raise UsageError(f"cannot listen on {args.host}:{args.port} (in use, or not an address of this "
                         "machine)") from None
    print(f"spiker gateway: listening on {args.host}:{server.port}", flush=True)
    web = None
    if args.web_port >= 0:  # the run browser: same run manager, tokens and store, its own port
        from spiker_gateway.web import start_web

        tls = bool(args.tls_cert and args.tls_key)
        web_host = web_bind_host(args.web_host, args.host, tls)
        try:
            web = start_web(server.manager, tokens, store, host=web_host, port=args.web_port,
                            certfile=args.tls_cert if tls else None, keyfile=args.tls_key if tls else None)
        except OSError:
            server.stop(1.0)
            raise UsageError(f"web run browser: cannot listen on {web_host}:{args.web_port}") from None
        print(f"spiker gateway: run browser on {web.url}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    if web is not None:
        web.stop()
    server.stop(2.0)
    return 0


# -- registration ------------------------------------------------------------------------------

def token_table(path: str | None) -> dict[str, str]:
    """The token table of ``--tokens``/``$SPIKER_GATEWAY_TOKENS``; a missing or bad file is a UsageError."""
    from spiker_gateway.auth import load_tokens

    try:
        return load_tokens(path)
    except FileNotFoundError:
        raise UsageError(f"token file {path}: no such file (lines 'TOKEN USER')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"token file {path}: cannot read it ({exc})") from None
    except ValueError as exc:
        raise UsageError(f"bad tokens: {exc}") from None


def _web_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--web-port", type=int, default=WEB_PORT,
                   help=f"port of the web run browser (default {WEB_PORT}; 0: any free port; -1: none)")
    p.add_argument("--web-host", help="bind address of the run browser (default: --host with TLS, else 127.0.0.1)")


def _client_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gateway", help=f"gateway address HOST:PORT (default ${GATEWAY_ENV})")
    p.add_argument("--token-file", help="file whose first line is your bearer token (else $SPIKER_TOKEN)")
    p.add_argument("--token", help=argparse.SUPPRESS)  # deprecated: visible in ps
    p.add_argument("--ca-cert", help="CA certificate (PEM) of a TLS gateway")


def add_cli_commands(subparsers: Any) -> None:
    """Add the gateway commands to a ``spiker`` CLI's subparsers (each sets ``func``)."""
    p = subparsers.add_parser("gateway", help="serve the gateway (stage services run elsewhere)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=50050, help="port (0: any free port; default 50050)")
    p.add_argument("--services", help="HOST:PORT of `spiker serve all`")
    for name in ("trainer", "optimizer", "hdlgen", "simulator"):
        p.add_argument(f"--{name}", help=f"HOST:PORT of the {name} service")
    p.add_argument("--store", help="local store directory when SPIKER_S3_ENDPOINT is unset")
    p.add_argument("--tokens", help="token file: lines 'TOKEN USER' (also $SPIKER_GATEWAY_TOKENS)")
    p.add_argument("--max-runs", type=int, default=2, help="runs at once; more queue FIFO (default 2)")
    _web_args(p)
    p.add_argument("--max-upload-mb", type=int, default=64, help="largest dataset upload (default 64 MiB)")
    p.add_argument("--tls-cert", help="TLS certificate (PEM)")
    p.add_argument("--tls-key", help="TLS private key (PEM)")
    p.add_argument("--tls-dir", help="serve TLS with DIR/tls.crt and DIR/tls.key when both exist (a mounted "
                                     "kubernetes.io/tls Secret); else plaintext, with a warning")
    p.add_argument("--health-port", type=int, help="also serve the health check alone, in plaintext, here "
                                                   "(probes of a TLS gateway)")
    p.set_defaults(func=cmd_gateway)

    p = subparsers.add_parser("submit", help="submit a flow spec to a gateway")
    p.add_argument("spec", help="flow spec (YAML or JSON); a local .npz dataset is uploaded")
    p.add_argument("--no-cache", action="store_true", help="recompute every stage")
    p.add_argument("--watch", action="store_true", help="follow the run until it ends")
    _client_args(p)
    p.set_defaults(func=cmd_submit)

    for name, func, text in (("watch", cmd_watch, "follow a run until it ends"),
                             ("get", cmd_get, "show a run's record and report"),
                             ("cancel", cmd_cancel, "cancel a queued or running run")):
        p = subparsers.add_parser(name, help=text)
        p.add_argument("run_id")
        if name == "get":
            p.add_argument("--json", action="store_true", help="the whole record as JSON")
            p.add_argument("--download", metavar="DIR", help="also write the run's files to DIR: vhdl/, "
                           "plots/, model.pt, sweep.csv/.json, sim.json, report.json/.md, record.json")
        _client_args(p)
        p.set_defaults(func=func)

    p = subparsers.add_parser("ls", help="list your runs on a gateway")
    p.add_argument("--limit", type=int, default=0, help="newest N runs (0: all)")
    _client_args(p)
    p.set_defaults(func=cmd_ls)

    p = subparsers.add_parser("gc", help="remove runs, uploads, cache entries and artifacts older than a TTL "
                                         "(never what a kept run references)")
    p.add_argument("--store", help="local store directory when SPIKER_S3_ENDPOINT is unset")
    p.add_argument("--ttl-days", type=float, default=30.0, help="keep what is younger (default 30 days)")
    p.add_argument("--dry-run", action="store_true", help="only report what would be removed")
    p.set_defaults(func=cmd_gc)


def main(argv: list[str] | None = None) -> int:
    """``python -m spiker_gateway.cli <command> ...`` (the same commands as the ``spiker`` CLI, same exit codes)."""
    from spiker.cli import add_verbosity, finish_parser, run_command, setup_logging

    parser = argparse.ArgumentParser(prog="spiker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_verbosity(parser, top=True)
    add_cli_commands(parser.add_subparsers(dest="command", required=True))
    args = finish_parser(parser).parse_args(argv)
    setup_logging(args)
    return run_command(args)


if __name__ == "__main__":
    sys.exit(main())
