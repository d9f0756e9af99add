"""The VHDL tar artifact: a design's files in analysis order, as the hdlgen service writes it and
the simulator service reads it (uncompressed, reproducible bytes, with a ``files.txt`` index)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

#: the tar's index: file names in analysis order, one per line (written by Design.write)
INDEX = "files.txt"


def write_tar(folder: Path, names: list[str], dest: Path) -> Path:
    """A reproducible, uncompressed tar of ``folder``'s ``names`` plus the index (same bytes for
    the same files, so equal designs get equal artifacts)."""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
        for name in [INDEX, *names]:
            data = (folder / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return dest


def read_tar(path: Path) -> dict[str, str]:
    """The files of a VHDL tar in analysis order (name -> text)."""
    with tarfile.open(path, "r") as tar:
        def text(name: str) -> str:
            member = tar.extractfile(name)
            if member is None:
                raise KeyError(name)
            return member.read().decode()

        names = [n for n in text(INDEX).splitlines() if n]
        return {name: text(name) for name in names}
