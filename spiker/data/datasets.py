"""Built-in datasets (no download) and user ``.npz`` files, as features in [0, 1] and labels."""

from __future__ import annotations

import logging
import math
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib import format as npformat

from spiker.data.checks import is_spikes
from spiker.errors import DataError
from spiker.net.spec import user_stacklevel

log = logging.getLogger(__name__)

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
#: the group keys of an .npz (one recording, speaker, subject ...): a random split keeps each group on one side
GROUP_KEYS = ("groups", "speaker")
#: the parts of a held-out layout (``x_<part>``/``y_<part>``, optionally ``groups_<part>``)
PARTS = ("train", "test", "val")
#: array names an .npz dataset may contain
NPZ_ARRAYS = ("x", "y", "split", *GROUP_KEYS,
              *(f"{k}_{part}" for part in PARTS for k in ("x", "y", *GROUP_KEYS)))


#: the two layouts, as error messages name them
NPZ_LAYOUTS = ("x, y (optional split, groups or speaker) or x_train, y_train, x_test, y_test "
               "(optional x_val, y_val, groups_<part> or speaker_<part>)")


class RandomSplitWarning(UserWarning):
    """An .npz without its own split was split at random (seeded, by ``test_fraction``)."""


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
                raise DataError(f"{label}: {len(members)} arrays; an .npz dataset holds {NPZ_LAYOUTS}")
            for info in members:
                name = info.filename.removesuffix(".npy")
                if name not in NPZ_ARRAYS or not info.filename.endswith(".npy"):
                    raise DataError(f"{label}: unexpected member {info.filename[:60]!r}; "
                                    f"an .npz dataset holds {NPZ_LAYOUTS}")
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


def _labels(y: np.ndarray, label: str, key: str) -> np.ndarray:
    if y.ndim != 1:
        raise DataError(f"{label}: {key} must be [N] class labels, got shape {list(y.shape)}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{label}: {key} must hold integer class labels 0..C-1, got {y.dtype}")
    if y.size and y.min() < 0:
        raise DataError(f"{label}: {key} must hold non-negative class labels, got {y.min()}")
    return y.astype(np.int64)


def _features(x: np.ndarray, label: str, key: str) -> np.ndarray:
    if x.ndim not in (2, 3):
        raise DataError(f"{label}: {key} must be sample-first [N, n] features or [N, T, n] per-step values, "
                        f"got shape {list(x.shape)}")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or \
            (np.issubdtype(x.dtype, np.number) and not np.isfinite(x).all()):
        raise DataError(f"{label}: {key} must be finite numbers, got {x.dtype}"
                        + ("" if not np.issubdtype(x.dtype, np.number) else " with NaN or inf"))
    return x


