"""Issue 22 speed-ups that must not change a value: the tile's batch-1 codes path when the ADC saturates,
and the libyaml parse of the packaged chip presets.

References are independent of the code under test: the general (checked, converted) MVM path of
``mvm_adc_codes`` for a list input and the ADC formula written out with ``np.clip(np.rint(...))``
in the order ``_convert`` uses (round, then saturate); PyYAML's pure-Python ``UniqueKeyLoader``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest
import yaml

from archmodel import yaml_loader
from archmodel.analog_matrix import AnalogMatrix
from archmodel.spec import SpecError, list_presets, load_spec, load_spec_text


def test_fig11_batch_1_fast_path_is_bit_identical_when_the_adc_saturates():
    m = AnalogMatrix(load_spec("fig11"), noise_seed=0).program(  # one row block; 64 columns (8x cheaper to program)
        np.random.default_rng(0).standard_normal((512, 64)), np.random.default_rng(0))
    m.drift(3600.0, np.random.default_rng(1))
    m.set_adc_full_scale(m.i_fs_ua / 40)  # a small full scale: many columns saturate at either end
    rng = np.random.default_rng(5)
    d = rng.integers(-128, 128, size=(12, 512))
    d[:4] = rng.choice([-128, 127], size=(4, 512))  # the DAC range's ends, accepted
    general = m.mvm_adc_codes(d.tolist())  # list input: the general path (column_currents_ua + _convert)
    ref = np.clip(np.rint(d.astype(np.float64) @ m._g_eff * m.v_lsb_v * (128 / m.i_fs_ua)), -128, 127)
    np.testing.assert_array_equal(general[0], ref)
    for b in range(12):
        one = m.mvm_adc_codes(d[b:b + 1], b)
        assert one.dtype == np.int64 and one.shape == (1, 1, 64)
        np.testing.assert_array_equal(one, general[:, b:b + 1])
    assert 0.2 < np.mean(general == 127) + np.mean(general == -128) < 0.9  # both ends exercised
    assert np.any(general == 127) and np.any(general == -128)
    bad = d[:1].copy()
    bad[0, 3] = -129
    with pytest.raises(ValueError, match=r"dac_codes: value -129 at index \(0, 3\)"):
        m.mvm_adc_codes(bad)


@pytest.mark.parametrize("name", list_presets())
def test_trusted_preset_parse_equals_the_pure_loader(name: str):
    text = resources.files("archmodel.presets").joinpath(f"{name}.yaml").read_text()
    pure = yaml.load(text, Loader=yaml_loader.UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    fast = yaml_loader.load_yaml_or_raise(text, name, SpecError, trusted=True)
    assert repr(fast) == repr(pure)  # same values and types (int vs float), same key order
    assert load_spec(name).model_dump_json() == load_spec_text(text, origin=f"preset '{name}'").model_dump_json()


@pytest.mark.parametrize("text", ["rows: 1\nrows: 2\n", "a: [1, 2\n", "a: 1\n  b: 2\n"])
def test_trusted_parse_errors_are_the_pure_loaders(text: str):
    messages = []
    for trusted in (False, True):
        with pytest.raises(SpecError) as exc:
            yaml_loader.load_yaml_or_raise(text, "x.yaml", SpecError, trusted=trusted)
        messages.append(str(exc.value))
    assert messages[0] == messages[1]
    assert messages[0].startswith("x.yaml: ")


@pytest.mark.parametrize("relu", [False, True])
def test_affine_requantize_trusted_equals_the_written_out_integer_formula(relu: bool) -> None:
    """golden.affine.affine_requantize_trusted folds the rounding term into the offset and, after a ReLU, skips
    the lower bound (issue 22); the reference here is the formula step by step with Python integers:
    y = p·scale + offset, ReLU, (y + 2^(shift-1)) >> shift, saturate -- every shift, both saturation ends,
    the most negative and positive operands of the widths the accuracy path uses (acc 20, scale 16, offset 32)."""
    from archmodel.golden.affine import affine_requantize, affine_requantize_trusted

    rng = np.random.default_rng(7)
    p = rng.integers(-(1 << 19), 1 << 19, size=(40, 6))
    p[0], p[1], p[2] = -(1 << 19), (1 << 19) - 1, 0
    scale = np.array([-(1 << 15), (1 << 15) - 1, 1, -1, 12345, -777])
    offset = np.array([-(1 << 31), (1 << 31) - 1, 0, 5, -3, 1 << 20])
    ends = set()
    for shift in range(0, 35 + 1):
        got = affine_requantize_trusted(p, scale, offset, shift, relu)
        ref = np.empty_like(p)
        for (i, j), v in np.ndenumerate(p):
            y = int(v) * int(scale[j]) + int(offset[j])
            y = max(y, 0) if relu else y
            y = (y + (1 << (shift - 1))) >> shift if shift else y
            ref[i, j] = min(max(y, -128), 127)
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(affine_requantize(p, scale, offset, shift, relu, acc_bits=20), ref)
        assert got.dtype == np.int64
        ends |= set(np.intersect1d(ref, [-128, 127]).tolist())
    assert ends == ({127} if relu else {-128, 127})  # both saturation ends exercised (only the top after a ReLU)


def test_integer_pooling_by_strided_taps_equals_the_window_reduction() -> None:
    """archmodel.accuracy._pool_int reduces the kh·kw taps as strided views (issue 22); the reference is the
    reduction written out over every window with Python integers (max; round-half-up mean with and without the
    pads in the divisor), on int8 maps with padding, unequal strides and kernels, and both int8 ends."""
    from archmodel.accuracy import _pool_int
    from archmodel.network.builder import NetworkBuilder

    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, size=(2, 3, 7, 6)).astype(np.int8)
    x[0, 0, 0, :2] = [-128, 127]
    b = NetworkBuilder("pools", (3, 7, 6))
    b.maxpool("mp", b.input, (2, 3), stride=(1, 2), padding=(1, 0, 0, 1))
    b.avgpool("ap", b.input, 3, stride=2, padding=1, count_include_pad=False)
    b.avgpool("api", b.input, 3, stride=(1, 2), padding=1, count_include_pad=True)
    net = b.build()
    for layer in net.layers:
        if layer.op not in ("maxpool", "avgpool"):
            continue
        kh, kw = layer.attrs["kernel"]
        sh, sw = layer.attrs["stride"]
        pt, pl, pb, pr = layer.attrs["padding"]
        _, ho, wo = layer.output_shape
        got = _pool_int(x, layer, layer.op)
        assert got.dtype == np.int8 and got.shape == (2, 3, ho, wo)
        for n, c, i, j in np.ndindex(2, 3, ho, wo):
            vals = [int(x[n, c, r, q]) for r in range(i * sh - pt, i * sh - pt + kh)
                    for q in range(j * sw - pl, j * sw - pl + kw) if 0 <= r < 7 and 0 <= q < 6]
            if layer.op == "maxpool":
                pads = kh * kw - len(vals)
                ref = max(vals + [-128] * pads)
            else:
                count = kh * kw if layer.attrs["count_include_pad"] else len(vals)
                ref = (2 * sum(vals) + count) // (2 * count)
            assert got[n, c, i, j] == ref, (layer.name, n, c, i, j)


def test_gdc_from_one_mvm_equals_the_two_separate_measurements() -> None:
    """The accuracy draw measures the global and per-column GDC references and factors from one MVM of the
    calibration codes (calibration.gdc_mean_abs_both + gdc_alpha_from, issue 22); they must equal
    gdc_reference / gdc_alpha with per_column False and True, bit for bit."""
    from archmodel.calibration import gdc_alpha, gdc_alpha_from, gdc_mean_abs_both, gdc_reference
    from archmodel.golden.tile_controller import dac_codes

    spec = load_spec("tiny")
    w = np.random.default_rng(0).standard_normal((40, 12))
    m = AnalogMatrix(spec, noise_seed=4).program(w, np.random.default_rng(1))
    cal = np.random.default_rng(2).integers(-128, 128, size=(64, 40), dtype=np.int8)
    codes = dac_codes(cal, spec.array.dac_bits)
    ref_g, ref_c = gdc_mean_abs_both(m, codes)
    assert ref_g == gdc_reference(m, cal) and type(ref_g) is float
    np.testing.assert_array_equal(ref_c, gdc_reference(m, cal, per_column=True))
    m.drift(86400.0, read_noise_key=(1, 2))
    now_g, now_c = gdc_mean_abs_both(m, codes)
    assert gdc_alpha_from(now_g, ref_g) == gdc_alpha(m, cal, ref_g) != 1.0
    alpha_c = gdc_alpha_from(now_c, ref_c, per_column=True)
    np.testing.assert_array_equal(alpha_c, gdc_alpha(m, cal, ref_c, per_column=True))
    assert alpha_c.shape == (12,) and np.all(alpha_c > 1.0)  # a day of drift: every column reads less


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64])
def test_batch_1_range_check_by_take_accepts_exactly_the_dac_range(dtype) -> None:
    """The batch-1 fast path checks the DAC range with one ``table.take`` (issue 22): numpy accepts exactly the
    indices [-n, n) of an n-entry table, i.e. the signed DAC range. Both ends accepted and equal to the general
    path's codes; one step beyond either end refused with check_range's message (the general path's), wherever
    the dtype can hold it; for an 8-bit and a 4-bit DAC on tiny's 32-row arrays."""
    base = load_spec("tiny")  # 32 x 32 arrays, 8-bit DAC
    for dac_bits in (8, 4):
        spec = base.replace(**{"array.dac_bits": dac_bits}) if dac_bits != 8 else base
        lo, hi = -(1 << (dac_bits - 1)), (1 << (dac_bits - 1)) - 1
        m = AnalogMatrix(spec, noise_seed=0).program(np.random.default_rng(0).standard_normal((32, 9)),
                                                     np.random.default_rng(1))
        m.drift(60.0, np.random.default_rng(2))
        d = np.random.default_rng(3).integers(lo, hi + 1, size=(2, 32))
        d[0, :3], d[1, -3:] = lo, hi
        for b in range(2):
            one = m.mvm_adc_codes(d[b:b + 1].astype(dtype), b)
            np.testing.assert_array_equal(one, m.mvm_adc_codes(d[b:b + 1].tolist(), b))
            assert one.dtype == np.int64 and one.shape == (1, 1, 9)
        # a batch takes the argmin/argmax check (same codes as the general path)
        np.testing.assert_array_equal(m.mvm_adc_codes(d.astype(dtype)), m.mvm_adc_codes(d.tolist()))
        for bad_value, col in ((lo - 1, 0), (hi + 1, 31)):
            if not np.iinfo(dtype).min <= bad_value <= np.iinfo(dtype).max:
                continue  # not representable (int8 with an 8-bit DAC): the dtype itself is the range
            bad = d[:1].copy()
            bad[0, col] = bad_value
            with pytest.raises(ValueError, match=rf"dac_codes: value {bad_value} at index \(0, {col}\)"):
                m.mvm_adc_codes(bad.astype(dtype))
            with pytest.raises(ValueError, match=rf"dac_codes: value {bad_value} at index \(1, {col}\)"):
                m.mvm_adc_codes(np.concatenate([d[:1], bad]).astype(dtype))  # in a batch
        assert m._fast  # the fast path was eligible throughout (not silently skipped)


def test_affine_by_table_equals_the_affine_unit_on_every_adc_code() -> None:
    """accuracy._affine_by_table (issue 22) gathers the affine unit's output from a table over the 2^adc_bits
    possible ADC codes; it must equal affine_requantize_trusted(...).astype(int8) on every code of every column,
    with and without ReLU, shifts 0 / 9 / 20, coefficients at the widths' ends (both int8 ends reached)."""
    from archmodel.accuracy import _affine_by_table
    from archmodel.golden.affine import AffineCoefficients, affine_requantize_trusted

    codes = np.repeat(np.arange(-128, 128, dtype=np.int64)[:, None], 5, axis=1)
    codes = np.concatenate([codes, np.random.default_rng(0).integers(-128, 128, size=(300, 5))])
    scale = np.array([-(1 << 15), (1 << 15) - 1, 1, -3, 700])
    offset = np.array([-(1 << 31), (1 << 31) - 1, 0, 123456, -5000])
    seen = set()
    for shift in (0, 9, 20):
        for relu in (False, True):
            coeff = AffineCoefficients(scale, offset, shift, relu)
            got = _affine_by_table(codes, coeff, 128)
            ref = affine_requantize_trusted(codes, scale, offset, shift, relu).astype(np.int8)
            assert got.dtype == np.int8 and got.shape == codes.shape
            np.testing.assert_array_equal(got, ref)
            seen |= set(np.intersect1d(ref, [-128, 127]).tolist())
    assert seen == {-128, 127}


def test_mvm_rows_scratch_buffers_equal_fresh_rows_across_calls() -> None:
    """mvm_rows(_scratch_rows=True) reuses its padded map and rows buffers (issue 22): the rows must equal the
    freshly allocated ones call after call (the padding border stays zero although the buffer is reused, a
    smaller input does not see a larger one's data), and the reference is golden.digital.im2col's tap-major rows."""
    from archmodel.accuracy import mvm_rows
    from archmodel.golden.digital import im2col
    from archmodel.network.builder import NetworkBuilder

    b = NetworkBuilder("c", (4, 5, 5))
    b.conv("conv", b.input, 6, 3, stride=1, padding=1)
    layer = b.build().layer("conv")
    rng = np.random.default_rng(1)
    for n in (3, 3, 2, 3):
        x = rng.integers(-128, 128, size=(n, 4, 5, 5)).astype(np.int8)
        got, p = mvm_rows(layer, x, np.float64, _scratch_rows=True)
        fresh, _ = mvm_rows(layer, x, np.float64)
        np.testing.assert_array_equal(got, fresh)
        ref = np.concatenate([im2col(x[i], (3, 3), 1, 1).T for i in range(n)])
        np.testing.assert_array_equal(got, ref)
        assert p == 25 and got.shape == (n * 25, 36) and got.dtype == np.float64
