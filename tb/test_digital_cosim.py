"""cocotb test of the digital datapath (``rtl.digital.DigitalDatapath``) on a first-layer convolution.

Layer: the first convolution of a CIFAR ResNet at reduced size (assumed, to
keep the co-simulation short): 3x3, 3 -> 16 channels, 8x8 int8 input, zero
padding 1: K = 27 terms, 64 output pixels, 1,024 int8 outputs. Stimulus: the
im2col stream (``golden.digital.im2col``, one int8 element per beat, ``last`` on the
pixel's final term) of a random int8 image and random int8 weights, from the
seed. Reference: ``golden.digital.digital_conv2d`` (exact int32 sums) then
``golden.affine.affine_requantize`` with coefficients from
``golden.coefficients.digital_affine_multiplier`` / ``golden.coefficients.folded_offset`` /
``golden.coefficients.quantize_affine``, in the output order of
``golden.digital.digital_datapath_order``. The checker compares (channel, data,
last) in order and counts.

Cycles: from the ``start`` pulse to the last result against the mapper's
figure for a digital layer, ``ceil(MACs / digital.mac_lanes)``
(``archmodel.timing.digital_layer_cycles``); within 2 % (the RTL adds its
pipeline latency).

Environment: ``AIMC_COSIM_ARCH``, ``AIMC_COSIM_CHANGES``, ``AIMC_COSIM_SEED``,
``AIMC_COSIM_OUT`` as in :mod:`tb.test_tile_cosim`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, ReadOnly, with_timeout

from archmodel.golden.coefficients import digital_affine_multiplier, folded_offset, quantize_affine
from archmodel.golden.digital import digital_conv2d, digital_datapath_order, im2col, weight_matrix
from rtl.affine import result_layout
from rtl.digital import x_beat_layout
from rtl.params import DigitalParams
from rtl.tile_controller import index_shape
from tb.streams import CycleClock, StreamPort, StreamSink, StreamSource
from tb.tile_env import resolve_spec

PERIOD_NS = 10


def _env() -> dict:
    return {
        "arch": os.environ.get("AIMC_COSIM_ARCH", "tiny"),
        "changes": json.loads(os.environ.get("AIMC_COSIM_CHANGES", "{}") or "{}"),
        "seed": int(os.environ.get("AIMC_COSIM_SEED", "1")),
    }


def first_layer(spec, seed: int, c_in: int = 3, c_out: int = 16, hw: int = 8) -> dict:
    """Inputs, weights, coefficients and expected outputs of the first-layer convolution."""
    p = DigitalParams.from_spec(spec)
    rng = np.random.default_rng([seed, 0])
    img = rng.integers(-128, 128, (c_in, hw, hw))
    w = rng.integers(-128, 128, (c_out, c_in, 3, 3))
    w[0] = 127                                    # extremes: largest sums of one sign
    acc = digital_conv2d(img, w, 1, 1, acc_bits=p.acc_bits)            # (C_out, H, W)
    cols = im2col(img, 3, 1, 1)                                         # (K, pixels)
    wm = weight_matrix(w)                                               # (K, C_out)
    sums = acc.reshape(c_out, -1).T                                            # (pixels, C_out)
    in_scale, w_scale = 1 / 64, np.full(c_out, 1 / 128)
    m = digital_affine_multiplier(in_scale=in_scale, w_scale=w_scale, out_scale=1.0)
    y = sums * m
    out_scale = float(np.percentile(np.abs(y), 99)) / 100.0
    bias = rng.normal(0, 20 * out_scale, c_out)
    coefs = quantize_affine(m / out_scale, folded_offset(bias, out_scale=out_scale), relu=True,
                                   scale_bits=p.scale_bits, offset_bits=p.offset_bits, max_shift=p.max_shift)
    want = coefs.apply(sums, acc_bits=p.acc_bits, scale_bits=p.scale_bits, offset_bits=p.offset_bits)
    order = digital_datapath_order(sums.shape[0], c_out, p.mac_lanes)
    expected = [(ch, int(want[pix, ch]), int(ch == c_out - 1)) for pix, ch in order]
    macs = cols.shape[0] * c_out * cols.shape[1]
    return {"params": p, "cols": cols, "wm": wm, "coefs": coefs, "expected": expected, "macs": macs}


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_digital_first_layer(dut):
    env = _env()
    seed = env["seed"]
    dut._log.info("test_digital_first_layer: seed %d", seed)
    spec = resolve_spec(env["arch"], env["changes"])
    layer = first_layer(spec, seed)
    p: DigitalParams = layer["params"]
    clock = CycleClock(dut.clk, PERIOD_NS)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for name in ("x_in__valid", "out__ready", "start", "w_in__valid", "w_load", "coef_we", "two_layers"):
        getattr(dut, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await clock.edge
    # ---- driver: weights (one w_in beat per cycle), coefficients, configuration
    wm, coefs = layer["wm"], layer["coefs"]
    k, c_out = wm.shape
    lanes = p.mac_lanes
    dut.w_addr.value = 0
    dut.w_load.value = 1
    await clock.edge
    dut.w_load.value = 0
    dut.w_in__valid.value = 1
    for g in range(-(-c_out // lanes)):
        for kk in range(k):  # one packed word per cycle, the address increments itself
            dut.w_in__payload.value = sum((int(wm[kk, g * lanes + lane]) & 0xFF) << (8 * lane)
                                   for lane in range(min(lanes, c_out - g * lanes)))
            await clock.edge
    dut.w_in__valid.value = 0
    dut.coef_we.value = 1
    for ch in range(c_out):
        dut.coef_addr.value = ch
        dut.coef_scale.value = int(coefs.scale[ch])
        dut.coef_offset.value = int(coefs.offset[ch])
        await clock.edge
    dut.coef_we.value = 0
    dut.shift.value = coefs.shift
    dut.relu.value = int(coefs.relu)
    dut.k_terms.value = k
    dut.c_out.value = c_out
    dut.n_pixels.value = layer["cols"].shape[1]
    await clock.edge
    # ---- monitor + in-order checker
    expected = layer["expected"]
    stats = {"compared": 0, "mismatches": 0, "extra": 0, "last_cycle": 0, "first": []}
    finished = Event()

    def check(beat: dict, cycle: int) -> None:
        i = stats["compared"]
        if i >= len(expected):
            stats["extra"] += 1
            return
        got = (beat["column"], beat["data"], beat["last"])
        stats["compared"] += 1
        if got != expected[i]:
            stats["mismatches"] += 1
            if len(stats["first"]) < 5:
                stats["first"].append(f"output {i}: got {got}, expected {expected[i]}")
        stats["last_cycle"] = cycle
        if stats["compared"] == len(expected):
            finished.set()

    sink = StreamSink(StreamPort(dut, "out", result_layout(index_shape(p.max_channels))), clock, on_beat=check)
    src = StreamSource(StreamPort(dut, "x_in", x_beat_layout()), clock)
    cols = layer["cols"]
    for pix in range(cols.shape[1]):
        for kk in range(k):
            src.put({"data": int(cols[kk, pix]), "last": int(kk == k - 1)})
    cocotb.start_soon(sink.run())
    start_cycle = clock.cycle()
    dut.start.value = 1
    await clock.edge
    dut.start.value = 0
    cocotb.start_soon(src.run())
    await with_timeout(finished.wait(), 20 * layer["macs"] * PERIOD_NS, "ns")
    await ClockCycles(dut.clk, 16)
    await ReadOnly()
    flags = {n: int(getattr(dut, n).value) for n in ("err_config", "err_x_last", "busy")}
    flags["not_done"] = int(not dut.done.value)
    from archmodel.timing import digital_layer_cycles

    predicted = digital_layer_cycles(spec, layer["macs"])
    cycles = stats["last_cycle"] + 1 - start_cycle
    data = {"test": "test_digital_first_layer", "seed": seed, "compared": stats["compared"],
            "expected_outputs": len(expected), "mismatches": stats["mismatches"], "extra_outputs": stats["extra"],
            "flags": flags, "cycles": cycles, "predicted_cycles": predicted}
    out = os.environ.get("AIMC_COSIM_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "test_digital_first_layer.json").write_text(json.dumps(data, indent=1, sort_keys=True))
    dut._log.info("digital first layer: seed %d, %d/%d outputs compared, %d mismatches, cycles %d "
                  "(mapper %d)", seed, stats["compared"], len(expected), stats["mismatches"], cycles, predicted)
    msg = f"seed {seed}: {stats['compared']}/{len(expected)} compared, {stats['mismatches']} mismatches"
    assert stats["mismatches"] == 0, msg + "; " + "; ".join(stats["first"])
    assert stats["compared"] == len(expected) == 16 * 64, msg
    assert stats["extra"] == 0, msg
    assert not any(flags.values()), f"seed {seed}: flags {flags}"
    assert abs(cycles / predicted - 1) <= 0.02, f"seed {seed}: {cycles} cycles vs mapper {predicted}"
