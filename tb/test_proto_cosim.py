"""cocotb tests of the FPGA prototype (``aimc_prototype``, :class:`rtl.prototype.Prototype`): the whole network
on the co-processor with the PCM array emulators (``rtl/emulator.py``) in place of the Python array bridges.

The Verilog is the one ``aimc verilog --arch tiny-fpga --emulate-arrays`` writes (co-processor + one emulator per
array port; ports only AXI, clock, reset and ``irq``). The testbench is the top-level one
(:class:`tb.top_env.TopTestbench` with the prototype's single-underscore bus names and no array ports): the
emulators are programmed over the AXI4-Lite bus (the prototype's emulator window) with the conductance codes
of each tile's programmed matrix (:func:`archmodel.golden.emulator.conductance_codes`, at ``AIMC_T_INF``),
and the golden run takes the analog layer's ADC codes from :class:`archmodel.golden.emulator.EmulatorModel`
for the same codes (:class:`tb.network_env.EmulatedArrays`).

- ``test_proto_network``: (1) noise off: every class score and every mirrored fc2 output equals the golden
  run (counts asserted), ``irq`` (IRQ_ENABLE = DONE | ERROR) rises after the last score and IRQ_STATUS reads
  DONE; (2) with ``AIMC_EMU_SIGMA`` > 0: reset, SIGMA / SEED written, the same images: again bit-exact
  against the golden emulator model with the same seed, top-1 reported against the noise-off run;
  (3) with ``AIMC_EMU_FAULT`` = 1: reset, one conductance code of tile 0 changed over the bus (golden run
  untouched): fc2's mirrored outputs must mismatch in one column of home tile 1 only.
- ``test_proto_cnn_network``: a CNN (``digits-cnn`` on ``proto``) in one run of the chip as
  :func:`tb.cnn_env.prepare_cnn` configures it, its golden :func:`tb.cnn_golden.cnn_golden` with
  ``emulate`` (:class:`tb.cnn_golden.EmulatedLayer`: every analog tile's ADC codes from its emulator model):
  (1) noise off: every class score and every mirrored value (relu3) equal (counts asserted), the done
  interrupt; (2) noise on (``AIMC_EMU_SIGMA``): reset, SHIFT / SIGMA / SEED rewritten, bit-exact again;
  (3) with ``AIMC_EMU_FAULT`` = 1: one conductance code of the last analog layer's first tile changed over
  the bus, on ``AIMC_EMU_FAULT_IMAGES`` images (default 1): the tap must mismatch in that column only.
  Environment as :func:`tb.test_top_cosim._cnn` (``AIMC_CNN_IMAGES``, ``AIMC_CNN_WEIGHTS``,
  ``AIMC_CNN_T_INF``) plus the ``AIMC_EMU_*`` above.
- ``test_proto_irq_error``: a tile started with K = 0 (a configuration error): ``irq`` (IRQ_ENABLE = ERROR)
  rises, IRQ_STATUS reads ERROR; writing 1 clears it only once the error is cleared (by a good start).

Environment: ``AIMC_PLACEMENT``, ``AIMC_DIGITS_IMAGES``, ``AIMC_DIGITS_WEIGHTS`` (as :mod:`tb.test_top_cosim`),
``AIMC_EMU_SIGMA`` (noise scale of the second run, 0 = none), ``AIMC_EMU_SEED`` (noise seed, default 1),
``AIMC_EMU_FAULT`` (``1``: run the fault phase), ``AIMC_T_INF`` (drift time of the programmed matrices whose
codes the emulators get, s; default 0), ``AIMC_COSIM_OUT`` (JSON results).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from rtl.prototype import IRQ_DONE, IRQ_ENABLE, IRQ_ERROR, IRQ_STATUS, Prototype
from tb.streams import CycleClock
from tb.top_env import TopTestbench, resolve_spec

warnings.filterwarnings("ignore", category=DeprecationWarning)

PERIOD_NS = 10


def _env() -> dict:
    return {"arch": os.environ.get("AIMC_COSIM_ARCH", "tiny-fpga"),
            "changes": json.loads(os.environ.get("AIMC_COSIM_CHANGES", "{}") or "{}"),
            "seed": int(os.environ.get("AIMC_COSIM_SEED", "1"))}


def _save(test: str, data: dict) -> None:
    out = os.environ.get("AIMC_COSIM_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        tmp = Path(out) / f".{test}.json.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(Path(out) / f"{test}.json")


async def _start(dut, env: dict, **stalls) -> tuple[TopTestbench, Prototype]:
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    clock = CycleClock(dut.clk, PERIOD_NS)
    spec = resolve_spec(env["arch"], env["changes"])
    tb = TopTestbench(dut, clock, spec, seed=env["seed"], sep="_", **stalls)
    await tb.reset(4)
    return tb, Prototype(spec)  # the prototype object: its address map only (never elaborated here)


async def _wr(tb: TopTestbench, addr: int, data: int) -> None:
    from cocotbext.axi.constants import AxiResp

    resp = await tb.axil.write(addr, (int(data) & 0xFFFFFFFF).to_bytes(4, "little"))
    assert resp.resp == AxiResp.OKAY, f"write {addr:#x}: {resp.resp!r}"


async def _rd(tb: TopTestbench, addr: int) -> int:
    resp = await tb.axil.read(addr, 4)
    return int.from_bytes(resp.data, "little")


async def _program(tb: TopTestbench, proto: Prototype, emu, *, cells: bool = True) -> int:
    """Write every emulator's codes (``cells``) and SHIFT, SIGMA, SEED (and ADC_BEATS where a tile uses fewer
    than all its columns: the register's reset value is all of them); returns the number of writes."""
    n = 0
    full = tb.spec.array.cols // tb.params.cols_per_adc_beat
    for tile, codes in sorted(emu.codes.items()):
        beats = (emu.adc_beats or {}).get(tile, full)
        writes = proto.emulator_writes(tile, codes, shift=emu.shifts[tile], sigma=emu.sigma, seed=emu.seed + tile,
                                       adc_beats=None if beats == full else [beats] * codes.shape[0])
        if not cells:
            writes = writes[np.asarray(codes).size:]
        for addr, data in writes:
            await _wr(tb, addr, data)
        n += len(writes)
    return n


