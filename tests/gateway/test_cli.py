"""``spiker run`` end to end as a command (tiny spec with a local .npz), and the client commands' errors."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from gw_support import ALICE, ROOT, tiny_npz, tiny_spec

from spiker_gateway.cli import main


@pytest.mark.slow
def test_spiker_run_tiny_spec(tmp_path: Path) -> None:
    (tmp_path / "tiny.npz").write_bytes(tiny_npz())
    spec = tiny_spec(name="cli-tiny")
    spec["dataset"] = {"name": "tiny.npz", "batch_size": 32, "test_fraction": 0.3}  # relative to the spec file
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(spec))
    out, store = tmp_path / "out", tmp_path / "store"
    env = {**os.environ, "SPIKER_S3_ENDPOINT": ""}
    cmd = [sys.executable, "-m", "spiker_app", "-q", "run", str(tmp_path / "tiny.yaml"), "--store", str(store),
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "succeeded" in proc.stdout and "mismatches: 0 on 10 samples" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["mismatches"] == 0 and (out / "report.md").is_file() and (out / "plots" / "training.png").is_file()
    assert (out / "vhdl" / "files.txt").is_file() and (out / "record.json").is_file()
    # again: from the cache
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"train [\d.]+s \(cached\), optimize [\d.]+s \(skipped\), hdlgen [\d.]+s \(cached\)", proc.stdout)


def test_client_commands_report_errors_in_one_line(offline_gateway, capsys, tmp_path) -> None:
    code = main(["ls", "--gateway", offline_gateway.target, "--token", "tok-nobody-0123456789"])
    assert code == 2
    err = capsys.readouterr().err
    assert "UNAUTHENTICATED" in err and "Traceback" not in err
    token_file = tmp_path / "token"
    token_file.write_text(ALICE + "\n")
    code = main(["get", "r-20260101-000000-00000000", "--gateway", offline_gateway.target,
                 "--token-file", str(token_file)])
    assert code == 2 and "NOT_FOUND [run_id]" in capsys.readouterr().err


def test_the_run_browser_stays_on_loopback_without_tls() -> None:
    """A token login must not cross plain HTTP on a public address: no TLS, no public bind by default."""
    from spiker_gateway.cli import web_bind_host

    assert web_bind_host(None, "0.0.0.0", tls=False) == "127.0.0.1"
    assert web_bind_host(None, "0.0.0.0", tls=True) == "0.0.0.0"
    assert web_bind_host("10.0.0.5", "0.0.0.0", tls=False) == "10.0.0.5"  # explicit: honoured (warned)
