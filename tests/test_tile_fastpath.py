"""Tile model one-vector path (issue 22, item 4): cached keyed output noise and the batch-1 fast path.

The keyed output noise is compared with the implementation before the change,
kept here as an independent reference (a fresh ``Generator(PCG64(SeedSequence(
[noise_seed, array, MVM // 64])))`` per block, row ``MVM % 64``); the one-vector
fast path of ``mvm_adc_codes`` with the batched path and with the ADC formula
written out here.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.analog_matrix import NOISE_BLOCK_MVMS, AnalogMatrix
from archmodel.spec import load_spec


def old_noise_rows(noise_seed: int, array_index: int, n_cols: int, mvm_index: int, count: int) -> np.ndarray:
    """The keyed draws as implemented before issue 22 (one generator per block per call)."""
    out = np.empty((count, n_cols))
    m = mvm_index
    while m < mvm_index + count:
        blk, row = divmod(m, NOISE_BLOCK_MVMS)
        take = min(NOISE_BLOCK_MVMS - row, mvm_index + count - m)
        seq = np.random.SeedSequence([noise_seed, array_index, blk])
        z = np.random.Generator(np.random.PCG64(seq)).standard_normal((NOISE_BLOCK_MVMS, n_cols))
        out[m - mvm_index:m - mvm_index + take] = z[row:row + take]
        m += take
    return out


def _tiny_noisy(k: int = 70, n: int = 40) -> AnalogMatrix:
    spec = load_spec("tiny").replace(**{"array.output_noise_fraction": 0.05})  # 32 x 32 arrays: 3 x 2 blocks
    w = np.random.default_rng(0).standard_normal((k, n))
    m = AnalogMatrix(spec, noise_seed=1234).program(w, np.random.default_rng(1))
    return m.drift(3600.0, np.random.default_rng(2))


def test_cached_output_noise_equals_the_old_keyed_draws():
    m = _tiny_noisy()
    compared = 0
    # one-vector calls across block boundaries, a batch, then revisits after other blocks (cache hits and misses)
    calls = [(i, 1) for i in range(60, 70)] + [(0, 150), (5, 1), (2**24 + 3, 70), (63, 2), (64, 1)]
    for array_index, n_cols in ((0, 32), (5, 8)):
        for mvm, count in calls:
            np.testing.assert_array_equal(m._noise_rows(array_index, n_cols, mvm, count),
                                          old_noise_rows(1234, array_index, n_cols, mvm, count))
            compared += count * n_cols
    assert compared == 2 * (10 + 150 + 1 + 70 + 2 + 1) * 20  # 20 = mean of 32 and 8 columns


def test_one_vector_codes_equal_batched_codes_and_the_adc_formula_with_noise():
    m = _tiny_noisy()
    d = np.random.default_rng(3).integers(-128, 128, size=(130, 70))
    batch = m.mvm_adc_codes(d, 40)
    single = np.stack([m.mvm_adc_codes(d[b], 40 + b)[:, 0] for b in range(130)], axis=1)
    np.testing.assert_array_equal(single, batch)
    # reference: exact currents per row block + old keyed noise, then the ADC written out
    sigma = 0.05 * m.i_fs_ua
    ref = np.empty_like(batch)
    for rb, sl in enumerate(m.row_block_slices()):
        for cb in range(2):
            c0, c1 = cb * 32, min(cb * 32 + 32, 40)
            i_ua = d[:, sl].astype(np.float64) @ m._g_eff[sl, c0:c1] * m.v_lsb_v
            i_ua = i_ua + sigma * old_noise_rows(1234, cb * 3 + rb, c1 - c0, 40, 130)
            ref[rb, :, c0:c1] = np.clip(np.rint(i_ua * (128 / m.i_fs_ua)), -128, 127)
    np.testing.assert_array_equal(batch, ref)
    assert batch.size == 3 * 130 * 40


def test_fig11_batch_1_fast_path_equals_the_batched_path_and_checks_its_input():
    spec = load_spec("fig11")
    w = np.random.default_rng(0).standard_normal((512, 64))  # one row block; 64 columns suffice (8x cheaper to program)
    m = AnalogMatrix(spec, noise_seed=0).program(w, np.random.default_rng(0))
    m.drift(86400.0, np.random.default_rng(1))
    d = np.random.default_rng(2).integers(-128, 128, size=(8, 512))
    batch = m.mvm_adc_codes(d.astype(np.int32).tolist())  # list input: the general (checked, converted) path
    for b in range(8):
        np.testing.assert_array_equal(m.mvm_adc_codes(d[b:b + 1], b), batch[:, b:b + 1])
    ref = np.clip(np.rint(d.astype(np.float64) @ m._g_eff * m.v_lsb_v * (128 / m.i_fs_ua)), -128, 127)
    np.testing.assert_array_equal(batch[0], ref)
    bad = d[:1].copy()
    bad[0, 7] = 128
    with pytest.raises(ValueError, match=r"dac_codes: value 128 at index \(0, 7\)"):
        m.mvm_adc_codes(bad)


@pytest.mark.parametrize("keyed_read_noise", [False, True])
def test_row_slice_is_the_parents_row_blocks(keyed_read_noise: bool) -> None:
    """A chain tile's rows (AnalogMatrix.row_slice, at a row-block boundary) give the parent's ADC codes of those
    row blocks exactly, on fixed or keyed-read-noise conductances; the slice shares no cache with the parent and
    a slice outside the matrix is refused. (The copy that reached into the parent's privates missed the row-block
    count, and a 2-block slice read uninitialised memory: int64-min codes.)"""
    spec = load_spec("tiny")  # 32 x 32 arrays, no output noise
    w = np.random.default_rng(0).standard_normal((96, 24))
    m = AnalogMatrix(spec, noise_seed=7).program(w, np.random.default_rng(1))
    if keyed_read_noise:
        m.drift(86400.0, read_noise_key=(3, 1))
    else:
        m.drift(86400.0, np.random.default_rng(2))
    x = np.random.default_rng(3).integers(-128, 128, (5, 96))
    full = m.mvm_adc_codes(x, 0)  # (3 row blocks, 5, 24)
    part = m.row_slice(32, 96, noise_seed=99)
    assert part.n_row_blocks == 2 and part.shape == (64, 24)
    np.testing.assert_array_equal(part.mvm_adc_codes(x[:, 32:], 0), full[1:])
    np.testing.assert_array_equal(part.mvm_partial_sums(x[:, 32:], 0), full[1:].sum(axis=0))
    assert part._noise_cache is not m._noise_cache and part._read_cache is not m._read_cache
    with pytest.raises(ValueError, match="outside the matrix's 96 rows"):
        m.row_slice(64, 128, noise_seed=1)


def test_fast_path_cache_is_invalidated_by_every_change_of_its_inputs() -> None:
    """The batch-1 fast path caches its eligibility and constants (AnalogMatrix._fast_constants); each change of an
    input -- full scale, ideal periphery, keyed read noise, redrift, reprogramming, a test swapping _g_eff -- must
    give the general path's codes (list input) and the ADC formula written out here, never stale constants."""
    spec = load_spec("tiny")  # 32 x 32 arrays: a (32, 20) matrix is one row block
    rng = np.random.default_rng(11)
    m = AnalogMatrix(spec, noise_seed=3).program(rng.standard_normal((32, 20)), np.random.default_rng(1))
    m.drift(3600.0, np.random.default_rng(2))
    d = rng.integers(-128, 128, size=(3, 32))

    def check() -> np.ndarray:
        fast = np.concatenate([m.mvm_adc_codes(d[b:b + 1].astype(dt), b) for b, dt in
                               enumerate((np.int64, np.int32, np.int8))], axis=1)
        np.testing.assert_array_equal(fast, m.mvm_adc_codes(d.tolist(), 0))  # the general path
        return fast

    before = check()
    ref = np.clip(np.rint(d.astype(np.float64) @ m._g_eff * m.v_lsb_v * (128 / m.i_fs_ua)), -128, 127)
    np.testing.assert_array_equal(before[0], ref)
    assert m._fast  # eligible and cached
    m.set_adc_full_scale(m.i_fs_ua / 8)
    smaller = check()
    assert np.abs(smaller).sum() > np.abs(before).sum()  # the new full scale is used
    m.ideal_periphery = True
    assert m.mvm_adc_codes(d[:1]).dtype == np.float64  # unrounded codes: the fast path is off
    m.ideal_periphery = False
    m.drift(86400.0, read_noise_key=(5, 1))
    keyed = check()
    assert not m._fast
    m.drift(60.0, np.random.default_rng(4))
    assert not np.array_equal(check(), keyed)
    m._g_eff = m._g_eff * 0.5  # replaced from outside (tb/test_top_cosim.py does this)
    halved = check()
    np.testing.assert_array_equal(halved[0], np.clip(np.rint(
        d.astype(np.float64) @ m._g_eff * m.v_lsb_v * (128 / m.i_fs_ua)), -128, 127))
    m.program(rng.standard_normal((32, 20)), np.random.default_rng(5))
    check()


