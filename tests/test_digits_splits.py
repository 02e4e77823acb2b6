"""The digits set and its two splits without scikit-learn (issue 22): archmodel.datasets re-implements
``train_test_split(stratify=...)`` and ``StratifiedKFold(shuffle=True)``; scikit-learn itself, imported only
here, is the independent reference, index for index, over many seeds, fractions, fold counts and label
vectors (the digits' own labels and random unbalanced ones, where the largest-remainder ties are drawn)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import StratifiedKFold, train_test_split

from archmodel.datasets import (
    _raw_digits,
    load_digits_fold,
    load_digits_split,
    stratified_kfold_test_folds,
    stratified_train_test_split,
)


def _labels() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [_raw_digits()[1],
            rng.integers(0, 3, 50),  # small, unbalanced: remainders tie
            np.repeat(np.array([5, 2, 9, 7]), [7, 11, 4, 13]),  # classes not in order of appearance
            rng.permutation(np.repeat(np.arange(6), [30, 2, 9, 17, 5, 40]))]


def test_images_and_labels_equal_scikit_learns_load_digits():
    x, y = _raw_digits()
    d = load_digits()
    assert x.shape == (1797, 1, 8, 8) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x, (d.images.astype(np.float32) / np.float32(16)).reshape(-1, 1, 8, 8))
    np.testing.assert_array_equal(y, d.target)


def test_train_test_split_equals_scikit_learn_index_for_index():
    compared = 0
    for y in _labels():
        for seed in range(8):
            for frac in (0.3, 0.2, 0.37):
                ref_tr, ref_te = train_test_split(np.arange(len(y)), test_size=frac, stratify=y, random_state=seed)
                tr, te = stratified_train_test_split(y, frac, seed)
                np.testing.assert_array_equal(tr, ref_tr)
                np.testing.assert_array_equal(te, ref_te)
                compared += 1
    assert compared == 4 * 8 * 3


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_stratified_kfold_equals_scikit_learn_fold_for_fold():
    compared = 0
    for y in _labels():
        for seed in range(8):
            for k in (2, 3, 5, 10) if len(y) > 100 else (2, 3):
                folds = stratified_kfold_test_folds(y, k, seed)
                ref = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))
                for i, (ref_tr, ref_te) in enumerate(ref):
                    np.testing.assert_array_equal(np.flatnonzero(folds != i), ref_tr)
                    np.testing.assert_array_equal(np.flatnonzero(folds == i), ref_te)
                    compared += 1
    assert compared == 2 * 8 * (2 + 3 + 5 + 10) + 2 * 8 * (2 + 3)  # two label vectors above 100 samples
    with pytest.raises(ValueError, match="cannot be greater than the number of members"):
        stratified_kfold_test_folds(np.array([0, 0, 1, 1]), 3, 0)


def test_digits_splits_import_no_scikit_learn_module():
    code = ("import sys\nfrom archmodel.datasets import load_digits_fold, load_digits_split\n"
            "a = load_digits_fold(0, 5, 1); b = load_digits_split(3)\n"
            "print(len(a.test_index), len(b.test_index), sorted(m for m in sys.modules if m.startswith('sklearn')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["360", "540", "[]"]
    assert load_digits_fold(0, 5, 1).test_index.size == 360
    assert load_digits_split(3).test_index.size == 540
