"""The ``spiker`` command line: stage commands over one output folder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from spiker.errors import SpikerError


def _out_dir(args: argparse.Namespace, spec) -> Path:
    return Path(args.out) if args.out else Path("runs") / spec.name


def cmd_train(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    _, history = stages.train(spec, out, progress=not args.quiet)
    print(f"test accuracy {history.final_test_accuracy:.4f} after {len(history.epoch)} epochs "
          f"({history.wall_time:.1f}s training); model in {out / 'model.pt'}")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    result = stages.optimize(spec, out, progress=not args.quiet)
    params = stages.select(spec, out, progress=not args.quiet)
    chosen = result.row(**params)
    print(f"selected {params}: accuracy {chosen.accuracy:.4f} (float {result.float_accuracy:.4f}); "
          f"wrote {out / 'sweep.csv'}, {out / 'pareto.png'}, {out / 'optim_params.json'}")
    return 0


def cmd_hdl(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    stages.hdl(spec, out, progress=not args.quiet, resources=False if args.no_resources else None)
    wrote = [out / "hdl"] + ([out / "resources.json"] if (out / "resources.json").is_file() else [])
    print("wrote " + " and ".join(map(str, wrote)))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from spiker.flow import load_flow_spec, stages

    spec = load_flow_spec(args.spec)
    out = _out_dir(args, spec)
    report = stages.simulate(spec, out, samples=args.samples, trace=True if args.trace else None,
                             progress=not args.quiet)
    print(report)
    print(f"wrote {out / 'sim.json'}")
    return 0 if report.mismatches == 0 else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spiker", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)

    def stage(name: str, func, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("spec", help="flow spec (YAML or JSON)")
        p.add_argument("--out", help="output folder (default runs/<spec name>)")
        p.set_defaults(func=func)
        return p

    stage("train", cmd_train, "train the spec's network and print its test accuracy")
    stage("optimize", cmd_optimize, "sweep bit-widths with the golden model and select a config")
    p = stage("hdl", cmd_hdl, "generate the VHDL accelerator (and estimate its resources)")
    p.add_argument("--no-resources", action="store_true", help="skip GHDL synth + yosys")
    p = stage("simulate", cmd_simulate, "co-simulate the VHDL in GHDL against the golden model")
    p.add_argument("--samples", type=int, help="test samples to simulate (default: the spec's)")
    p.add_argument("--trace", action="store_true", help="compare every layer at every step")
    from spiker.serve import add_cli_commands

    add_cli_commands(sub)
    from gateway.cli import add_cli_commands as add_gateway_commands

    add_gateway_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except SpikerError as exc:
        print(f"spiker: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("spiker: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
