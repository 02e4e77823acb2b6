"""cocotb: the digital node's input join + pool at the co-processor top level (issue 18; rtl.pool.InputJoin).

Run by ``tests/test_digital_join_top.py`` on the tiny chip. The host sends the digital node three streams on one
link: two 4 x 4 maps of 16 channels tagged as tiles 2 and 3 (the join's addends, interleaved pixel by pixel) and
8-element vectors tagged as the host (which must pass the join untouched), the three interleaved at random (each
in order). The join (ReLU(q0·a + q1·b)
requantized) and the global average pool make 16 elements, the host's queue 8 more; a digital linear layer
24 -> 10 reads both and sends its scores to the host. Expected: numpy written out here (the join, the pool's
``(2·sum + hw) // (2·hw)``, ``digital_linear``, the coefficients). Ready low ~30 % of cycles at m_axis and the
AXI4-Lite responses; the host's valid low ~30 % of cycles.
"""

from __future__ import annotations

import cocotb

from tb.test_top_cosim import _check_digital_only, _env, _save, _start


def _join_pool_job(spec, seed: int):
    """The PreparedNetwork of the scenario and its independent expectation (module docstring)."""
    import numpy as np

    from archmodel.golden.coefficients import quantize_affine
    from archmodel.golden.digital import digital_linear
    from archmodel.network.builder import NetworkBuilder
    from rtl.params import DigitalParams, TileParams
    from rtl.pool import JOIN_MAX_SHIFT
    from rtl.register_compiler import compile_mapped_network, digital_layer, host_dest, with_input_join
    from rtl.regmap import build_regmap, source_tag
    from tb.top_env import NetworkJob, PreparedNetwork

    rng = np.random.default_rng([seed, 18])
    b, c, h, w, kh = 2, 16, 4, 4, 8
    a = rng.integers(-128, 128, (b, c, h, w))
    bb = rng.integers(-128, 128, (b, c, h, w))
    host = rng.integers(-128, 128, (b, kh))
    tp, dp = TileParams.from_spec(spec), DigitalParams.from_spec(spec)
    ta, tb_, th = source_tag(spec, 2), source_tag(spec, 3), source_tag(spec, "host")
    sa, sb, so = 0.04, 0.03, 0.05
    # expectation, by hand: requantize_sum written out, then the global average pool
    coef = quantize_affine(np.array([sa, sb]) / so, 0.0, scale_bits=tp.scale_bits, max_shift=JOIN_MAX_SHIFT(tp))
    acc = np.maximum(int(coef.scale[0]) * a + int(coef.scale[1]) * bb, 0)
    s = np.clip((acc + (1 << (int(coef.shift) - 1))) >> int(coef.shift), -128, 127)
    pooled = (2 * s.sum(axis=(2, 3)) + h * w) // (2 * h * w)
    x = np.concatenate([pooled, host], axis=1)  # queue 0 (the join's 16), then queue 1 (the host's 8)
    layer = digital_layer(spec, rng.normal(size=(c + kh, 10)), dest=host_dest(spec), in_scale=1.0, out_scale=40.0,
                          relu=False, n_pixels=b, name="fc")
    from dataclasses import replace

    layer = replace(layer, sources=((ta, c), (th, kh)))
    sums = digital_linear(x, layer.w_int8, acc_bits=dp.acc_bits)
    want = layer.coefs.apply(sums, acc_bits=dp.acc_bits, scale_bits=dp.scale_bits, offset_bits=dp.offset_bits)
    nb = NetworkBuilder("j", (c, h, w))
    nb.global_avgpool("pool", nb.input)
    rm = build_regmap(spec)
    layer = with_input_join(spec, layer, src_a=ta, src_b=tb_, scale_a=sa, scale_b=sb, out_scale=so, relu=True,
                            pool=nb.build().layer("pool"))  # written by the compiler with the layer
    writes = compile_mapped_network(spec, [layer], regmap=rm)
    pix = [m.transpose(0, 2, 3, 1).reshape(-1, c) for m in (a, bb)]
    job = NetworkJob("digital join + pool", spec.name, {}, seed, None, [], [], [], x, [False])
    pn = PreparedNetwork(job=job, spec=spec, params=tp, regmap=rm, matrices=[None], layers=[layer], inputs=[x],
                         expected=np.asarray(want), writes=writes, entry=[0], layer_outputs=[np.asarray(want)],
                         host_streams=[(0, ta, pix[0]), (0, tb_, pix[1]), (0, th, host)])
    return pn, {"pooled": pooled.tolist(), "q": [int(coef.scale[0]), int(coef.scale[1]), int(coef.shift)]}


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_digital_join_pool(dut):
    """The join + global pool at the digital node with a bypassed host stream on the same link (module
    docstring): every score compared, 0 mismatches, no status flag."""
    env = _env()
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_axil=0.7)
    pn, extra = _join_pool_job(tb.spec, env["seed"])
    res = await tb.run(pn, log=dut._log, order="random")  # the three streams interleaved at random, each in order
    st = await tb.read("digital.status1")
    _save("test_digital_join_pool", res.as_dict() | extra | {"cycles0": int(st["cycles0"])})
    _check_digital_only(res)
    assert res.compared == 2 * 10, res.summary()
    assert res.out_stall_cycles > 0, res.summary()
