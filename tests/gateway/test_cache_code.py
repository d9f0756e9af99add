"""The cache keys hash the code each stage's result depends on (spiker_gateway.cache.STAGE_CODE)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_layering import build_graph

from spiker_gateway import cache

ROOT = Path(cache.__file__).resolve().parents[1]
#: the module each stage's gateway call runs (synth is the hdlgen service with resources)
JOBS = {"train": "spiker_services.trainer.job", "optimize": "spiker_services.optimizer.job",
        "hdlgen": "spiker_services.hdlgen.job", "synth": "spiker_services.hdlgen.job",
        "simulate": "spiker_services.simulator.job"}
#: modules that cannot change a result: progress bars, plots, artifact transport, NIR export, the
#: spec's text form, and the generated protobuf stubs (their .proto files are hashed by every stage)
NEUTRAL = ("spiker.progress", "spiker.store", "spiker.plots", "spiker.optimize.plots", "spiker.nir",
           "spiker.flow.spec_text", "spiker_api.v1")
#: modules whose imports serve other stages: spiker.flow.stages holds every stage's function, the
#: train job runs only train() (its imports of the optimizer and the generator are for the others)
IMPORT_ONLY = {"train": ("spiker.flow.stages",)}


def _matched(stage: str) -> set[Path]:
    return {p.resolve() for pattern in (*cache._COMMON, *cache.STAGE_CODE[stage]) for p in ROOT.glob(pattern)}


def _data_files(path: Path) -> set[Path]:
    """Package data a module names by a string literal beside it (``HERE / "cost_coefficients.json"``,
    ``Path(__file__).parent / "rtl"``): the file, or every non-Python file of the folder."""
    out: set[Path] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        name = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
        if 0 < len(name) < 100 and not set(name) & set("/\\\n *{}") and name not in (".", ".."):
            target = path.parent / node.value
            if target.is_file() and target.suffix != ".py":
                out.add(target.resolve())
            elif target.is_dir():
                out |= {p.resolve() for p in target.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")}
    return out


def _closure(stage: str) -> dict[str, Path]:
    """Every repo module the stage's job imports at run time, transitively; the common code
    (hashed by every stage) is not followed further (its imports are the spec's validation)."""
    graph = build_graph(ROOT, ["spiker", "spiker_api", "spiker_services"])
    common = {p.resolve() for pattern in cache._COMMON for p in ROOT.glob(pattern)}
    seen: dict[str, Path] = {}
    todo = [JOBS[stage]]
    while todo:
        module = todo.pop()
        if module in seen or module.startswith(NEUTRAL):
            continue
        seen[module] = graph.modules[module]
        if graph.modules[module].resolve() not in common and module not in IMPORT_ONLY.get(stage, ()):
            todo += graph.runtime.get(module, ())
    return seen


@pytest.mark.parametrize("stage", sorted(cache.STAGE_CODE))
def test_stage_code_covers_every_module_and_data_file_the_job_uses(stage: str) -> None:
    matched = _matched(stage)
    modules = _closure(stage)
    assert len(modules) > 3, modules
    missing = sorted(name for name, path in modules.items() if path.resolve() not in matched)
    assert not missing, f"{stage}: STAGE_CODE misses modules its job imports: {missing}"
    data = set().union(*(_data_files(path) for path in modules.values()))
    missing_data = sorted(str(p.relative_to(ROOT)) for p in data - matched)
    assert not missing_data, f"{stage}: STAGE_CODE misses package data its code reads: {missing_data}"


def test_jobs_cover_every_stage() -> None:
    assert set(JOBS) == set(cache.STAGE_CODE)