def _irq_watch(dut, tb: TopTestbench, box: list) -> object:
    async def watch():
        await RisingEdge(dut.irq)
        box.append(tb.clock.cycle())
    return cocotb.start_soon(watch())


def _placed(tb: TopTestbench, env: dict, n: int, sigma: int, emu_seed: int):
    from archmodel.placement import LayerPlacement, Placement
    from archmodel.zoo import load_network
    from tb.network_env import EmulatedArrays, digits_images, prepare_placed

    data = json.loads(Path(os.environ["AIMC_PLACEMENT"]).read_text())
    placement = Placement(data["spec_name"], data["network_name"], data["replicate"],
                          tuple(LayerPlacement(**lp) for lp in data["layers"]))
    network = load_network(os.environ.get("AIMC_NETWORK") or placement.network_name)  # a zoo name or a file
    x, labels, split = digits_images(n, env["seed"])
    params, source = None, f"seeded random (standard normal / sqrt(K), seed {env['seed']})"
    if os.environ.get("AIMC_DIGITS_WEIGHTS", "trained") == "trained":
        from archmodel.digits_experiment import train_on_digits
        result, _ = train_on_digits(network, env["seed"], 0.0, 30, None, split=split)
        params = result.params
        source = (f"trained on the digits split of seed {env['seed']} (30 epochs, no weight noise; "
                  f"FP32 test accuracy {result.test_accuracy:.4f})")

    def prep(s: int):
        emu = EmulatedArrays(sigma=s, seed=emu_seed)
        return prepare_placed(tb.spec, placement, network, x, seed=env["seed"], params=params, labels=labels,
                              weights_source=source, emulate=emu, t_inf_s=t_inf), emu

    t_inf = float(os.environ.get("AIMC_T_INF", "0"))

    off = prep(0)
    on = prep(sigma) if sigma > 0 else None
    analog = prepare_placed(tb.spec, placement, network, x, seed=env["seed"], params=params, labels=labels,
                            weights_source=source, t_inf_s=t_inf)  # with the Python arrays (information)
    return placement, labels, source, off, on, analog


