"""Register compiler: partial-sum chains and digital layers (issue 15).

- ``chained_layer``: K = 52 on tiny (32-row tiles) splits 32 + 20; the
  upstream tile gets ``chain_out`` and the home tile's address as destination,
  the home tile ``chain_in`` and the layer's destination; both carry the
  coefficients of the *whole* matrix (one conductance scale, max|W| of all 52
  rows, recomputed here from ``analog_affine_multiplier`` / ``quantize_affine``).
- ``compile_network`` writes those flags (decoded back from the words) and
  refuses a broken chain.
- ``compile_digital_layer``: the weight writes, decoded and replayed into a
  (words x lanes) memory as ``rtl.digital`` lays it out, give back ``w_int8``
  exactly; ``w_int8 * w_scale`` is within half a step of the real weights.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.golden.coefficients import analog_affine_multiplier, folded_offset, quantize_affine
from archmodel.spec import load_spec
from rtl.register_compiler import (
    chained_layer,
    compile_digital_layer,
    compile_digital_weights,
    compile_network,
    digital_dest,
    digital_layer,
    host_dest,
)
from rtl.regmap import build_regmap

SPEC = load_spec("tiny")


def _chain(rng):
    w = rng.standard_normal((52, 24))
    w[40, 3] = 9.0  # max|W| on the home tile's rows
    return w, chained_layer(SPEC, w, tiles=[0, 1], rows=[32, 20], dest=host_dest(SPEC), in_scale=1 / 64,
                            out_scale=0.5, bias=np.zeros(24), relu=False, name="fc")


def test_chained_layer_flags_and_coefficients():
    w, (up, home) = _chain(np.random.default_rng(0))
    assert (up.tile, up.k_rows, up.chain_in, up.chain_out, up.dest) == (0, 32, False, True, (1, 0))
    assert (home.tile, home.k_rows, home.chain_in, home.chain_out, home.dest) == (1, 20, True, False, (2, 0))
    a = SPEC.array
    m = analog_affine_multiplier(in_scale=1 / 64, out_scale=0.5, w_abs_max=9.0, g_max_us=SPEC.device.g_max_us,
                                 v_read_v=a.v_read_v, array_rows=a.rows, adc_bits=a.adc_bits, dac_bits=a.dac_bits,
                                 adc_full_scale_fraction=a.adc_full_scale_fraction)
    p = SPEC.periphery
    want = quantize_affine(np.full(24, m), np.broadcast_to(folded_offset(np.zeros(24), out_scale=0.5), (24,)),
                           relu=False, scale_bits=p.affine_scale_bits, offset_bits=p.affine_offset_bits,
                           max_shift=min(62, p.accumulator_bits + p.affine_scale_bits - 1))
    for lyr in (up, home):
        assert np.array_equal(lyr.coefs.scale, want.scale) and lyr.coefs.shift == want.shift
        assert lyr.g_scale_us == pytest.approx(SPEC.device.g_max_us / 9.0)


def test_compile_network_writes_chain_flags():
    _, chain = _chain(np.random.default_rng(1))
    rm = build_regmap(SPEC)
    writes = compile_network(SPEC, chain, regmap=rm)
    got = {(wr.name, k): v for wr in writes for k, v in rm.decode(wr.name, wr.data).items()
           if wr.name.endswith(("chain_in", "chain_out", "k_rows"))}
    assert got[("tile0.affine.chain_out", "chain_out")] == 1 and got[("tile0.affine.chain_in", "chain_in")] == 0
    assert got[("tile1.affine.chain_in", "chain_in")] == 1 and got[("tile1.affine.chain_out", "chain_out")] == 0
    assert got[("tile0.tc.k_rows", "k_rows")] == 32 and got[("tile1.tc.k_rows", "k_rows")] == 20
    from dataclasses import replace
    with pytest.raises(ValueError, match="partial-sum chain must be consecutive"):
        compile_network(SPEC, [chain[0], replace(chain[1], chain_in=False)], regmap=rm)


def test_digital_layer_weights_roundtrip():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((20, 10))
    dl = digital_layer(SPEC, w, dest=host_dest(SPEC), in_scale=1 / 64, out_scale=0.25, n_pixels=6)
    assert dl.w_int8.shape == (10, 20) and np.max(np.abs(dl.w_int8)) == 127
    assert np.all(np.abs(dl.w_int8.T * dl.w_scale - w) <= dl.w_scale / 2 + 1e-12)
    rm = build_regmap(SPEC)
    lanes = SPEC.digital.mac_lanes
    weight_writes = [(wr.name, rm.decode(wr.name, wr.data)) for wr in compile_digital_layer(SPEC, dl, regmap=rm)
                     if wr.name == "digital.w_addr" or (wr.name == "digital.ctrl" and
                                                        rm.decode(wr.name, wr.data)["w_load"])]
    assert [n for n, _ in weight_writes] == ["digital.w_addr", "digital.ctrl"]  # the pointer := word 0, 2 writes
    assert weight_writes[0][1]["w_addr"] == 0
    ws = compile_digital_weights(SPEC, [dl])
    assert (ws.x, ws.y, ws.chan) == (3, 0, 1)  # the digital node, the weight channel
    assert len(ws.flits) == 3 * 20  # ceil(10 / 4) groups x K = 20 words, one 32-bit flit of 4 lanes each
    mem = np.zeros((3 * 20, lanes), dtype=np.int64)
    for ptr, flit in enumerate(ws.flits):  # the datapath writes word ptr, the pointer increments itself
        for lane in range(lanes):
            v = (flit >> (8 * lane)) & 0xFF
            mem[ptr, lane] = v - 256 if v >= 128 else v
    for ch in range(10):
        g, l_ = divmod(ch, lanes)
        assert [int(mem[g * 20 + k, l_]) for k in range(20)] == [int(v) for v in dl.w_int8[ch]]
    assert not mem[40:, 2:].any()  # channels 10, 11 of group 2: zero
    wide = SPEC.replace(**{"interconnect.link_width_bits": 16})  # 2 lanes per flit: 2 flits per word
    flits2 = compile_digital_weights(wide, [dl]).flits
    assert len(flits2) == 2 * 60 and all(flits2[2 * i] | (flits2[2 * i + 1] << 16) == f
                                         for i, f in enumerate(ws.flits))
    assert digital_dest(SPEC) == (3, 0)


def test_two_digital_layers_and_weight_memory_limit():
    """digits-mlp's fc1 (64 -> 64) and fc3 (64 -> 10) in the two layer slots: fc3's weights from word
    64 x ceil(64 / 4) = 1024 and its coefficients from entry 64; 1,024 + 192 = 1,216 words = 1,216 32-bit flits
    streamed back to back (fc3's first at flit 1,024) after 2 writes (w_addr = 0, w_load): 2 AXI4-Lite writes for
    4,736 weights (were 2,436 before the stream); the source queues
    (host 64 elements for slot 0; tiles 1 and 3, 32 each, for slot 1). With a 4 KiB global buffer (1,024 words)
    the pair is refused in one line naming both numbers."""
    from dataclasses import replace

    from rtl.register_compiler import compile_digital_layers
    from rtl.regmap import source_tag

    rng = np.random.default_rng(3)
    d1 = digital_layer(SPEC, rng.standard_normal((64, 64)), dest=(0, 0), in_scale=1 / 127, out_scale=0.1,
                       n_pixels=5, name="fc1")
    d3 = digital_layer(SPEC, rng.standard_normal((64, 10)), dest=host_dest(SPEC), in_scale=0.1, out_scale=0.2,
                       relu=False, n_pixels=5, name="fc3")
    d3 = replace(d3, sources=((source_tag(SPEC, 1), 32), (source_tag(SPEC, 3), 32)))
    rm = build_regmap(SPEC)
    writes = compile_digital_layers(SPEC, [d1, d3], regmap=rm)
    got = {w.name: rm.decode(w.name, w.data) for w in writes}
    assert got["digital.w_base1"]["w_base1"] == 1024 and got["digital.coef_base1"]["coef_base1"] == 64
    assert got["digital.two_layers"]["two_layers"] == 1 and got["digital.k_terms1"]["k_terms1"] == 64
    assert got["digital.out1"]["x"] == 2 and got["digital.out1"]["y"] == 0
    srcs = [got[f"digital.src{q}"] for q in range(4)]
    assert [(s["src"], s["slot"], s["elems"], s["en"]) for s in srcs] == [(4, 0, 64, 1), (1, 1, 32, 1),
                                                                         (3, 1, 32, 1), (0, 0, 0, 0)]
    n_weight_writes = sum(w.name == "digital.w_addr" for w in writes) + sum(
        1 for w in writes if w.name == "digital.ctrl" and rm.decode(w.name, w.data)["w_load"])
    assert n_weight_writes == 2 and not any(n.startswith(("digital.w_data", "digital.w_we")) for n in got)
    flits = compile_digital_weights(SPEC, [d1, d3]).flits
    assert len(flits) == 1216
    w3 = [int(v) for v in d3.w_int8[:4, 0]]  # fc3 word 0 = W[k 0, ch 0..3]
    assert flits[1024] == sum((v & 0xFF) << (8 * b) for b, v in enumerate(w3))
    small = SPEC.replace(**{"buffers.global_buffer_kib": 4.0})
    with pytest.raises(ValueError, match=r"digital layers fc1, fc3 need 1,216 weight words of 4 int8; the digital "
                                         r"datapath of 'tiny' holds 1,024"):
        compile_digital_layers(small, [d1, d3])
