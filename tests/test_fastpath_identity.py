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
    m = AnalogMatrix(load_spec("fig11"), noise_seed=0).program(
        np.random.default_rng(0).standard_normal((512, 512)), np.random.default_rng(0))
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
        assert one.dtype == np.int64 and one.shape == (1, 1, 512)
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
