"""Every code sample of the user's seed README runs as written."""

import re
from pathlib import Path

import pytest

import spiker

SEED = Path(__file__).parent / "seed" / "spiker-readme.md"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "spiker-readme.md"


def code_blocks() -> list[str]:
    text = SEED.read_text()
    return [block for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S)]


def test_vendored_copy_matches_shared():
    if not SHARED.is_file():
        pytest.skip("shared/seed not beside this checkout")
    assert SHARED.read_text() == SEED.read_text()


@pytest.mark.slow
def test_seed_readme_samples_run_verbatim(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train_loader, test_loader = spiker.data.load("mnist1d", n_cycles=73)
    namespace = {"train_loader": train_loader, "test_loader": test_loader}
    exec("import logging\nfrom spiker import *", namespace)
    blocks = code_blocks()
    assert len(blocks) >= 9
    for block in blocks:
        exec(compile(block.replace("\n    ", "\n").strip(), str(SEED), "exec"), namespace)
    assert namespace["snn"].spec.sizes == [40, 128, 10]
    assert len(namespace["opt"].result.rows) == 8
    code = namespace["vhdl_snn"].code()
    assert "entity" in code.lower()
