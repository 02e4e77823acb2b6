"""cocotb: ``digits-resnet`` on the co-processor top level, checked bit for bit (issue 18; tb/resnet_env.py).

Run by :func:`tb.resnet_env.cosim_resnet` (``aimc cosim --network digits-resnet --images N``). Environment as
``tb.test_top_cosim.test_cnn_network``: ``AIMC_PLACEMENT``, ``AIMC_CNN_IMAGES`` (default 1),
``AIMC_CNN_WEIGHTS`` (``seeded`` / ``trained``), ``AIMC_CNN_WEIGHT_SEED`` (default 3), ``AIMC_CNN_T_INF``
(default 3600 s).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb

from tb.test_top_cosim import _check, _check_digital_only, _env, _save, _start


@cocotb.test(timeout_time=4000, timeout_unit="ms")
async def test_resnet_network(dut):
    """The whole digits-resnet (:func:`_resnet`), no fault."""
    await _resnet(dut, "none", "test_resnet_network")


@cocotb.test(timeout_time=4000, timeout_unit="ms")
async def test_resnet_fault(dut):
    """digits-resnet with the stem's weight flit 1 negated on its way to the chip (:func:`_resnet`)."""
    await _resnet(dut, "weight", "test_resnet_fault")


async def _resnet(dut, fault: str, test: str):
    """digits-resnet (the network of ``AIMC_PLACEMENT``) on the chip in the two phases of :mod:`tb.resnet_env`,
    ready low on ~30 % of cycles (seeded) at m_axis, the AXI4-Lite responses and every array port.

    Asserts (no fault): every b2_conv2_bn value (chan 0) and b2_proj_bn value (tap, chan 1) compared, 0
    mismatches; every analog tile's DAC beats compared, 0 mismatches (b1_add's output at b2_conv1's and b2_proj's
    joins among them); every class score after the digital node's input join (b2_add) + global pool + fc
    compared, 0 mismatches; no status flag; RTL top-1 = the model's. ``fault = "weight"``: the stem's weight flit
    1 negated on its way to the chip (golden untouched): asserts DAC mismatches, the first (in layer order) at
    b1_conv1's tiles (the first layer reading the stem's results).
    """
    import numpy as np

    from archmodel.datasets import load_digits_split
    from archmodel.placement import LayerPlacement, Placement
    from archmodel.zoo import get_network
    from rtl.register_compiler import compile_digital_weights
    from tb.cnn_golden import cnn_golden, seeded_params
    from tb.resnet_env import prepare_resnet

    env = _env()
    n = int(os.environ.get("AIMC_CNN_IMAGES", "1"))
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7, p_axil=0.7)
    pl = json.loads(Path(os.environ["AIMC_PLACEMENT"]).read_text())
    placement = Placement(pl["spec_name"], pl["network_name"], pl["replicate"],
                          tuple(LayerPlacement(**lp) for lp in pl["layers"]))
    net = get_network(placement.network_name)
    if os.environ.get("AIMC_CNN_WEIGHTS", "seeded") == "trained":
        from archmodel.digits_experiment import train_on_digits
        result, data = train_on_digits(net, env["seed"], 0.0, 30, None)
        params = result.params
        source = (f"trained on the digits split of seed {env['seed']} (30 epochs, no weight noise; FP32 test "
                  f"accuracy {result.test_accuracy:.4f})")
    else:
        wseed = int(os.environ.get("AIMC_CNN_WEIGHT_SEED", "3"))
        data = load_digits_split(env["seed"])
        params, source = seeded_params(net, wseed), f"seeded (tb.cnn_golden.seeded_params, seed {wseed})"
    g = cnn_golden(tb.spec, net, placement, params, data.x_test[:n], data.x_train[:256], seed=env["seed"],
                   t_inf_s=float(os.environ.get("AIMC_CNN_T_INF", "3600")))
    ph = prepare_resnet(g)
    f, c = ph.features, ph.classifier
    fault_what = None
    if fault == "weight":
        ws = compile_digital_weights(tb.spec, f.layers)
        link = tb.spec.interconnect.link_width_bits
        k = 1  # flit 1: weight word 0's lanes 4.. (the stem is 9 x 16: every word is used)
        flits = list(ws.flits)
        lanes = [((flits[k] >> (8 * i)) & 0xFF) for i in range(link // 8)]
        flits[k] = sum((((-((v ^ 0x80) - 0x80)) & 0xFF) << (8 * i)) for i, v in enumerate(lanes))
        f.weights = ws._replace(flits=flits)
        fault_what = f"the stem's weight flit {k} negated on its way to the chip (golden untouched)"
    res1 = await tb.run(f, log=dut._log)
    got = np.asarray(tb.checker.got)
    st1 = await tb.read("digital.status1")
    b2c2 = got if got.shape == f.expected.shape else f.expected
    streams = list(c.host_streams)
    streams[0] = (streams[0][0], streams[0][1], b2c2)  # b2_conv2_bn exactly as the RTL produced it
    c.host_streams = streams
    res2 = await tb.run(c, log=dut._log)
    st2 = await tb.read("digital.status1")
    scores = np.asarray(tb.checker.got)
    top1_rtl = np.argmax(scores, axis=1) if scores.ndim == 2 and len(scores) else np.zeros(0, int)
    dac_layers = list(dict.fromkeys(f.layers[li].name.split("[")[0]
                                    for li in sorted({li for li, _ in res1.dac_mismatch_at})))
    per_beat = -(-tb.tag_bits // tb.link_bits)
    stem_dests = len(f.layers[0].dests)
    out = {
        "test": test, "images": n, "weights": source, "seed": env["seed"], "network": net.name, "fault": fault,
        "fault_what": fault_what, "expected_layer": "b1_conv1's input = the stem's output",
        "features": res1.as_dict(), "classifier": res2.as_dict(),
        "labels": data.y_test[:n].tolist(), "top1_rtl": top1_rtl.tolist(), "top1_model": g.top1.tolist(),
        "layer_names": ph.layer_names, "layer_kinds": ph.layer_kinds, "predicted_cycles": ph.predicted_cycles,
        "pixels": ph.pixels, "stem_cycles": int(st1["cycles0"]), "fc_cycles": int(st2["cycles0"]),
        "stem_flits_per_pixel": stem_dests * (-(-16 // tb.params.rows_per_dac_beat)) * per_beat,
        "mvm_start_cycles": res1.mvm_start_cycles, "tiles": [lyr.tile for lyr in f.layers],
        "tile_layers": [lyr.name.split("[")[0] for lyr in f.layers],
        "first_mismatches": res1.first_mismatches[:6] + res2.first_mismatches[:3], "dac_mismatch_layers": dac_layers,
    }
    _save(test, out)
    if fault == "none":
        _check(res1, test, out)
        _check_digital_only(res2)
        assert res1.compared == n * 16 * 32 and res1.tap_compared == n * 16 * 32, res1.summary()
        assert res2.compared == n * 10, res2.summary()
        assert (top1_rtl == g.top1).all(), f"top-1 RTL {top1_rtl} != model {g.top1}"
    else:
        assert res1.dac_mismatches > 0 and dac_layers[0] == "b1_conv1", res1.summary() + f" at {dac_layers}"
