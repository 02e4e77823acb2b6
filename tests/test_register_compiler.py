"""Register compiler (rtl.register_compiler): hand-computed writes for a tiny layer, decoded back.

Hand computation (tiny preset: 32 x 32 arrays, g_max 25 µS, V_read 0.2 V,
8-bit DAC and ADC, ADC full scale 0.25 of rows * g_max * V_read; 16-bit scale,
32-bit offset, 16-bit accumulator so shifts up to 31):

- ADC LSB = 0.25 * 32 * 25 µS * 0.2 V / 128 = 0.3125 µA; DAC LSB = 0.2 V / 128
  = 1.5625 mV; with max|W| = 1 the conductance scale is s = 25 µS per unit;
- multiplier m = alpha * 0.3125 * in_scale / (0.0015625 * 25 * out_scale)
  = 8 * alpha * in_scale / out_scale = 1.25 for alpha = 1.25, in_scale = 1/64,
  out_scale = 1/8;
- shift = the largest with round(1.25 * 2^shift) <= 32767: 14 (2^15 * 1.25 = 40960
  does not fit), scale = 1.25 * 2^14 = 20480 = 0x5000;
- offset of a bias b: b / out_scale * 2^14: b = 0.5 -> 4 * 16384 = 65536 = 0x10000,
  b = -0.25 -> -32768 = 0xFFFF8000 (two's complement, 32 bits), b = 0 -> 0.

Tile 1 of the tiny preset sits at 0x1100 (0x1000 + 1 * 0x100): controller at
+0x00, affine unit at +0x40, network interface at +0x80 (rtl.regmap).
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.spec import load_spec
from rtl.csr import Access
from rtl.register_compiler import (
    MappedLayer,
    RegWrite,
    analog_layer,
    command_writes,
    compile_layer,
    compile_network,
    dump_writes,
    host_dest,
    tile_coords,
)
from rtl.regmap import build_regmap

SPEC = load_spec("tiny")
RM = build_regmap(SPEC)
K, N = 20, 12


def tiny_layer(tile: int = 1, dest: tuple[int, int] = (2, 0), relu: bool = True) -> MappedLayer:
    w = np.linspace(-0.5, 1.0, K * N).reshape(K, N)     # max|W| = 1
    bias = np.zeros(N)
    bias[0], bias[1] = 0.5, -0.25
    return analog_layer(SPEC, w, tile=tile, dest=dest, in_scale=1 / 64, out_scale=1 / 8, bias=bias,
                        gdc_alpha=1.25, relu=relu, name="tiny")


def test_hand_computed_coefficients():
    lyr = tiny_layer()
    assert lyr.coefs.shift == 14
    assert list(lyr.coefs.scale) == [20480] * N
    assert list(lyr.coefs.offset) == [65536, -32768] + [0] * (N - 2)
    assert lyr.gdc_alpha == 1.25 and lyr.g_scale_us == 25.0
    # K = 20 rows: 3 DAC beats; N = 12 columns: 2 ADC beats; 6-cycle array; + 2 overhead
    assert lyr.mvm_cycles == 3 + 6 + 2 + 2


def test_hand_written_writes_tile1():
    writes = compile_layer(SPEC, tiny_layer(), regmap=RM)
    expected = [
        (0x1100, 20, "tile1.tc.k_rows"), (0x1104, 12, "tile1.tc.n_cols"),
        (0x1108, 1, "tile1.tc.n_row_blocks"), (0x110C, 1, "tile1.tc.n_col_blocks"), (0x1110, 1, "tile1.tc.mode"),
        (0x114C, 14, "tile1.affine.shift"), (0x1150, 1, "tile1.affine.relu"),
        (0x1154, 0, "tile1.affine.chain_in"), (0x1158, 0, "tile1.affine.chain_out"),
    ]
    offsets = [0x10000, 0xFFFF8000] + [0] * (N - 2)
    for j in range(N):
        expected += [(0x1140, j, "tile1.affine.coef_addr"), (0x1144, 0x5000, "tile1.affine.coef_scale"),
                     (0x1148, offsets[j], "tile1.affine.coef_offset"), (0x115C, 0b01, "tile1.affine.ctrl")]
    expected.append((0x1180, 2, "tile1.ni.dest"))           # host: x = cols = 2, y = 0
    # what the layer does not use, switched off (issue 18): tiny's second destination entry (+0x84), the patch
    # buffer (+0xC0), the pool unit (+0xE0), the residual join (+0xA0)
    expected += [(0x1184, 0, "tile1.ni.dest1"), (0x11C0, 0, "tile1.lb.en"), (0x11E0, 0, "tile1.pool.en"),
                 (0x11A0, 0, "tile1.add.en")]
    assert [tuple(w) for w in writes] == expected
    assert all(isinstance(w, RegWrite) for w in writes)


def test_writes_decode_back_through_the_register_map():
    lyr = tiny_layer(tile=3, dest=(0, 1), relu=False)
    writes = compile_layer(SPEC, lyr, regmap=RM)
    by_addr = {r.address: r for r in RM.registers}
    coef_col = None
    for w in writes:
        reg = by_addr[w.addr]                               # every address is a register of the map
        assert reg.name == w.name and reg.name.startswith("tile3.")
        assert all(f.access in (Access.RW, Access.W1P) for f in reg.fields)
        assert w.data & ~sum(f.mask for f in reg.fields) == 0  # no bit outside a field
        fields = RM.decode(w.name, w.data)
        if w.name.endswith("coef_addr"):
            coef_col = fields["coef_addr"]
        elif w.name.endswith("coef_scale"):
            assert fields["coef_scale"] == lyr.coefs.scale[coef_col]
        elif w.name.endswith("coef_offset"):
            assert fields["coef_offset"] == lyr.coefs.offset[coef_col]
        elif w.name.endswith("affine.ctrl"):
            assert fields == {"coef_we": 1, "clear": 0}
    fields = {w.name: RM.decode(w.name, w.data) for w in writes}
    assert fields["tile3.tc.k_rows"] == {"k_rows": K} and fields["tile3.tc.n_cols"] == {"n_cols": N}
    assert fields["tile3.affine.relu"] == {"relu": 0} and fields["tile3.affine.shift"] == {"shift": 14}
    assert fields["tile3.ni.dest"] == {"x": 0, "chan": 0, "lo": 0, "y": 1, "hi": 0}
    assert [w.data for w in writes if w.name == "tile3.ni.dest"] == [1 << 16]   # y at bit 16
    assert sum(w.name.endswith("affine.ctrl") for w in writes) == N


def test_block_counts_on_a_four_array_tile():
    spec = SPEC.replace(**{"array.arrays_per_tile": 4})
    rm = build_regmap(spec)
    w = np.ones((50, 40))
    lyr = analog_layer(spec, w, tile=0, dest=(1, 0), in_scale=1 / 64, out_scale=1.0)
    f = {wr.name: rm.decode(wr.name, wr.data) for wr in compile_layer(spec, lyr, regmap=rm)}
    assert f["tile0.tc.n_row_blocks"] == {"n_row_blocks": 2} and f["tile0.tc.n_col_blocks"] == {"n_col_blocks": 2}
    # 32x32 + 18x32 + 32x8 + 18x8 arrays: (4+6+4+2) + (3+6+4+2) + (4+6+1+2) + (3+6+1+2)
    assert lyr.mvm_cycles == 16 + 15 + 13 + 12


def test_commands_and_network():
    assert [tuple(w) for w in command_writes(SPEC, [2], "start", regmap=RM)] == [(0x1214, 1, "tile2.tc.ctrl")]
    assert [tuple(w) for w in command_writes(SPEC, [0], "stop", regmap=RM)] == [(0x1014, 2, "tile0.tc.ctrl")]
    first = tiny_layer(tile=0, dest=tile_coords(SPEC, 1))
    w2 = np.full((N, 5), 0.3)
    second = analog_layer(SPEC, w2, tile=1, dest=host_dest(SPEC), in_scale=1 / 8, out_scale=1.0, name="second")
    writes = compile_network(SPEC, [first, second], regmap=RM)
    assert writes[-2:] == command_writes(SPEC, [1, 0], "start", regmap=RM)   # last layer started first
    assert len(writes) == (9 + 4 * N + 1 + 4) + (9 + 4 * 5 + 1 + 4) + 2  # + 4: dest1, lb, pool, add off
    with pytest.raises(ValueError, match="next layer"):
        compile_network(SPEC, [tiny_layer(tile=0, dest=(0, 1)), second], regmap=RM)
    with pytest.raises(ValueError, match="share a tile"):
        compile_network(SPEC, [tiny_layer(tile=1, dest=(1, 0)), second], regmap=RM)


def test_errors():
    with pytest.raises(ValueError, match="arrays_per_tile"):
        analog_layer(SPEC, np.ones((40, 8)), tile=0, dest=(1, 0), in_scale=1.0, out_scale=1.0)
    with pytest.raises(ValueError, match="outside"):
        analog_layer(SPEC, np.ones((8, 8)), tile=4, dest=(1, 0), in_scale=1.0, out_scale=1.0)
    with pytest.raises(ValueError, match="out of range"):          # x field is 2 bits wide
        compile_layer(SPEC, tiny_layer(dest=(4, 0)), regmap=RM)
    with pytest.raises(ValueError, match="start"):
        command_writes(SPEC, [0], "go", regmap=RM)


def test_dump_is_readable():
    writes = compile_layer(SPEC, tiny_layer(), regmap=RM)
    text = dump_writes(SPEC, writes, regmap=RM)
    lines = text.splitlines()
    assert len(lines) == len(writes) + 2 and RM.digest in lines[0]
    assert "0x1148   tile1.affine.coef_offset        0xffff8000  coef_offset=-32768" in text
    assert "0x1180   tile1.ni.dest                   0x00000002  x=2 chan=0 lo=0 y=0 hi=0" in text


def test_partial_sum_chain_longer_than_the_accumulator_is_refused():
    # 12-bit accumulator, 10-bit ADC: (2**11 - 1) >> 9 = 3 row blocks fit one chain
    spec = SPEC.replace(**{"periphery.accumulator_bits": 12, "array.adc_bits": 10, "array.arrays_per_tile": 2})
    w = np.linspace(-0.5, 1.0, 64 * 32).reshape(64, 32)   # 2 row blocks of 32 rows per tile
    kw = dict(in_scale=1 / 64, out_scale=1 / 8, relu=False)
    up = analog_layer(spec, w, tile=0, dest=(1, 0), name="up", **kw)
    home = analog_layer(spec, w, tile=1, dest=host_dest(spec), name="home", **kw)
    import dataclasses
    up, home = dataclasses.replace(up, chain_out=True), dataclasses.replace(home, chain_in=True)
    with pytest.raises(ValueError, match=r"layer 'home': its partial-sum chain adds 4 row blocks, more than the 3"):
        compile_network(spec, [up, home])