@pytest.mark.parametrize("preset,dac_bits,k", [("fig11", 8, 512), ("tiny", 8, 70), ("tiny", 4, 70)])
def test_float_matmul_equals_the_written_out_data_path(preset: str, dac_bits: int, k: int) -> None:
    """AnalogMatrix.matmul (the float API, issue 22's batch-1 float figure) after its in-place rewrite and its
    one-row-block shortcuts (8-bit DAC codes used as they are, mvm_partial_sums returning the one block's codes)
    equals the data path written out with the golden functions: clip(rint(x / s), -128, 127) with
    s = max|x| / 127 (or the given scale, saturating), golden.tile_controller.dac_codes,
    golden.affine.accumulate_partial_sums of the ADC codes, times weight_units_per_code · s -- for one row block
    (fig11, 512 rows), three row blocks (tiny, 70 rows on 32-row arrays) and a 4-bit DAC."""
    from archmodel.golden.affine import accumulate_partial_sums
    from archmodel.golden.tile_controller import dac_codes

    spec = load_spec(preset).replace(**{"array.dac_bits": dac_bits})
    rng = np.random.default_rng(21)
    m = AnalogMatrix(spec, noise_seed=5).program(rng.standard_normal((k, 24)), np.random.default_rng(1))
    m.drift(3600.0, np.random.default_rng(2))
    x = rng.standard_normal((6, k)) * np.array([[0.1], [1], [3], [10], [1], [1]])
    x[4, :5] = [0.0, -0.0, 1e-9, -50.0, 50.0]
    checked = 0
    for in_scale in (None, 0.01):  # 0.01: most inputs saturate at -128 / 127
        for b in range(len(x)):
            s = in_scale if in_scale is not None else float(np.max(np.abs(x[b]))) / 127.0
            x8 = np.clip(np.rint(x[b:b + 1] / s), -128, 127).astype(np.int64)
            codes = m.mvm_adc_codes(dac_codes(x8, dac_bits), 7 + b)
            ref = accumulate_partial_sums(codes, adc_bits=spec.array.adc_bits,
                                          acc_bits=spec.periphery.accumulator_bits) * (m.weight_units_per_code * s)
            np.testing.assert_array_equal(m.matmul(x[b:b + 1], in_scale, 7 + b), ref)
            np.testing.assert_array_equal(m.matmul(x[b], in_scale, 7 + b), ref[0])  # 1-D in, 1-D out
            checked += ref.size
    assert checked == 2 * 6 * 24
    # a batch equals its vectors one at a time with the batch's scale
    s_all = float(np.max(np.abs(x))) / 127.0
    np.testing.assert_array_equal(m.matmul(x, None, 0),
                                  np.concatenate([m.matmul(x[b:b + 1], s_all, b) for b in range(len(x))]))


