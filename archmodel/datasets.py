"""Real data with no download: scikit-learn's handwritten digits (``load_digits``).

The set holds 1,797 real 8×8 grey-level images of the digits 0–9 (UCI "Optical
Recognition of Handwritten Digits", 16 grey levels per pixel, values 0..16).

Pixel scaling (documented once, used everywhere): ``x = pixel / 16``, so inputs are
float32 in ``[0, 1]`` with shape ``(N, 1, 8, 8)`` (NCHW, one channel). The
analog/int8 evaluation quantizes them with ``in_scale = 1/127`` (one int8 step =
1/127), i.e. ``x_int8 = round(127 · pixel / 16)`` -- every one of the 17 grey
levels keeps a distinct code.

Split: stratified (every class keeps its share in both parts) train/test split
fixed by the seed, through :func:`sklearn.model_selection.train_test_split`
(``random_state=seed``); default 30 % test (540 test and 1,257 training images).

k-fold (:func:`load_digits_fold`): :class:`sklearn.model_selection.StratifiedKFold`
with ``shuffle=True, random_state=seed``; fold ``i`` is the test part, the other
folds the training part, so the k test folds cover all 1,797 images once.

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


@lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (np.asarray(d.images, dtype=np.float32) / np.float32(DIGITS_PIXEL_MAX)).reshape(-1, *DIGITS_INPUT_SHAPE)
    y = np.asarray(d.target, dtype=np.int64)
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
    from sklearn.model_selection import train_test_split

    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    x, y = _raw_digits()
    i_tr, i_te = train_test_split(
        np.arange(len(y)), test_size=float(test_fraction), stratify=y, random_state=int(seed)
    )
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
    from sklearn.model_selection import StratifiedKFold

    if int(folds) < 2 or not 0 <= int(fold) < int(folds):
        raise ValueError(f"need folds >= 2 and 0 <= fold < folds, got folds={folds}, fold={fold}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    x, y = _raw_digits()
    skf = StratifiedKFold(n_splits=int(folds), shuffle=True, random_state=int(seed))
    i_tr, i_te = list(skf.split(np.zeros(len(y)), y))[int(fold)]
    meta = {"dataset": "sklearn-digits", "kind": "kfold", "folds": int(folds), "fold": int(fold), "seed": int(seed)}
    return _split(x, y, i_tr, i_te, int(seed), meta)


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