def _summary(res, pn, labels, tb) -> dict:
    got = tb.checker.got
    top1 = np.argmax(got, axis=1)
    return {"compared": res.compared, "expected_outputs": res.expected_outputs, "mismatches": res.mismatches,
            "tap_compared": res.tap_compared, "tap_mismatches": res.tap_mismatches,
            "tap_mismatch_at": res.tap_mismatch_at, "extra_outputs": res.extra_outputs,
            "format_errors": res.format_errors, "axil_errors": res.axil_errors,
            "flags": {k: int(v) for k, v in res.flags.items()}, "cycles": res.cycles,
            "config_cycles": res.config_cycles, "writes": res.writes,
            "top1_rtl": top1.tolist(), "top1_model": np.argmax(pn.expected, axis=1).tolist(),
            "accuracy_rtl": float(np.mean(top1 == labels)), "scores": got.tolist(),
            "first_mismatches": res.first_mismatches[:5], "run_wall_s": res.run_wall_s}


@cocotb.test(timeout_time=400, timeout_unit="ms")
async def test_proto_network(dut):
    """digits-mlp on the prototype with emulated arrays (module docstring); asserts in the pytest wrapper
    (tests/test_proto_cosim.py) and in ``aimc cosim --emulate-arrays`` from the JSON, plus the basic ones here."""
    env = _env()
    n = int(os.environ.get("AIMC_DIGITS_IMAGES", "4"))
    sigma = int(os.environ.get("AIMC_EMU_SIGMA", "0"))
    emu_seed = int(os.environ.get("AIMC_EMU_SEED", "1"))
    tb, proto = await _start(dut, env, p_in=0.7, p_out=0.7, p_axil=0.7)
    placement, labels, source, (placed, emu), on, analog = _placed(tb, env, n, sigma, emu_seed)
    pn = placed.pn
    out: dict = {"test": "test_proto_network", "images": n, "t_inf_s": float(os.environ.get("AIMC_T_INF", "0")),
                 "seed": env["seed"], "weights": source,
                 "name": pn.job.name, "labels": labels.tolist(), "sigma": sigma, "emu_seed": emu_seed,
                 "shifts": {str(t): s for t, s in emu.shifts.items()},
                 "layer_names": placed.layer_names, "layer_kinds": placed.layer_kinds,
                 "analog_model_scores": analog.pn.expected.tolist(),
                 "top1_analog_model": np.argmax(analog.pn.expected, axis=1).tolist()}

    # ---- (1) noise off, with the done interrupt
    t0 = tb.clock.cycle()
    out["emulator_writes"] = await _program(tb, proto, emu)
    out["emulator_program_cycles"] = tb.clock.cycle() - t0
    irq_addr, st_addr = proto.window_address(proto.tiles, IRQ_ENABLE), proto.window_address(proto.tiles, IRQ_STATUS)
    await _wr(tb, irq_addr, IRQ_DONE | IRQ_ERROR)
    irq_at: list = []
    watch = _irq_watch(dut, tb, irq_at)
    res = await tb.run(pn, credit=2, log=dut._log)
    watch.cancel()
    out["off"] = _summary(res, pn, labels, tb)
    out["off"]["irq_rise_after_last_score"] = (irq_at[0] - tb.last_out_cycle) if irq_at else None
    out["off"]["irq_status"] = await _rd(tb, st_addr)
    out["off"]["irq_level"] = int(dut.irq.value)
    await _wr(tb, st_addr, IRQ_DONE)
    await ClockCycles(dut.clk, 3)
    out["off"]["irq_after_clear"] = int(dut.irq.value)
    out["off"]["irq_status_after_clear"] = await _rd(tb, st_addr)
    _save("test_proto_network", out)

    # ---- (2) noise on, same codes and images (cells survive the reset; SHIFT / SIGMA / SEED rewritten)
    if on is not None:
        placed_on, emu_on = on
        await tb.reset(4)
        await _program(tb, proto, emu_on, cells=False)
        res_on = await tb.run(placed_on.pn, credit=2, log=dut._log)
        out["on"] = _summary(res_on, placed_on.pn, labels, tb)
        _save("test_proto_network", out)

    # ---- (3) one conductance code changed over the bus after programming; the golden run untouched
    if os.environ.get("AIMC_EMU_FAULT", "0") == "1":
        from rtl.regmap import source_tag

        await tb.reset(4)
        await _program(tb, proto, emu, cells=False)
        li = 1  # mapped layer 1: fc2's column block 0, row block 0 (upstream tile of the chain 0 -> 1)
        tile = pn.layers[li].tile
        home = li + 1 if pn.layers[li].chain_out else li
        home_tag = source_tag(tb.spec, pn.layers[home].tile)
        want = pn.taps[home_tag]
        row = int(np.argmax(pn.inputs[li].mean(axis=0)))  # the row with the largest mean input
        col = int(np.argmax(np.where(want.max(axis=0) < 100, want.min(axis=0), -1)))  # neither 0 nor clipped
        old = int(emu.codes[tile][0, row, col])
        new = old + 64 if old < 0 else old - 64  # always a change of 64 codes (a clip could make it none)
        await _wr(tb, proto.window_address(tile, proto.emu_map.cell(0, row, col)), new)
        res_f = await tb.run(pn, credit=2, log=dut._log)
        out["fault"] = _summary(res_f, pn, labels, tb) | {
            "tile": tile, "row": row, "col": col, "code": [old, new], "home_tag": home_tag}
        _save("test_proto_network", out)

    o = out["off"]
    assert o["compared"] == o["expected_outputs"] == n * 10 and o["mismatches"] == 0, o
    assert o["tap_compared"] == n * 64 and o["tap_mismatches"] == 0, o


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_proto_irq_error(dut):
    """A configuration error (tile 0 started with K = 0) raises ``irq``; the status bit is W1C (sticky while the
    error flag is high: a good start of the tile clears the flag, then the clear holds)."""
    env = _env()
    tb, proto = await _start(dut, env)
    rm = tb.regmap
    irq_addr, st_addr = proto.window_address(proto.tiles, IRQ_ENABLE), proto.window_address(proto.tiles, IRQ_STATUS)
    out: dict = {"test": "test_proto_irq_error"}
    await _wr(tb, irq_addr, IRQ_ERROR)
    await ClockCycles(dut.clk, 4)
    out["irq_before"] = int(dut.irq.value)
    out["status_before"] = await _rd(tb, st_addr)
    irq_at: list = []
    watch = _irq_watch(dut, tb, irq_at)
    for name, fields in (("tile0.tc.k_rows", {"k_rows": 0}), ("tile0.tc.ctrl", {"start": 1})):
        addr, word = rm.write(name, **fields)
        await _wr(tb, addr, word)
    t_start = tb.clock.cycle()
    await ClockCycles(dut.clk, 10)
    watch.cancel()
    out["irq_rise_after_start_write"] = (irq_at[0] - t_start) if irq_at else None
    out["irq_level"] = int(dut.irq.value)
    out["status"] = await _rd(tb, st_addr)
    out["tc_status"] = tb.regmap.decode("tile0.tc.status", await _rd(tb, rm.address_of("tile0.tc.status")))
    await _wr(tb, st_addr, IRQ_ERROR)  # the flag is still high: the bit is set again
    await ClockCycles(dut.clk, 3)
    out["irq_after_clear_with_flag"] = int(dut.irq.value)
    for name, fields in (("tile0.tc.k_rows", {"k_rows": 8}), ("tile0.tc.n_cols", {"n_cols": 8}),
                         ("tile0.tc.n_row_blocks", {"n_row_blocks": 1}), ("tile0.tc.n_col_blocks", {"n_col_blocks": 1}),
                         ("tile0.tc.ctrl", {"start": 1})):
        addr, word = rm.write(name, **fields)
        await _wr(tb, addr, word)
    await ClockCycles(dut.clk, 4)
    await _wr(tb, st_addr, IRQ_ERROR)
    await ClockCycles(dut.clk, 4)
    out["irq_after_good_start_and_clear"] = int(dut.irq.value)
    out["status_after"] = await _rd(tb, st_addr)
    _save("test_proto_irq_error", out)
    assert out["irq_before"] == 0 and out["irq_level"] == 1 and out["status"] == IRQ_ERROR, out
    assert out["irq_after_clear_with_flag"] == 1 and out["irq_after_good_start_and_clear"] == 0, out


