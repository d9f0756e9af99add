"""The ``spiker`` console script: the library's commands plus those of the services and the gateway.

    train optimize hdl simulate implement     the library, on one output folder (spiker/cli.py)
    serve worker                               a stage service, a sweep shard (spiker_app/serve.py)
    run up                                     the whole stack on this machine (spiker_app/local.py)
    gateway submit watch get cancel ls gc      the gateway and its client (spiker_gateway/cli.py)

Exit codes and ``-q``/``-v`` are the library CLI's (spiker/cli.py).
"""

from __future__ import annotations

import argparse
import sys

from spiker import cli as library_cli
from spiker_app import local, serve
from spiker_gateway import cli as gateway_cli

#: the commands beyond the library's, in the order ``spiker --help`` lists them
COMMAND_GROUPS = (serve.add_cli_commands, local.add_cli_commands, gateway_cli.add_cli_commands)


def build_parser() -> argparse.ArgumentParser:
    """The full ``spiker`` parser."""
    return library_cli.build_parser(extra=COMMAND_GROUPS)


def main(argv: list[str] | None = None) -> int:
    """Run ``spiker <command> ...``; returns the exit code."""
    return library_cli.main(argv, parser=build_parser)


if __name__ == "__main__":
    sys.exit(main())
