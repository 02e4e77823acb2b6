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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["DIGITS_INPUT_SHAPE", "DIGITS_PIXEL_MAX", "DigitsSplit", "load_digits_split"]

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
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    seed: int


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
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=float(test_fraction), stratify=y, random_state=int(seed)
    )
    return DigitsSplit(np.ascontiguousarray(x_tr), np.ascontiguousarray(y_tr),
                       np.ascontiguousarray(x_te), np.ascontiguousarray(y_te), int(seed))