def _pair(arrays: dict[str, np.ndarray], label: str, xk: str, yk: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _features(arrays[xk], label, xk), _labels(arrays[yk], label, yk)
    if len(x) != len(y):
        raise DataError(f"{label}: {xk} has {len(x)} samples but {yk} has {len(y)}")
    if len(x) == 0:
        raise DataError(f"{label}: {xk} has no samples")
    return x, y


def _group_key(arrays: dict[str, np.ndarray], label: str, suffix: str = "") -> str | None:
    keys = [f"{k}{suffix}" for k in GROUP_KEYS if f"{k}{suffix}" in arrays]
    if len(keys) > 1:
        raise DataError(f"{label}: give one group key, not both {' and '.join(keys)}")
    return keys[0] if keys else None


def _groups(arrays: dict[str, np.ndarray], label: str, key: str, n: int, of: str) -> np.ndarray:
    g = arrays[key]
    if g.shape != (n,):
        raise DataError(f"{label}: {key} must be [N] with N = {n} like {of}, got shape {list(g.shape)}")
    return g


def _warn_shared_groups(train: np.ndarray, test: np.ndarray, label: str, key: str) -> None:
    shared = np.intersect1d(train, test)
    if shared.size:
        warnings.warn(f"{label}: {shared.size} {key} value(s) (e.g. {shared[0]!r}) occur in both the train and "
                      f"the test set, so the test accuracy is not {key}-disjoint", RandomSplitWarning,
                      stacklevel=user_stacklevel())


def _group_split(x: np.ndarray, y: np.ndarray, groups: np.ndarray, test_fraction: float, seed: int,
                 label: str, key: str) -> tuple:
    """A seeded split that puts every group wholly on one side, about ``test_fraction`` of the samples in test."""
    if not 0 < test_fraction < 1:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    names, index, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(names) < 2:
        raise DataError(f"{label}: {key} has {len(names)} distinct value(s); a {key}-disjoint split needs "
                        f"at least 2")
    order = np.random.default_rng(seed).permutation(len(names))
    want = max(1, int(round(len(x) * test_fraction)))
    taken = np.cumsum(counts[order])
    n_groups = min(int(np.searchsorted(taken, want)) + 1, len(names) - 1)
    is_test = np.isin(index, order[:n_groups])
    return x[~is_test], y[~is_test], x[is_test], y[is_test]


def _explicit_split(split: np.ndarray, label: str) -> np.ndarray:
    """The test mask of a ``split`` array: 1 / True / "test" mark test samples; 0 / "train" train samples."""
    if split.dtype.kind in "US":
        values = np.char.lower(split.astype(str))
        odd = sorted(set(np.unique(values)) - {"train", "test"})
        if odd:
            raise DataError(f"{label}: split must hold 'train'/'test' (or 0/1), got {odd[0]!r}")
        return values == "test"
    if split.dtype == np.bool_ or np.issubdtype(split.dtype, np.integer):
        odd = sorted(set(np.unique(split).tolist()) - {0, 1})
        if odd:
            raise DataError(f"{label}: split must hold 0 (train) / 1 (test) or 'train'/'test', got {odd[0]!r}")
        return split.astype(bool)
    raise DataError(f"{label}: split must hold 0/1 or 'train'/'test', got {split.dtype}")


def read_npz(path: str | Path, label: str | None = None) -> tuple[dict[str, np.ndarray], str]:
    """The arrays of an .npz dataset after :func:`check_npz_headers`, and the name errors use for it
    (``label``; default: a relative path as given, else the file's name, never a job's work folder)."""
    path = Path(path)
    label = label or (str(path) if not path.is_absolute() else path.name)
    if not path.is_file():
        raise DataError(f"dataset file not found: {label}")
    check_npz_headers(path, label=label)
    try:
        with np.load(path, allow_pickle=False) as blob:
            return {k: blob[k] for k in blob.files}, label
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"{label} is not a readable .npz file: {exc}") from None