def test_one_array_output_noise_fast_path_equals_the_old_keyed_draws_and_the_batch() -> None:
    """With output noise on and ONE array (one row block, one column block) the batch-1 fast path adds the row of
    the cached keyed block itself: codes equal the batched general path and the ADC formula written out with the
    pre-issue-22 keyed draws (old_noise_rows), at MVM indices across noise-block boundaries, in any order, for
    int64 / int32 / int8 codes; out-of-range codes still get check_range's message; two column blocks (not
    eligible) give the same codes as before."""
    spec = load_spec("tiny").replace(**{"array.output_noise_fraction": 0.05})  # 32 x 32 arrays
    rng = np.random.default_rng(31)
    m = AnalogMatrix(spec, noise_seed=77).program(rng.standard_normal((32, 20)), np.random.default_rng(1))
    m.drift(3600.0, np.random.default_rng(2))
    d = rng.integers(-128, 128, size=(200, 32))
    batch = m.mvm_adc_codes(d, 0)
    sigma = 0.05 * m.i_fs_ua
    i_ua = d.astype(np.float64) @ m._g_eff * m.v_lsb_v + sigma * old_noise_rows(77, 0, 20, 0, 200)
    ref = np.clip(np.rint(i_ua * (128 / m.i_fs_ua)), -128, 127)
    np.testing.assert_array_equal(batch[0], ref)
    order = [63, 64, 0, 65, 127, 128, 199, 1, 64, 63]  # block edges, revisits after other blocks
    for i, b in enumerate(order):
        dt = (np.int64, np.int32, np.int8)[i % 3]
        np.testing.assert_array_equal(m.mvm_adc_codes(d[b:b + 1].astype(dt), b), batch[:, b:b + 1])
    assert m._fast  # the fast path was eligible
    bad = d[:1].copy()
    bad[0, 3] = -129
    with pytest.raises(ValueError, match=r"dac_codes: value -129 at index \(0, 3\)"):
        m.mvm_adc_codes(bad, 5)
    wide = AnalogMatrix(spec, noise_seed=77).program(rng.standard_normal((32, 40)), np.random.default_rng(1))
    wide.drift(3600.0, np.random.default_rng(2))  # 2 column blocks: the general path
    assert not wide._fast_constants()
    single = np.concatenate([wide.mvm_adc_codes(d[b:b + 1], b) for b in range(70)], axis=1)
    np.testing.assert_array_equal(single, wide.mvm_adc_codes(d[:70], 0))
    # the cached fast path holds no reference to its matrix: freed at once, caches included, without the GC
    import gc
    import weakref

    ref_m = weakref.ref(m)
    gc.disable()
    try:
        del m
        assert ref_m() is None
    finally:
        gc.enable()


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning")  # NaN -> int64, both paths
def test_float_matmul_errors_are_unchanged() -> None:
    """The float API's 8-bit shortcut keeps the errors of the full path: a NaN input gets dac_codes' check of the
    int8 codes ("x_int8: value ..."), a wrong length mvm_adc_codes' shape message."""
    spec = load_spec("tiny")
    m = AnalogMatrix(spec, noise_seed=5).program(np.random.default_rng(0).standard_normal((32, 8)),
                                                 np.random.default_rng(1))
    x = np.ones((1, 32))
    x[0, 4] = np.nan
    with pytest.raises(ValueError, match=r"^x_int8: value -9223372036854775808 at index \(0, 4\) outside"):
        m.matmul(x)
    with pytest.raises(ValueError, match=r"dac_codes must have shape \(B, 32\) or \(32,\), got \(1, 31\)"):
        m.matmul(np.ones((1, 31)))
