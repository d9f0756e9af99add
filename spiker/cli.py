"""The ``spiker`` command line: stage commands over one output folder.

Exit codes of every command: 0 success; 1 a run or simulation that failed (mismatches, a failed
stage); 2 bad input (spec, files, tokens, a refused gateway call), printed as one line
``spiker: error: ...``; 130 interrupted; 141 the output pipe was closed (``spiker ... | head``).
``-q`` (no progress) and ``-v`` (debug logging) go before or after the subcommand.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from spiker.errors import SpikerError

EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_PIPE = 1, 2, 130, 141


class UsageError(SpikerError):
    """A command line that cannot work (missing option, unreadable token file, ...): exit code 2."""


def _out_dir(args: argparse.Namespace, spec) -> Path:
    return Path(args.out) if args.out else Path("runs") / spec.name


def cmd_train(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    _, history = stages.train(spec, out, progress=not args.quiet)
    if spec.model is not None:
        print(f"no training: model from {spec.model.nir}; model in {out / 'model.pt'}")
        return 0
    print(f"test accuracy {history.final_test_accuracy:.4f} after {len(history.epoch)} epochs "
          f"({history.wall_time:.1f}s training); model in {out / 'model.pt'}")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = _with_policy(load_flow_spec(args.spec), args)
    out = _out_dir(args, spec)
    result = stages.optimize(spec, out, progress=not args.quiet)
    params = stages.select(spec, out, progress=not args.quiet)
    chosen = result.row(**params)
    print(f"selected {dict(params)}: accuracy {chosen.accuracy:.4f} (float {result.float_accuracy:.4f}); "
          f"wrote {out / 'sweep.csv'}, {out / 'pareto.png'}, {out / 'optim_params.json'}")
    if getattr(params, "reason", None):
        print(f"why: {params.reason}")
    return 0


def _with_policy(spec, args: argparse.Namespace):
    """The spec with the command line's selection options (objective, budgets) over its select section."""
    from dataclasses import replace

    changes = {k: getattr(args, k) for k in ("max_accuracy_drop", "objective", "max_lut", "max_ff", "max_bram",
                                             "max_cycles") if getattr(args, k, None) is not None}
    return replace(spec, select=replace(spec.select, **changes)) if changes else spec