def npz(path: str | Path, test_fraction: float = 0.2, seed: int = 0, label: str | None = None) -> Split:
    """A user's ``.npz`` dataset (docs/flow-spec.md, "Datasets"), in one of two layouts:

    - ``x`` (sample-first ``[N, n]`` features or ``[N, T, n]`` per-step values or spikes) and
      ``y`` (``[N]`` integer labels), optionally ``split`` (``[N]``: 1/True/"test" marks test
      samples) and a group key ``groups`` or ``speaker`` (``[N]``). Without ``split`` the samples
      are split at random by ``test_fraction`` and ``seed`` (a :class:`RandomSplitWarning` says
      so); with a group key that split keeps every group on one side.
    - held out: ``x_train``/``y_train`` and ``x_test``/``y_test`` (optional ``x_val``/``y_val``,
      checked but not used: the flow trains on train and reports on test), optionally
      ``groups_train``/``groups_test`` (or ``speaker_*``), checked for overlap.

    Features outside [0, 1] are min-max scaled with the training range; 0/1 data is kept as is.
    Errors name ``label`` (see :func:`read_npz`) and the array key.
    """
    arrays, label = read_npz(path, label)
    held = [k for k in arrays if k.endswith(tuple(f"_{p}" for p in PARTS))]
    flat = [k for k in ("x", "y", "split") if k in arrays]  # a bare group key with x_train: _held_out says
    if held and flat:
        raise DataError(f"{label}: mixes the layouts ({', '.join(flat)} with {', '.join(held)}); use x, y "
                        f"(optional split) or x_train, y_train, x_test, y_test")
    if held:
        x_train, y_train, x_test, y_test, n_val = _held_out(arrays, label)
        x_all = [x_train, x_test]
        max_label = max(int(y_train.max()), int(y_test.max()))
    else:
        for key in ("x", "y"):
            if key not in arrays:
                raise DataError(f"{label} has no array '{key}' (found: {', '.join(arrays) or 'none'}); an .npz "
                                f"dataset holds {NPZ_LAYOUTS}")
        x, y = _pair(arrays, label, "x", "y")
        gkey = _group_key(arrays, label)
        groups = None if gkey is None else _groups(arrays, label, gkey, len(y), "y")
        if "split" in arrays:
            split = arrays["split"]
            if split.shape != y.shape:
                raise DataError(f"{label}: split must be [N] with N = {len(y)} like y, got shape {list(split.shape)}")
            is_test = _explicit_split(split, label)
            if is_test.all() or not is_test.any():
                raise DataError(f"{label}: split must mark some but not all samples as test")
            x_train, y_train, x_test, y_test = x[~is_test], y[~is_test], x[is_test], y[is_test]
            if groups is not None:
                _warn_shared_groups(groups[~is_test], groups[is_test], label, gkey)
        elif groups is not None:
            x_train, y_train, x_test, y_test = _group_split(x, y, groups, test_fraction, seed, label, gkey)
            warnings.warn(f"{label} has no split: split at random by test_fraction={test_fraction} (seed {seed}), "
                          f"keeping each {gkey} value on one side ({len(y_test)} test samples); add 'split' or "
                          f"x_train/x_test to fix the test set", RandomSplitWarning, stacklevel=user_stacklevel())
        else:
            x_train, y_train, x_test, y_test = _seeded_split(x, y, test_fraction, seed)
            warnings.warn(f"{label} has no split: split at random by test_fraction={test_fraction} (seed {seed}); "
                          f"samples of one recording or speaker may land in both sets: add 'split', a group key "
                          f"('groups' or 'speaker') or x_train/x_test", RandomSplitWarning,
                          stacklevel=user_stacklevel())
        x_all, max_label, n_val = [x], int(y.max()), 0
    log.info("%s: %d train / %d test samples%s", label, len(y_train), len(y_test),
             f" ({n_val} validation samples not used)" if n_val else "")
    if not all(is_spikes(part) for part in x_all):
        x_train, x_test = _minmax(x_train.astype(np.float32), x_test.astype(np.float32))
    return Split(x_train, y_train, x_test, y_test, n_classes=max_label + 1)


def _held_out(arrays: dict[str, np.ndarray], label: str) -> tuple:
    """``x_train, y_train, x_test, y_test, n_val`` of the held-out layout, checked."""
    for key in ("x_train", "y_train", "x_test", "y_test"):
        if key not in arrays:
            raise DataError(f"{label} has no array '{key}' (found: {', '.join(arrays)}); the held-out layout "
                            f"needs x_train, y_train, x_test and y_test")
    parts = {"train": _pair(arrays, label, "x_train", "y_train"), "test": _pair(arrays, label, "x_test", "y_test")}
    if "x_val" in arrays or "y_val" in arrays:
        if not ("x_val" in arrays and "y_val" in arrays):
            raise DataError(f"{label}: give both x_val and y_val, or neither")
        parts["val"] = _pair(arrays, label, "x_val", "y_val")
    shape = parts["train"][0].shape[1:]
    for part, (x, _) in parts.items():
        if x.shape[1:] != shape:
            raise DataError(f"{label}: x_{part} has samples of shape {list(x.shape[1:])} but x_train "
                            f"{list(shape)}")
    for key in GROUP_KEYS:
        if key in arrays:
            raise DataError(f"{label}: with x_train/x_test give the group key per part ({key}_train, "
                            f"{key}_test), not {key}")
    groups: dict[str, tuple[str, np.ndarray]] = {}
    for part in parts:
        gkey = _group_key(arrays, label, f"_{part}")
        if gkey is not None:
            groups[part] = (gkey, _groups(arrays, label, gkey, len(parts[part][1]), f"y_{part}"))
    stray = [f"{k}_{p}" for k in GROUP_KEYS for p in PARTS if f"{k}_{p}" in arrays and p not in parts]
    if stray:
        raise DataError(f"{label}: {stray[0]} has no x_{stray[0].rsplit('_', 1)[1]}")
    if "train" in groups and "test" in groups:
        _warn_shared_groups(groups["train"][1], groups["test"][1], label, groups["train"][0].rsplit("_", 1)[0])
    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    return x_train, y_train, x_test, y_test, len(parts["val"][1]) if "val" in parts else 0
