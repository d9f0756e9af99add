"""User errors of every CLI command: one line on stderr, no traceback, the documented exit code."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
import yaml

from spiker.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_PIPE, all_subparsers, run_command
from spiker_app.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]


def _spiker(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SPIKER_S3_ENDPOINT": "", "SPIKER_GATEWAY": "", "SPIKER_GATEWAY_TOKENS": ""}
    return subprocess.run([sys.executable, "-m", "spiker_app", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def _one_line_error(proc: subprocess.CompletedProcess[str], code: int, text: str) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("spiker: error:")]
    assert len(lines) == 1 and text in lines[0], proc.stderr


def test_run_with_a_missing_npz_is_bad_input(tmp_path: Path) -> None:
    spec = {"name": "x", "dataset": {"name": "missing.npz"},
            "net": {"n_cycles": 5, "n_inputs": 8, "layer_0": {"neuron_model": "if", "n_neurons": 3}}}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    proc = _spiker("run", "spec.yaml", "--store", str(tmp_path / "store"), cwd=tmp_path)
    _one_line_error(proc, 2, "missing.npz")
    assert not (tmp_path / "store").exists()  # refused before any service started


def _main_error(argv: list[str], code: int, text: str, capsys, monkeypatch) -> None:  # noqa: ANN001
    """In-process ``spiker ARGV``: exit ``code`` and one ``spiker: error:`` line containing ``text``."""
    for var in ("SPIKER_GATEWAY", "SPIKER_GATEWAY_TOKENS", "SPIKER_GATEWAY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    assert main(argv) == code
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("spiker: error:")]
    assert "Traceback" not in err and len(lines) == 1 and text in lines[0], err


def test_up_with_a_missing_or_short_token_file(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    _main_error(["up", "--tokens", str(tmp_path / "nope.txt")], 2, "nope.txt", capsys, monkeypatch)
    (tmp_path / "short.txt").write_text("abc alice\n")
    _main_error(["up", "--tokens", str(tmp_path / "short.txt")], 2, "too short", capsys, monkeypatch)
    (tmp_path / "empty.txt").write_text("# nobody\n")
    _main_error(["gateway", "--tokens", str(tmp_path / "empty.txt"), "--services", "127.0.0.1:1"], 2,
                "no tokens", capsys, monkeypatch)


def test_missing_spec_and_gateway(tmp_path: Path, capsys, monkeypatch) -> None:  # noqa: ANN001
    _main_error(["train", str(tmp_path / "nothere.yaml")], 2, "nothere.yaml", capsys, monkeypatch)
    _main_error(["ls"], 2, "--gateway", capsys, monkeypatch)
    _main_error(["get", "r-1", "-q"], 2, "--gateway", capsys, monkeypatch)


def test_gateway_on_a_busy_port(capsys, monkeypatch) -> None:  # noqa: ANN001
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        monkeypatch.setenv("SPIKER_GATEWAY_TOKENS", "x" * 40 + ":alice")
        assert main(["gateway", "--services", "127.0.0.1:1", "--port", str(port), "--web-port", "-1"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and f"127.0.0.1:{port}" in err, err


def test_quiet_and_verbose_on_every_subcommand() -> None:
    parser = build_parser()
    subs = all_subparsers(parser)
    assert len(subs) >= 12
    for sub in subs:
        dests = {a.dest for a in sub._actions}
        assert {"quiet", "verbose"} <= dests, sub.prog
    for argv, quiet, verbose in ((["train", "s.yaml"], False, False), (["-q", "train", "s.yaml"], True, False),
                                 (["train", "s.yaml", "-q"], True, False), (["-v", "ls", "-q"], True, True),
                                 (["get", "r-1", "--verbose"], False, True)):
        args = parser.parse_args(argv)
        assert (args.quiet, args.verbose) == (quiet, verbose), argv


class _Rpc(grpc.RpcError):
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.NOT_FOUND

    def details(self) -> str:
        return "no run r-1"

    def trailing_metadata(self) -> tuple:
        return ()


@pytest.mark.parametrize(("exc", "code", "text"), [
    (BrokenPipeError(), EXIT_PIPE, ""), (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted"),
    (_Rpc(), EXIT_BAD_INPUT, "spiker: error: NOT_FOUND: no run r-1"),
    (FileNotFoundError(2, "No such file or directory", "a.npz"), EXIT_BAD_INPUT, "No such file or directory: a.npz"),
])
def test_run_command_maps_errors(exc: BaseException, code: int, text: str, capsys) -> None:  # noqa: ANN001
    def func(_: argparse.Namespace) -> int:
        raise exc

    assert run_command(argparse.Namespace(func=func)) == code
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err


def test_a_bug_is_not_hidden() -> None:
    def func(_: argparse.Namespace) -> int:
        raise ZeroDivisionError("bug")

    with pytest.raises(ZeroDivisionError):
        run_command(argparse.Namespace(func=func))


def test_help_into_a_closed_pipe(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "spiker_app", "--help"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the help is written
    err = proc.stderr.read().decode()
    assert proc.wait(60) in (0, EXIT_PIPE) and "Traceback" not in err, err
    assert main is not None