def cmd_hdl(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    stages.hdl(spec, out, progress=not args.quiet, resources=False if args.no_resources else args.resources,
               testbench=args.testbench)
    wrote = [out / "hdl"] + ([out / "resources.json"] if (out / "resources.json").is_file() else [])
    if args.testbench or spec.hdl.testbench:
        wrote.append(out / "testbench")
    print("wrote " + " and ".join(map(str, wrote)))
    _print_resources(out)
    return 0


def _print_resources(out: Path) -> None:
    """The cost model's estimate of the selected design beside yosys' count (when synthesis ran)."""
    import json

    files = {name: out / f"{name}.json" for name in ("selection", "resources")}
    docs = {k: json.loads(p.read_text()) if p.is_file() else {} for k, p in files.items()}
    est, res = docs["selection"].get("estimate") or {}, docs["resources"]
    if res.get("method") == "fast":  # hdl.resources: fast — an estimate, not a synthesized count
        print(f"resources ({res.get('note', 'fast')}): " + ", ".join(
            f"{k.upper()} {res.get(k, '-')}" for k in ("lut", "ff", "bram", "dsp")))
    elif est or res:
        print("resources (estimated / measured): " + ", ".join(
            f"{k.upper()} {est.get(k, '-')} / {res.get(k, '-')}" for k in ("lut", "ff", "bram", "dsp")))


def cmd_simulate(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    report = stages.simulate(spec, out, samples=args.samples, trace=True if args.trace else None,
                             progress=not args.quiet, wave=args.wave, wave_sample=args.wave_sample)
    print(report)
    print(f"wrote {out / 'sim.json'}" + (f" and {args.wave} (sample {args.wave_sample})" if args.wave else ""))
    return 0 if report.mismatches == 0 else 1


def add_verbosity(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """``-q/--quiet`` and ``-v/--verbose`` on ``parser`` (on a subcommand they default to the top level's)."""
    default: Any = False if top else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="store_true", default=default, help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="no progress output, warnings and errors only")


def all_subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every (nested) subcommand parser of ``parser``."""
    out = []
    for action in parser._actions:  # argparse has no public accessor for registered subparsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                out.append(sub)
                out.extend(all_subparsers(sub))
    return out


def finish_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Accept ``-q/-v`` after every subcommand too (once all subcommands are registered)."""
    for sub in all_subparsers(parser):
        if not any(a.dest == "quiet" for a in sub._actions):
            add_verbosity(sub)
    return parser


def setup_logging(args: argparse.Namespace) -> None:
    """Logging to stderr (INFO, DEBUG with ``-v``, WARNING with ``-q``) and the progress mode."""
    from spiker import progress

    level = logging.DEBUG if args.verbose else logging.WARNING if args.quiet else logging.INFO
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if args.verbose else "%(asctime)s %(message)s"
    logging.basicConfig(level=level, format=fmt, datefmt=None if args.verbose else "%H:%M:%S")
    if args.quiet:
        progress.configure("off")


#: more one-line formatters of user errors, registered by the commands that raise them (the gateway
#: client's gRPC errors: spiker_gateway.cli), so the library knows nothing of services or gateway
ERROR_FORMATTERS: list[Callable[[BaseException], str | None]] = []


def register_error_formatter(formatter: Callable[[BaseException], str | None]) -> None:
    """Add ``formatter`` (an exception -> its one line, or None when it is not its kind) to error_line."""
    if formatter not in ERROR_FORMATTERS:
        ERROR_FORMATTERS.append(formatter)


def error_line(exc: BaseException) -> str | None:
    """The one-line message of a user error (``None``: not a user error, a bug)."""
    if isinstance(exc, SpikerError):
        return str(exc)
    if isinstance(exc, OSError):  # a missing or unreadable file, a port in use, ...
        return f"{exc.strerror or exc}: {exc.filename}" if exc.filename else str(exc) or type(exc).__name__
    for formatter in ERROR_FORMATTERS:
        line = formatter(exc)
        if line is not None:
            return line
    return None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that Python's flush at exit does not fail on a closed pipe again."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured output)
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives until exit


def run_command(args: argparse.Namespace) -> int:
    """Run ``args.func(args)``; user errors become one line on stderr and exit code 2."""
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("spiker: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (``| head``): stop quietly
        _silence_stdout()
        return EXIT_PIPE
    except Exception as exc:
        line = error_line(exc)
        if line is None:
            raise
        first, *rest = line.splitlines() or [""]
        print(f"spiker: error: {first}", file=sys.stderr)
        for extra in rest[:20]:  # a tool's error lines, each indented
            print(f"  {extra}", file=sys.stderr)
        return EXIT_BAD_INPUT


def cmd_implement(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    report = stages.implement(spec, out, progress=not args.quiet, samples=args.samples, target=args.target,
                              speed=args.speed, package=args.package, clock_mhz=args.clock_mhz,
                              stream_width=args.stream_width)
    print(report)
    print(f"wrote {out / 'implement.json'} and {out / 'implement'}")
    return 0 if report.fits else 1


def add_library_commands(sub: Any) -> None:
    """Add the library's stage commands (train, optimize, hdl, simulate, implement) to ``sub``."""
    def stage(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("spec", help="flow spec (YAML or JSON)")
        p.add_argument("--out", help="output folder (default runs/<spec name>)")
        p.set_defaults(func=func)
        return p

    stage("train", cmd_train, "train the spec's network and print its test accuracy")
    p = stage("optimize", cmd_optimize, "sweep bit-widths with the golden model and select a config")
    p.add_argument("--objective", choices=("lut", "latency", "bram"), help="what to minimise (default: the spec's)")
    p.add_argument("--max-accuracy-drop", type=float, help="accuracy floor below float (default: the spec's)")
    for name in ("lut", "ff", "bram", "cycles"):
        p.add_argument(f"--max-{name}", type=float, help=f"budget on the estimated {name.upper()}"
                       if name != "cycles" else "budget on cycles per inference")
    p = stage("hdl", cmd_hdl, "generate the VHDL accelerator (and estimate its resources)")
    p.add_argument("--no-resources", action="store_true", help="skip the resource estimate")
    p.add_argument("--resources", choices=["synth", "fast"], default=None,
                   help="over the spec's hdl.resources: synth (GHDL synth + yosys) or fast (the cost model's "
                        "estimate, no synthesis)")
    p.add_argument("--testbench", type=int, metavar="N", help="also write the verification kit (self-checking "
                   "AXI4-Stream testbench, golden vectors, run_ghdl.sh) on N test samples into <out>/testbench")
    p = stage("simulate", cmd_simulate, "co-simulate the VHDL in GHDL against the golden model")
    p.add_argument("--samples", type=int, help="test samples to simulate (default: the spec's)")
    p.add_argument("--trace", action="store_true", help="compare every layer at every step")
    p.add_argument("--wave", metavar="FILE", help="also write one sample's waveform: FILE.vcd (VCD) or FILE.ghw (GHW)")
    p.add_argument("--wave-sample", type=int, default=0, metavar="I", help="the test sample of --wave (default 0)")
    p = stage("implement", cmd_implement, "place and route on an FPGA part: utilisation, Fmax, latency, bitstream")
    p.add_argument("--target", help="ecp5-25k, ecp5-45k, ecp5-85k, ice40-up5k, ice40-hx8k (default: the "
                                    "spec's implement.target, else ecp5-85k)")
    p.add_argument("--speed", type=int, help="ECP5 speed grade 6, 7 or 8 (default 6)")
    p.add_argument("--package", help="package, e.g. CABGA381 (default: the part's)")
    p.add_argument("--clock-mhz", type=float, help="requested clock in MHz (default 100)")
    p.add_argument("--stream-width", type=int, choices=(8, 16, 32, 64), help="fixed-width AXI4-Stream top")
    p.add_argument("--samples", type=int, help="test samples simulated for the cycles (default 20)")


def build_parser(extra: Sequence[Callable[[Any], None]] = ()) -> argparse.ArgumentParser:
    """The ``spiker`` parser: the library's commands, then each ``extra(subparsers)``'s.

    The library knows no others: the ``spiker`` console script (spiker_app/cli.py) passes the
    service, local-run and gateway commands here.
    """
    parser = argparse.ArgumentParser(prog="spiker", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_verbosity(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True)
    add_library_commands(sub)
    for add in extra:
        add(sub)
    return finish_parser(parser)


def main(argv: list[str] | None = None,
         parser: Callable[[], argparse.ArgumentParser] = build_parser) -> int:
    """Parse ``argv`` with ``parser()`` and run the command; returns the exit code."""
    try:
        args = parser().parse_args(argv)
    except BrokenPipeError:  # ``spiker --help | head``
        _silence_stdout()
        return EXIT_PIPE
    setup_logging(args)
    code = run_command(args)
    if code != EXIT_PIPE:
        try:
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_PIPE
    return code


if __name__ == "__main__":
    sys.exit(main())
