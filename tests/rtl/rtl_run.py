"""Pytest side of the cocotb tests (a helper, not tests): write the vectors, build in GHDL, run a cocotb module.

Every random choice of a test is seeded: the pytest side derives its seeds from the test's
parameters (never from ``hash()``, which changes every run), and the cocotb side's
:class:`cocotb_tb.ClockedTB` seeds from ``vectors["seed"]``, which a failure message names.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from spiker.hdl.interface import RTL_DIR, RTL_FILES

#: the RTL library, in analysis order
LIB = [RTL_DIR / name for name in RTL_FILES]


def run_cocotb(tmp_path: Path, toplevel: str, module: str, vectors: dict, sources: Sequence[Path] = (),
               testcase: str | None = None, parameters: dict | None = None, library: bool = True) -> None:
    """Build ``sources`` (after the RTL library when ``library``) with ``toplevel`` in GHDL and run the
    cocotb tests of ``module`` (one ``testcase`` or all) on ``vectors``; fails naming the seed."""
    runner_mod = pytest.importorskip("cocotb_tools.runner")
    if shutil.which("ghdl") is None:
        pytest.skip("GHDL not installed")
    vec = tmp_path / "vectors.json"
    vec.write_text(json.dumps(vectors))
    runner = runner_mod.get_runner("ghdl")
    build = tmp_path / "build"
    runner.build(sources=[*(LIB if library else []), *sources], hdl_toplevel=toplevel, build_args=["--std=08"],
                 build_dir=build, always=True)
    results = runner.test(hdl_toplevel=toplevel, test_module=module, testcase=testcase, test_args=["--std=08"],
                          parameters=parameters or {}, build_dir=build, extra_env={"SPIKER_VECTORS": str(vec)})
    from cocotb_tools.check_results import get_results

    total, failed = get_results(results)
    assert total >= 1 and failed == 0, (f"{failed} of {total} cocotb tests failed (seed {vectors.get('seed')}, "
                                        f"vectors {vec}); see {results}")