def _cnn_params(env: dict, net, n: int):
    """Parameters, their description and the digits split of :func:`tb.test_top_cosim._cnn` (same rule)."""
    from archmodel.datasets import load_digits_split
    from tb.cnn_golden import seeded_params

    residual = any(layer.op == "add" for layer in net.layers)
    if os.environ.get("AIMC_CNN_WEIGHTS", "seeded") == "trained":
        from archmodel.digits_experiment import train_on_digits
        result, data = train_on_digits(net, env["seed"], 0.0, 30, None)
        return result.params, (f"trained on the digits split of seed {env['seed']} (30 epochs, no weight noise; "
                               f"FP32 test accuracy {result.test_accuracy:.4f})"), data
    wseed = int(os.environ.get("AIMC_CNN_WEIGHT_SEED", "3" if residual else "1"))
    return seeded_params(net, wseed), f"seeded (tb.cnn_golden.seeded_params, seed {wseed})", load_digits_split(
        env["seed"])


async def _cnn_phase(tb: TopTestbench, cn, labels) -> dict:
    """One run of the chip for the prepared CNN ``cn`` (credit 1, as :func:`tb.test_top_cosim._cnn`): counts,
    scores, top-1 and the digital slots' busy cycles."""
    res = await tb.run(cn.network, credit=1)
    st1 = await tb.read("digital.status1")
    st2 = await tb.read("digital.status2")
    got = np.asarray(tb.checker.got)
    g = cn.golden
    top1 = np.argmax(got, axis=1) if got.shape == g.scores.shape else np.full(len(labels), -1)
    return {"run": res.as_dict(), "scores": got.tolist(), "top1_rtl": top1.tolist(), "top1_model": g.top1.tolist(),
            "accuracy_rtl": float(np.mean(top1 == labels)), "conv1_cycles": int(st1["cycles0"]),
            "fc_cycles": int(st2["cycles1"]), "tap_mismatch_at": res.tap_mismatch_at,
            "taps": int(sum(int(v.size) for v in cn.network.taps.values()))}


