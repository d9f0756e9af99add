"""Where a download puts each of a run's files (``spiker get --download``, report.md's links, the web page).

Shared by the client and the server side (report, web run browser); imports nothing heavier than
the standard library, so the client stays light.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

#: where ``spiker get --download`` puts a run's files (name in Run.artifacts -> path under DIR);
#: names under ``plots/`` and ``vhdl/`` keep their path, the report files their name
DOWNLOAD_NAMES = {
    "train.model": "model.pt",
    "train.history": "history.json",
    "optimize.sweep_csv": "sweep.csv",
    "optimize.sweep_json": "sweep.json",
    "optimize.optim_params": "optim_params.json",
    "hdlgen.resources.report": "resources.json",
    "synth.resources.report": "resources.json",  # the synth stage estimates resources beside the simulation
    "optimize.selection": "selection.json",
    "simulate.report": "sim.json",
    "report.json": "report.json",
    "report.md": "report.md",
    "record": "record.json",
}
_TREES = ("plots/", "vhdl/")


def download_path(name: str) -> str | None:
    """Where a run file goes under a download folder (``None``: not part of a download, e.g. the tar)."""
    if name.startswith(_TREES):
        rel = posixpath.normpath(name)
        return rel if rel.startswith(_TREES) and ".." not in rel.split("/") else None
    return DOWNLOAD_NAMES.get(name)


def stage_output_keys(stages: Iterable[dict[str, Any]]) -> dict[str, str]:
    """``"<stage>.<output>"`` -> store key of every output of a run record's stages."""
    return {f"{stage['name']}.{name}": ref["key"]
            for stage in stages for name, ref in (stage.get("outputs") or {}).items()}
