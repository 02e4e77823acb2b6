"""Real data with no download: scikit-learn's handwritten digits (``load_digits``).

The set holds 1,797 real 8×8 grey-level images of the digits 0–9 (UCI "Optical
Recognition of Handwritten Digits", 16 grey levels per pixel, values 0..16).

Pixel scaling (documented once, used everywhere): ``x = pixel / 16``, so inputs are
float32 in ``[0, 1]`` with shape ``(N, 1, 8, 8)`` (NCHW, one channel). The
analog/int8 evaluation quantizes them with ``in_scale = 1/127`` (one int8 step =
1/127), i.e. ``x_int8 = round(127 · pixel / 16)`` -- every one of the 17 grey
levels keeps a distinct code.

Split: stratified (every class keeps its share in both parts) train/test split
fixed by the seed: the split of :func:`sklearn.model_selection.train_test_split`
(``test_size=f, stratify=y, random_state=seed``); default 30 % test (540 test and
1,257 training images).

k-fold (:func:`load_digits_fold`): the split of
:class:`sklearn.model_selection.StratifiedKFold` with ``shuffle=True,
random_state=seed``; fold ``i`` is the test part, the other folds the training
part, so the k test folds cover all 1,797 images once.

Both splits are re-implemented here, step for step and draw for draw on the same
``numpy.random.RandomState(seed)`` (scikit-learn 1.3–1.9's ``StratifiedShuffleSplit.
_iter_indices``, ``utils.extmath._approximate_mode`` and ``StratifiedKFold.
_make_test_folds``), and the images are read from scikit-learn's own
``datasets/data/digits.csv.gz`` as its ``load_digits`` reads them (``np.loadtxt``),
so reading the digits imports no scikit-learn module (≈ 1 s of CPU per command,
issue 22). tests/test_digits_splits.py compares both splits index for index with
scikit-learn's over many seeds, fractions and fold counts.

Every split records the data-set indices of its images (``train_index``,
``test_index``) and a JSON-ready description (``DigitsSplit.meta``) that weights
files carry (:mod:`archmodel.weights_io`); :func:`split_from_meta` rebuilds it.

User data (issue 16, :func:`load_user_data`): an ``.npz`` with arrays ``x``
(N, \\*input_shape), real numbers, no NaN/inf -- fed to the network as they are
(no rescaling) -- and ``y`` (N,) integer labels in ``0 .. classes-1``; every
mismatch is one :class:`DataError` line. :func:`hold_apart` splits it into the
calibration images and the test images (disjoint).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from archmodel.errors import AimcError

__all__ = [
    "DIGITS_IMAGES",
    "DIGITS_INPUT_SHAPE",
    "DIGITS_PIXEL_MAX",
    "DataError",
    "DigitsSplit",
    "UserData",
    "hold_apart",
    "load_digits_fold",
    "load_digits_split",
    "load_user_data",
    "split_from_meta",
]

#: Images in scikit-learn's digits set.
DIGITS_IMAGES = 1797

#: Input shape of one digits image, (C, H, W).
DIGITS_INPUT_SHAPE = (1, 8, 8)
#: Largest raw pixel value of the digits set (16 grey levels above 0).
DIGITS_PIXEL_MAX = 16.0


@dataclass(frozen=True)
class DigitsSplit:
    """A stratified train/test split of the digits set.

    Members
    -------
    x_train, x_test : ndarray, float32, (N, 1, 8, 8)
        Images scaled to [0, 1] (``pixel / 16``).
    y_train, y_test : ndarray, int64, (N,)
        Labels 0..9.
    seed : int
        Seed of the split.
    train_index, test_index : ndarray of int64
        Data-set indices (0..1796) of the training and test images, in order.
    meta : dict
        ``{"dataset": "sklearn-digits", "kind": "holdout", "test_fraction": f, "seed": s}``
        or ``{"dataset": "sklearn-digits", "kind": "kfold", "folds": k, "fold": i, "seed": s}``.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int
    train_index: np.ndarray | None = None
    test_index: np.ndarray | None = None
    meta: dict | None = None