@cocotb.test(timeout_time=4000, timeout_unit="ms")
async def test_proto_cnn_network(dut):
    """A whole CNN on the prototype with emulated arrays (module docstring); the report's assertions are in
    ``aimc cosim --emulate-arrays`` (:func:`tb.cnn_env.proto_cnn_report_lines`) from the JSON, the basic ones here."""
    from archmodel.placement import LayerPlacement, Placement
    from archmodel.zoo import load_network
    from tb.cnn_env import CNN_T_INF_S, prepare_cnn
    from tb.cnn_golden import cnn_golden
    from tb.network_env import EmulatedArrays

    env = _env()
    n = int(os.environ.get("AIMC_CNN_IMAGES", "2"))
    sigma = int(os.environ.get("AIMC_EMU_SIGMA", "0"))
    emu_seed = int(os.environ.get("AIMC_EMU_SEED", "1"))
    t_inf = float(os.environ.get("AIMC_CNN_T_INF", repr(CNN_T_INF_S)))
    tb, proto = await _start(dut, env, p_in=0.7, p_out=0.7, p_axil=0.7)
    pl = json.loads(Path(os.environ["AIMC_PLACEMENT"]).read_text())
    placement = Placement(pl["spec_name"], pl["network_name"], pl["replicate"],
                          tuple(LayerPlacement(**lp) for lp in pl["layers"]))
    net = load_network(os.environ.get("AIMC_NETWORK") or placement.network_name)  # a zoo name or a file
    params, source, data = _cnn_params(env, net, n)
    labels = np.asarray(data.y_test[:n], dtype=np.int64)

    def golden(s: int | None, k: int = n):
        emu = None if s is None else EmulatedArrays(sigma=s, seed=emu_seed)
        g = cnn_golden(tb.spec, net, placement, params, data.x_test[:k], data.x_train[:256], seed=env["seed"],
                       t_inf_s=t_inf, emulate=emu)
        return g, emu

    g_off, emu = golden(0)
    cn = prepare_cnn(g_off)
    g_an, _ = golden(None)  # the same network with the Python arrays (information)
    out: dict = {"test": "test_proto_cnn_network", "images": n, "t_inf_s": t_inf, "seed": env["seed"],
                 "weights": source, "network": net.name, "labels": labels.tolist(), "sigma": sigma,
                 "emu_seed": emu_seed, "shifts": {str(t): s for t, s in emu.shifts.items()},
                 "layer_names": cn.layer_names, "layer_kinds": cn.layer_kinds, "pixels": cn.pixels,
                 "predicted_cycles": cn.predicted_cycles,
                 "analog_model_scores": g_an.scores.tolist(), "top1_analog_model": g_an.top1.tolist(),
                 "analog_tiles": {lg.name: sorted(t.tile for t in lg.tiles) for lg in g_off.layers
                                  if lg.kind == "analog"}}

    # ---- (1) noise off, with the done interrupt
    t0, w0 = tb.clock.cycle(), time.perf_counter()
    out["emulator_writes"] = await _program(tb, proto, emu)
    out["emulator_program_cycles"] = tb.clock.cycle() - t0
    out["emulator_program_wall_s"] = time.perf_counter() - w0
    irq_addr, st_addr = proto.window_address(proto.tiles, IRQ_ENABLE), proto.window_address(proto.tiles, IRQ_STATUS)
    await _wr(tb, irq_addr, IRQ_DONE | IRQ_ERROR)
    irq_at: list = []
    watch = _irq_watch(dut, tb, irq_at)
    out["off"] = await _cnn_phase(tb, cn, labels)
    watch.cancel()
    out["off"]["irq_rise_after_last_score"] = (irq_at[0] - tb.last_out_cycle) if irq_at else None
    out["off"]["irq_status"] = await _rd(tb, st_addr)
    _save("test_proto_cnn_network", out)

    # ---- (2) noise on, same codes and images (cells survive the reset; SHIFT / SIGMA / SEED rewritten)
    if sigma > 0:
        g_on, emu_on = golden(sigma)
        await tb.reset(4)
        await _program(tb, proto, emu_on, cells=False)
        out["on"] = await _cnn_phase(tb, prepare_cnn(g_on), labels)
        _save("test_proto_cnn_network", out)

    # ---- (3) one code of the last analog layer's first tile changed over the bus; the golden untouched
    if os.environ.get("AIMC_EMU_FAULT", "0") == "1":
        k = int(os.environ.get("AIMC_EMU_FAULT_IMAGES", "1"))
        g_f, emu_f = golden(0, k)
        assert all(np.array_equal(emu_f.codes[t], c) for t, c in emu.codes.items())  # the cells programmed above
        cn_f = prepare_cnn(g_f)
        last = [lg for lg in g_f.layers if lg.kind == "analog"][-1]
        feed = min(last.tiles, key=lambda t: t.tile)
        (tag, want), = cn_f.network.taps.items()
        row = int(np.argmax(last.rows[:, feed.rows[0]:feed.rows[1]].mean(axis=0)))  # largest mean input
        col = int(np.argmax(np.where(want.max(axis=0) < 127, want.mean(axis=0), -1)))  # active, not clipped
        old = int(emu_f.codes[feed.tile][0, row, col])
        new = old + 64 if old < 0 else old - 64  # always a change of 64 codes (a clip could make it none)
        await tb.reset(4)
        await _program(tb, proto, emu_f, cells=False)
        await _wr(tb, proto.window_address(feed.tile, proto.emu_map.cell(0, row, col)), new)
        out["fault"] = await _cnn_phase(tb, cn_f, labels[:k]) | {
            "layer": last.name, "tile": feed.tile, "row": row, "col": col, "code": [old, new], "tap_tag": tag,
            "images": k}
        await _wr(tb, proto.window_address(feed.tile, proto.emu_map.cell(0, row, col)), old)
        _save("test_proto_cnn_network", out)

    r = out["off"]["run"]
    assert r["compared"] == r["expected_outputs"] == n * 10 and r["mismatches"] == 0, r
    assert r["tap_compared"] == out["off"]["taps"] and r["tap_mismatches"] == 0, r
