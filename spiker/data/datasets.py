"""Built-in datasets (no download) and user ``.npz`` files, as features in [0, 1] and labels."""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from spiker.data.checks import is_spikes
from spiker.errors import DataError

BUILTIN = ("digits", "mnist1d")


@dataclass
class Split:
    """Features and labels of a train/test split (features scaled to [0, 1] unless spikes)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int


def _seeded_split(x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> tuple:
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = max(1, int(round(len(x) * test_fraction)))
    test, train = order[:n_test], order[n_test:]
    if len(train) == 0:
        raise DataError(f"{len(x)} sample(s) cannot be split into train and test sets "
                        f"(test_fraction {test_fraction}): need at least 2")
    return x[train], y[train], x[test], y[test]


def _minmax(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both to [0, 1] with the training set's range; test values are clipped to it."""
    lo, hi = float(train.min()), float(train.max())
    span = hi - lo if hi > lo else 1.0
    return ((train - lo) / span).astype(np.float32), np.clip((test - lo) / span, 0, 1).astype(np.float32)


def _zscore(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Map to [0, 1] as ``0.5 + z / 4`` with the training set's mean and std (clipped at +-2 sigma).

    MNIST-1D's signal is small against its offset; min-max scaling would rate-code every
    input near 0.5 and drown the signal in Bernoulli noise.
    """
    mean, std = float(train.mean()), float(train.std()) or 1.0
    scale = lambda x: np.clip(0.5 + (x - mean) / (4 * std), 0, 1).astype(np.float32)  # noqa: E731
    return scale(train), scale(test)


def digits(test_fraction: float = 0.2, seed: int = 0) -> Split:
    """scikit-learn's 8x8 handwritten digits: 1797 samples, 64 inputs, 10 classes."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    return Split(*_seeded_split(x, y, test_fraction, seed), n_classes=10)


def mnist1d(seed: int = 42, num_samples: int = 5000) -> Split:
    """MNIST-1D generated locally by ``mnist1d.data.make_dataset`` (40 inputs, 10 classes, 4000/1000)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.seed = seed
    args.num_samples = num_samples
    data = make_dataset(args)
    x_train, x_test = _zscore(np.asarray(data["x"]), np.asarray(data["x_test"]))
    return Split(x_train, np.asarray(data["y"], np.int64), x_test,
                 np.asarray(data["y_test"], np.int64), n_classes=10)


#: most bytes the arrays of one .npz may hold once loaded (``SPIKER_MAX_DATASET_BYTES`` overrides)
MAX_DATASET_BYTES = 1 << 30
#: array names an .npz dataset may contain
NPZ_ARRAYS = ("x", "y", "split")


def max_dataset_bytes() -> int:
    """The loaded-size limit of an .npz dataset: ``$SPIKER_MAX_DATASET_BYTES`` or :data:`MAX_DATASET_BYTES`."""
    raw = os.environ.get("SPIKER_MAX_DATASET_BYTES", "").strip()
    if not raw:
        return MAX_DATASET_BYTES
    try:
        value = int(raw)
    except ValueError:
        raise DataError(f"SPIKER_MAX_DATASET_BYTES must be an integer number of bytes, got {raw!r}") from None
    if value <= 0:
        raise DataError(f"SPIKER_MAX_DATASET_BYTES must be > 0, got {value}")
    return value


def check_npz_headers(source: str | Path | BinaryIO, max_bytes: int | None = None,
                      label: str = "dataset") -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shapes and dtypes of an .npz's arrays, read from their headers without loading any data.

    Raises :class:`DataError` for a file that is not a zip of ``.npy`` arrays, for object
    (pickled) arrays, unknown array names, or arrays whose loaded size would exceed
    ``max_bytes`` in all (default :func:`max_dataset_bytes`): a few compressed bytes can hold
    gigabytes of zeros, so the compressed size says nothing.
    """
    limit = max_dataset_bytes() if max_bytes is None else max_bytes
    arrays: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
    total = 0
    try:
        with zipfile.ZipFile(source) as archive:
            members = archive.infolist()
            if len(members) > len(NPZ_ARRAYS):
                raise DataError(f"{label}: {len(members)} arrays; an .npz dataset holds only "
                                f"{', '.join(NPZ_ARRAYS)}")
            for info in members:
                name = info.filename.removesuffix(".npy")
                if name not in NPZ_ARRAYS or not info.filename.endswith(".npy"):
                    raise DataError(f"{label}: unexpected member {info.filename[:60]!r}; an .npz dataset "
                                    f"holds only {', '.join(NPZ_ARRAYS)}")
                with archive.open(info) as f:
                    version = npformat.read_magic(f)
                    if version == (1, 0):
                        shape, _, dtype = npformat.read_array_header_1_0(f, max_header_size=4096)
                    elif version in ((2, 0), (3, 0)):
                        shape, _, dtype = npformat.read_array_header_2_0(f, max_header_size=4096)
                    else:
                        raise DataError(f"{label}: array {name!r} has unsupported .npy version {version}")
                if dtype.hasobject:
                    raise DataError(f"{label}: array {name!r} holds Python objects; use numeric arrays")
                total += math.prod(shape) * dtype.itemsize
                if total > limit:
                    raise DataError(f"{label}: array {name!r} {list(shape)} of {dtype} would take "
                                    f"{math.prod(shape) * dtype.itemsize} bytes in memory; the limit is "
                                    f"{limit} bytes for all arrays of a dataset")
                arrays[name] = (tuple(shape), dtype)
    except DataError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise DataError(f"{label} is not a readable .npz file: {exc}") from None
    return arrays


def npz(path: str | Path, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """A user file with ``x`` (``[N, n]`` features or ``[N, T, n]`` per-step values or spikes),
    ``y`` (``[N]`` integer labels) and optionally ``split`` (``[N]``, 1/"test" marks test samples;
    otherwise a seeded split by ``test_fraction``). Features outside [0, 1] are min-max scaled
    with the training range; 0/1 data is kept as is."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path.name}")
    check_npz_headers(path, label=path.name)
    try:
        with np.load(path, allow_pickle=False) as blob:
            arrays = {k: blob[k] for k in blob.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path.name} is not a readable .npz file: {exc}") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise DataError(f"{path.name} has no array '{key}' (found: {', '.join(arrays) or 'none'})")
    x, y = arrays["x"], arrays["y"]
    if x.ndim not in (2, 3) or len(x) != len(y) or y.ndim != 1:
        raise DataError(f"{path.name}: need x [N, n] or [N, T, n] and y [N]; got x {list(x.shape)}, y {list(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise DataError(f"{path.name}: y must hold non-negative integer class labels")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise DataError(f"{path.name}: x must be finite numbers")
    y = y.astype(np.int64)
    if "split" in arrays:
        split = arrays["split"]
        if split.shape != y.shape:
            raise DataError(f"{path.name}: split must have shape [N] like y")
        is_test = (split == 1) | (split.astype(str) == "test")
        if is_test.all() or not is_test.any():
            raise DataError(f"{path.name}: split must mark some but not all samples as test")
        x_train, y_train, x_test, y_test = x[~is_test], y[~is_test], x[is_test], y[is_test]
    else:
        x_train, y_train, x_test, y_test = _seeded_split(x, y, test_fraction, seed)
    if not is_spikes(x):
        x_train, x_test = _minmax(x_train.astype(np.float32), x_test.astype(np.float32))
    return Split(x_train, y_train, x_test, y_test, n_classes=int(y.max()) + 1)