def _digits_csv() -> Path:
    """scikit-learn's ``datasets/data/digits.csv.gz``, found without importing scikit-learn (find_spec of the
    top-level package locates it and runs none of its code). Raises ImportError when scikit-learn is absent."""
    import importlib.util

    found = importlib.util.find_spec("sklearn")
    if found is None or not found.submodule_search_locations:
        raise ImportError("scikit-learn is not installed (its package data holds the digits set)")
    return Path(next(iter(found.submodule_search_locations))) / "datasets" / "data" / "digits.csv.gz"


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    import gzip

    # as sklearn.datasets.load_digits: np.loadtxt of the gzip CSV (64 pixels then the label per line)
    with gzip.open(_digits_csv(), mode="rt", encoding="utf-8") as f:
        data = np.loadtxt(f, delimiter=",")
    x = (data[:, :-1].reshape(-1, 8, 8).astype(np.float32) / np.float32(DIGITS_PIXEL_MAX)).reshape(
        -1, *DIGITS_INPUT_SHAPE)
    y = np.asarray(data[:, -1].astype(int), dtype=np.int64)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def load_digits_split(seed: int = 0, test_fraction: float = 0.3) -> DigitsSplit:
    """Load the digits set and split it, stratified by class, with ``seed``.

    Parameters
    ----------
    seed : int
        ``random_state`` of the split (>= 0).
    test_fraction : float
        Share of the images in the test part, in (0, 1).

    Returns
    -------
    DigitsSplit

    Raises
    ------
    ValueError
        ``test_fraction`` outside (0, 1) or a negative seed.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    x, y = _raw_digits()
    i_tr, i_te = stratified_train_test_split(y, float(test_fraction), int(seed))
    meta = {"dataset": "sklearn-digits", "kind": "holdout", "test_fraction": float(test_fraction), "seed": int(seed)}
    return _split(x, y, i_tr, i_te, int(seed), meta)


def _split(x: np.ndarray, y: np.ndarray, i_tr: np.ndarray, i_te: np.ndarray, seed: int, meta: dict) -> DigitsSplit:
    i_tr, i_te = np.asarray(i_tr, np.int64), np.asarray(i_te, np.int64)
    return DigitsSplit(np.ascontiguousarray(x[i_tr]), np.ascontiguousarray(y[i_tr]),
                       np.ascontiguousarray(x[i_te]), np.ascontiguousarray(y[i_te]), seed, i_tr, i_te, meta)


def load_digits_fold(seed: int, folds: int, fold: int) -> DigitsSplit:
    """Fold ``fold`` of a stratified ``folds``-fold split of all 1,797 images (module docstring).

    Raises
    ------
    ValueError
        ``folds`` < 2, ``fold`` outside 0..folds-1, or a negative seed.
    """
    if int(folds) < 2 or not 0 <= int(fold) < int(folds):
        raise ValueError(f"need folds >= 2 and 0 <= fold < folds, got folds={folds}, fold={fold}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    x, y = _raw_digits()
    test_folds = stratified_kfold_test_folds(y, int(folds), int(seed))
    indices = np.arange(len(y))
    i_tr, i_te = indices[test_folds != int(fold)], indices[test_folds == int(fold)]
    meta = {"dataset": "sklearn-digits", "kind": "kfold", "folds": int(folds), "fold": int(fold), "seed": int(seed)}
    return _split(x, y, i_tr, i_te, int(seed), meta)


# ----------------------------------------------------------------------------- scikit-learn's splits, re-implemented
def _approximate_mode(class_counts: np.ndarray, n_draws: int, rng: np.random.RandomState) -> np.ndarray:
    """scikit-learn's ``utils.extmath._approximate_mode`` (1.3–1.9), draw for draw: per-class counts (C,) int of
    ``n_draws`` draws, floors of the proportional shares topped up by largest remainder, ties broken by
    ``rng.choice``."""
    continuous = class_counts / class_counts.sum() * n_draws
    floored = np.floor(continuous)
    need_to_add = int(n_draws - floored.sum())
    if need_to_add > 0:
        remainder = continuous - floored
        for value in np.sort(np.unique(remainder))[::-1]:
            (inds,) = np.where(remainder == value)
            add_now = min(len(inds), need_to_add)
            inds = rng.choice(inds, size=add_now, replace=False)
            floored[inds] += 1
            need_to_add -= add_now
            if need_to_add == 0:
                break
    return floored.astype(int)


def stratified_train_test_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and test indices (int64) of ``train_test_split(np.arange(len(y)), test_size=test_fraction,
    stratify=y, random_state=seed)`` (scikit-learn 1.3–1.9), computed without scikit-learn.

    ``n_test = ceil(test_fraction · n)``, ``n_train = n − n_test``; one ``StratifiedShuffleSplit`` draw on
    ``numpy.random.RandomState(seed)``: per-class train and test counts by :func:`_approximate_mode`, each
    class's indices (stable order) permuted, then both parts permuted.

    Raises
    ------
    ValueError
        ``test_fraction`` outside (0, 1), a class with fewer than 2 members, or a part smaller than the
        number of classes (scikit-learn's conditions).
    """
    y = np.asarray(y)
    n = len(y)
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = math.ceil(test_fraction * n)
    n_train = n - n_test
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if np.min(class_counts) < 2:
        raise ValueError("a class has only 1 member: too few for a stratified split")
    if n_train < len(classes) or n_test < len(classes):
        raise ValueError(f"a part of {min(n_train, n_test)} images is smaller than the {len(classes)} classes")
    class_indices = np.split(np.argsort(y_indices, kind="stable"), np.cumsum(class_counts)[:-1])
    rng = np.random.RandomState(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train: list = []
    test: list = []
    for i in range(len(classes)):
        perm = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.extend(perm[: n_i[i]])
        test.extend(perm[n_i[i]: n_i[i] + t_i[i]])
    return rng.permutation(train), rng.permutation(test)


def stratified_kfold_test_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Test fold (int32, (N,)) of every sample under ``StratifiedKFold(n_splits=folds, shuffle=True,
    random_state=seed)`` (scikit-learn 1.3–1.9's ``_make_test_folds``), computed without scikit-learn.

    Classes numbered by first appearance; each fold takes its share of every class by round robin over
    the sorted labels; each class's fold labels shuffled by ``numpy.random.RandomState(seed)``, class by class.
    Fold ``i``'s test part is ``np.flatnonzero(test_folds == i)``, its training part the rest (in index order).

    Raises
    ------
    ValueError
        ``folds`` above every class's count (scikit-learn's condition; it warns when above the smallest only).
    """
    y = np.asarray(y)
    rng = np.random.RandomState(seed)
    _, y_idx, y_inv = np.unique(y, return_index=True, return_inverse=True)
    _, class_perm = np.unique(y_idx, return_inverse=True)
    y_encoded = class_perm[y_inv]
    n_classes = len(y_idx)
    y_counts = np.bincount(y_encoded)
    if np.all(folds > y_counts):
        raise ValueError(f"n_splits={folds} cannot be greater than the number of members in each class.")
    if folds > np.min(y_counts):
        import warnings

        warnings.warn(f"The least populated class in y has only {np.min(y_counts)} members, which is less "
                      f"than n_splits={folds}.", UserWarning, stacklevel=2)
    y_order = np.sort(y_encoded)
    allocation = np.asarray([np.bincount(y_order[i::folds], minlength=n_classes) for i in range(folds)])
    test_folds = np.empty(len(y), dtype="i")
    for k in range(n_classes):
        folds_for_class = np.arange(folds).repeat(allocation[:, k])
        rng.shuffle(folds_for_class)
        test_folds[y_encoded == k] = folds_for_class
    return test_folds


def split_from_meta(meta: dict) -> DigitsSplit:
    """The split a weights file's ``split`` description names (:attr:`DigitsSplit.meta`).

    Raises
    ------
    ValueError
        Not a description of a digits split.
    """
    if not isinstance(meta, dict) or meta.get("dataset") != "sklearn-digits":
        raise ValueError(f"not a digits split description: {meta!r}")
    if meta.get("kind") == "holdout":
        return load_digits_split(int(meta["seed"]), float(meta["test_fraction"]))
    if meta.get("kind") == "kfold":
        return load_digits_fold(int(meta["seed"]), int(meta["folds"]), int(meta["fold"]))
    raise ValueError(f"unknown split kind {meta.get('kind')!r}")


# ----------------------------------------------------------------------------- user data (issue 16)
class DataError(AimcError, ValueError):
    """A user data file that cannot be used (one clear line naming the flag and the problem)."""


@dataclass(frozen=True)
class UserData:
    """Images and labels of a user ``.npz`` (:func:`load_user_data`).

    Members
    -------
    x : ndarray, float32, (N, \\*input_shape)
    y : ndarray, int64, (N,) or None (calibration files may omit labels)
    path : str
    sha256_16 : str
        First 16 hex digits of the file's SHA-256.
    """

    x: np.ndarray
    y: np.ndarray | None
    path: str
    sha256_16: str


def load_user_data(path: str | Path, input_shape: tuple[int, ...], classes: int, *, flag: str = "--data",
                   need_labels: bool = True) -> UserData:
    """Load and check a user ``.npz`` with arrays ``x`` and ``y`` (see the module docstring).

    Parameters
    ----------
    path : str or Path
    input_shape : tuple of int
        The network's input shape (C, H, W) or (features,), without the batch axis.
    classes : int
        Number of classes (the network's output size); labels must be in ``0 .. classes-1``.
    flag : str
        Option name used in error messages.
    need_labels : bool
        Whether ``y`` is required (``--calib-data`` needs images only).

    Raises
    ------
    DataError
        No such file, not an ``.npz``, a missing array, a wrong shape or dtype,
        NaN/inf in ``x``, a label out of range, or no images (one line each).
    """
    import hashlib
    import zipfile

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{flag} {path}: no such file")
    raw = path.read_bytes()
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{flag} {path}: not a readable .npz file ({type(exc).__name__})") from None
    if "x" not in arrays:
        raise DataError(f"{flag} {path}: no array 'x' (found: {', '.join(sorted(arrays)) or 'none'}); "
                        f"expected x (N, {', '.join(map(str, input_shape))}) and y (N,)")
    x = arrays["x"]
    want = ("N",) + tuple(input_shape)
    if x.ndim != len(input_shape) + 1 or tuple(x.shape[1:]) != tuple(input_shape):
        raise DataError(f"{flag} {path}: x has shape {tuple(x.shape)}, the network needs "
                        f"({', '.join(map(str, want))})")
    if x.shape[0] < 1:
        raise DataError(f"{flag} {path}: x holds no images")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise DataError(f"{flag} {path}: x has dtype {x.dtype}; expected real numbers (float or int)")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise DataError(f"{flag} {path}: x holds {int(bad.sum())} NaN or infinite values "
                        f"(first in image {int(np.argwhere(bad)[0][0])})")
    y = arrays.get("y")
    if y is None:
        if need_labels:
            raise DataError(f"{flag} {path}: no array 'y' (labels, shape ({x.shape[0]},))")
    else:
        if y.shape != (x.shape[0],):
            raise DataError(f"{flag} {path}: y has shape {tuple(y.shape)}, expected ({x.shape[0]},) "
                            f"(one label per image of x)")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{flag} {path}: y has dtype {y.dtype}; expected integer class labels")
        out = (y < 0) | (y >= classes)
        if out.any():
            i = int(np.argmax(out))
            raise DataError(f"{flag} {path}: label {int(y[i])} of image {i} is outside 0..{classes - 1} "
                            f"(the network has {classes} outputs)")
        y = y.astype(np.int64)
    return UserData(x, y, str(path), hashlib.sha256(raw).hexdigest()[:16])


def hold_apart(n: int, n_calibration: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration_index, test_index): a seeded random ``n_calibration`` of ``range(n)`` and the rest, sorted.

    At most half the images are held apart (at least one stays a test image).

    Raises
    ------
    DataError
        Fewer than 2 images.
    """
    if n < 2:
        raise DataError(f"--data holds {n} image(s); holding calibration images apart needs at least 2 "
                        "(or give --calib-data)")
    k = max(1, min(int(n_calibration), n // 2))
    perm = np.random.default_rng([int(seed), 0xCA1]).permutation(n)
    return np.sort(perm[:k]), np.sort(perm[k:])
