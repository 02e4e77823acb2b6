"""Amaranth simulation of rtl/tile_controller.py against archmodel.golden and archmodel.timing.

The testbench holds a small Python array model: it accepts the ``dac`` beats of
an MVM (checking them against ``golden.tile_controller.dac_beats(golden.tile_controller.dac_codes(x))`` of the
row block ``golden.tile_controller.tile_schedule`` says comes next, and the array index), then,
after a latency it chooses (never known to the controller), answers with the
ADC codes of the columns in use (random codes, extremes included: the
controller only moves codes) in ``golden.tile_controller.adc_beats``. A checker compares every
beat reaching the affine side (codes, column group, valid lanes, row-block
flags) with the expected sequence and counts. The cycle test checks one MVM
per ``timing.mvm_cycles`` with an array whose latency is ``array_mvm_cycles``
starting the cycle after it accepted ``last``.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from amaranth.back import verilog
from rtl_stream_harness import Harness, Sink, Source, simulate

from archmodel import timing
from archmodel.golden.tile_controller import adc_beats, block_counts, dac_beats, dac_codes, tile_schedule
from archmodel.spec import array_mvm_cycles, load_spec
from rtl.params import TileParams
from rtl.tile_controller import TileController

SPEC1 = load_spec("tiny")
SPEC4 = SPEC1.replace(**{"array.arrays_per_tile": 4})
SPEC4_DAC4 = SPEC4.replace(**{"array.dac_bits": 4})


def _vectors(rng, n_vec, k):
    x = rng.integers(-128, 128, (n_vec, k))
    if n_vec > 1:
        x[0, ::2], x[0, 1::2] = -128, 127      # extremes (largest DAC codes / saturation at 4 bits)
    return x


class ArrayModel:
    """Expected MVM sequence of a run and the array's answers (state of one run)."""

    def __init__(self, p: TileParams, spec, k, n, vectors, rng, latency, short_adc=False):
        self.p, self.rng, self.latency, self.short_adc = p, rng, latency, short_adc
        self.n_rb, self.n_cb = block_counts(k, n, p.array_rows, p.array_cols)
        self.k, self.n = k, n
        self.dac_bits = spec.array.dac_bits
        self.steps = [(v, s) for v in range(len(vectors)) for s in tile_schedule(self.n_rb, self.n_cb)]
        self.vectors = vectors
        self.mvm = 0
        self.dac_buf: list = []
        self.pending = None
        self.expected_col: list[tuple] = []
        self.mismatches = 0
        self.compared = 0
        self.first_dac_cycle: list[int] = []
        self.shapes: list[tuple[int, int]] = []
        self.act_cycles: list[int] = []

    def rows_cols(self, step):
        rows = min(self.p.array_rows, self.k - step.row_block * self.p.array_rows)
        cols = min(self.p.array_cols, self.n - step.col_block * self.p.array_cols)
        return rows, cols

    def on_dac(self, beat, cycle, adc_source):
        if not self.dac_buf:
            self.first_dac_cycle.append(cycle)
        self.dac_buf.append(beat)
        if not beat.last:
            return
        assert self.mvm < len(self.steps), "more MVMs than the schedule has"
        v, step = self.steps[self.mvm]
        rows, cols = self.rows_cols(step)
        self.shapes.append((rows, cols))
        r0 = step.row_block * self.p.array_rows
        want = dac_beats(dac_codes(self.vectors[v][r0:r0 + rows], self.dac_bits),
                                self.p.rows_per_dac_beat)
        got = np.array([list(b.codes) for b in self.dac_buf])
        self.compared += 1
        self.mismatches += int(got.shape != want.shape or not np.array_equal(got, want))
        if self.p.arrays_per_tile > 1:
            self.mismatches += sum(int(b.array) != step.array_index for b in self.dac_buf)
        self.mismatches += sum(int(b.last) != (i == len(self.dac_buf) - 1) for i, b in enumerate(self.dac_buf))
        self.dac_buf = []
        # the array's answer: random codes, extremes in the first MVM
        codes = self.rng.integers(-128, 128, cols)
        if self.mvm == 0:
            codes[::2], codes[1::2] = -128, 127
        beats = adc_beats(codes, self.p.cols_per_adc_beat)
        na = len(beats)
        if self.short_adc:          # a faulty array: one beat with last, whatever N says
            beats, na_sent = beats[:1], 1
        else:
            na_sent = na
        payloads = [{"codes": [int(c) for c in b], "last": int(i == na_sent - 1)} for i, b in enumerate(beats)]
        lat = self.latency if isinstance(self.latency, int) else int(self.rng.integers(*self.latency))
        self.pending = (cycle + lat, payloads)
        gpb = self.p.adc_beats_per_block
        for a, b in enumerate(beats):
            end = a == na_sent - 1
            lanes = min(self.p.cols_per_adc_beat, cols - a * self.p.cols_per_adc_beat)
            last_rb = step.row_block == self.n_rb - 1
            self.expected_col.append((
                tuple(int(c) for c in b), step.col_block * gpb + a, lanes, step.row_block,
                int(step.row_block == 0), int(last_rb), int(end),
                int(end and last_rb and step.col_block == self.n_cb - 1)))
        self.mvm += 1

    def tick(self, cycle, adc_source):
        if self.pending is not None and cycle >= self.pending[0]:
            for payload in self.pending[1]:
                adc_source.put(payload)
            self.pending = None


def _col_tuple(b):
    return (tuple(int(c) for c in b.codes), int(b.group), int(b.lanes), int(b.row_block),
            int(b.first_rb), int(b.last_rb), int(b.last_beat), int(b.last_vec))


async def run_one(ctx, h, dut, p, spec, k, n, vectors, rng, *, mode=0, latency=(1, 9),
                  reset_after=None, short_adc=False, act_last_error=False, enqueue_act=True):
    """One run (start .. done) of ``vectors``; returns the ArrayModel with its counts."""
    n_rb, n_cb = block_counts(k, n, p.array_rows, p.array_cols)
    for port, value in (("k_rows", k), ("n_cols", n), ("n_row_blocks", n_rb), ("n_col_blocks", n_cb), ("mode", mode)):
        ctx.set(getattr(dut, port), value)
    model = ArrayModel(p, spec, k, n, vectors, rng, latency, short_adc)
    rpb = p.rows_per_dac_beat
    for x in vectors if enqueue_act else ():
        nb = -(-k // rpb)
        for i in range(nb):
            lanes = [int(v) for v in x[i * rpb:(i + 1) * rpb]]
            lanes += [int(v) for v in rng.integers(-128, 128, rpb - len(lanes))]   # garbage beyond K
            last = (i == nb - 2) if (act_last_error and nb > 1) else (i == nb - 1)
            h.sources["act"].put({"data": lanes, "last": int(last)})
    ctx.set(dut.start, 1)
    await h.step(ctx)
    ctx.set(dut.start, 0)
    stop_sent = False
    for _ in range(20000):
        model.tick(h.cycle, h.sources["adc"])
        stop = mode == 1 and not stop_sent and h.sources["act"].idle
        ctx.set(dut.stop, stop)
        stop_sent |= stop
        done, busy = await h.step(ctx, dut.done, dut.busy)
        if h.fired["act"]:
            model.act_cycles.append(h.cycle - 1)
        if h.fired["dac"]:
            model.on_dac(h.sinks["dac"].items[-1], h.cycle - 1, h.sources["adc"])
        if reset_after is not None and h.sinks["col"].items and len(h.sinks["col"].items) >= reset_after:
            await h.reset(ctx, 1)
            return model
        if done and not busy:
            break
    else:
        raise AssertionError(f"run did not finish: {model.mvm} of {len(model.steps)} MVMs")
    ctx.set(dut.stop, 0)
    for _ in range(3):
        await h.step(ctx)
    got = [_col_tuple(b) for b in h.sinks["col"].items]
    model.compared += len(model.expected_col)
    model.mismatches += (len(got) != len(model.expected_col))
    model.mismatches += sum(g != w for g, w in zip(got, model.expected_col, strict=False))
    model.mismatches += (model.mvm != len(model.steps))
    model.cycles_col = list(h.sinks["col"].cycles)
    h.sinks["col"].reset()
    h.sinks["dac"].reset()
    return model


def _harness(dut, rng, rst, p_act, p_dac, p_adc, p_col):
    return Harness({"act": Source(dut.act, rng, p_act), "adc": Source(dut.adc, rng, p_adc)},
                   {"dac": Sink(dut.dac, rng, p_dac), "col": Sink(dut.col_out, rng, p_col)}, rst)


@pytest.mark.parametrize("spec,seed", [(SPEC1, 1), (SPEC1, 11), (SPEC4, 2), (SPEC4, 12), (SPEC4_DAC4, 3)],
                         ids=["tiny", "tiny-s11", "tiny-a4", "tiny-a4-s12", "tiny-a4-dac4"])
def test_tile_controller_random_with_backpressure(spec, seed):
    """Random K, N (all block shapes), random array latency, random gaps on every stream."""
    p = TileParams.from_spec(spec)
    rng = np.random.default_rng(seed)
    dut = TileController(p)
    a = p.arrays_per_tile
    rb = int(rng.integers(1, a + 1))
    cb = int(rng.integers(1, a // rb + 1))
    rand_shape = (int(rng.integers((rb - 1) * p.array_rows + 1, rb * p.array_rows + 1)),
                  int(rng.integers((cb - 1) * p.array_cols + 1, cb * p.array_cols + 1)))
    shapes = [(p.max_rows, p.array_cols), (p.array_rows, p.max_cols), (1, 1), rand_shape]
    if a == 4:
        shapes += [(70, 20), (9, 100), (40, 64)]      # 3x1, 1x4 and 2x2 blocks, partial blocks
    totals = {"compared": 0, "mismatches": 0, "mvms": 0, "flags": 0}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 0.7, 0.6, 0.7, 0.6)
        for i, (k, n) in enumerate(shapes):
            mode = i % 2
            model = await run_one(ctx, h, dut, p, spec, k, n, _vectors(rng, 3 if mode else 1, k), rng, mode=mode)
            totals["compared"] += model.compared
            totals["mismatches"] += model.mismatches
            totals["mvms"] += model.mvm
            totals["flags"] += ctx.get(dut.err_config) + ctx.get(dut.err_act_last) + ctx.get(dut.err_adc_last)
            totals["flags"] += ctx.get(dut.vector_count) != (3 if mode else 1)

    simulate(dut, tb)
    n_mvm = 0
    for i, (k, n) in enumerate(shapes):
        n_rb, n_cb = block_counts(k, n, p.array_rows, p.array_cols)
        n_mvm += n_rb * n_cb * (3 if i % 2 else 1)
    assert totals["mvms"] == n_mvm, f"seed {seed}"
    assert totals["compared"] >= n_mvm * 2, f"seed {seed}"
    assert totals["mismatches"] == 0, f"seed {seed}"
    assert totals["flags"] == 0, f"seed {seed}"


@pytest.mark.parametrize("spec", [SPEC1, SPEC4], ids=["tiny", "tiny-a4"])
def test_tile_controller_cycles_per_mvm(spec):
    """No stalls, array latency array_mvm_cycles from the cycle after last: one MVM per timing.mvm_cycles."""
    p = TileParams.from_spec(spec)
    rng = np.random.default_rng(4)
    dut = TileController(p)
    res = {}
    k, n = (p.max_rows, p.max_cols) if p.arrays_per_tile == 1 else (50, 40)   # 2x2 blocks, partial ones

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 1.0, 1.0, 1.0, 1.0)
        res["model"] = await run_one(ctx, h, dut, p, spec, k, n, _vectors(rng, 3, k), rng, mode=1,
                                     latency=array_mvm_cycles(spec) + 1)

    simulate(dut, tb)
    model = res["model"]
    assert model.mismatches == 0
    starts = model.first_dac_cycle
    periods = np.diff(starts)
    want = [timing.mvm_cycles(spec, r, c) for r, c in model.shapes[:-1]]
    assert len(periods) == len(model.steps) - 1 >= 2
    assert list(periods) == want
    # the first DAC beat leaves 3 cycles after the vector's final act beat (bank full, WAIT, PREP)
    assert starts[0] - model.act_cycles[-(-k // p.rows_per_dac_beat) - 1] == 3
    # the last MVM: its last ADC beat reaches the affine unit in the cycle before the
    # controller's PREP cycle, i.e. a next MVM would start mvm_cycles after this one
    r, c = model.shapes[-1]
    assert model.cycles_col[-1] + 2 - starts[-1] == timing.mvm_cycles(spec, r, c)


def test_tile_controller_config_errors():
    """Out-of-range configuration raises err_config and refuses the run; a good one clears it."""
    p = TileParams.from_spec(SPEC4)
    rng = np.random.default_rng(6)
    dut = TileController(p)
    bad = [(0, 10, 1, 1), (10, 0, 1, 1), (p.max_rows + 1, 10, 4, 1), (10, p.max_cols + 1, 1, 4),
           (40, 10, 1, 1), (10, 10, 2, 1), (128, 64, 4, 2), (10, 10, 0, 1), (10, 40, 1, 1)]
    seen = []

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 1.0, 1.0, 1.0, 1.0)
        for k, n, nrb, ncb in bad:
            for port, value in (("k_rows", k), ("n_cols", n), ("n_row_blocks", nrb), ("n_col_blocks", ncb)):
                ctx.set(getattr(dut, port), value)
            ctx.set(dut.start, 1)
            await h.step(ctx)
            ctx.set(dut.start, 0)
            for _ in range(3):
                await h.step(ctx)
            seen.append((ctx.get(dut.err_config), ctx.get(dut.busy), ctx.get(dut.act.ready)))
        model = await run_one(ctx, h, dut, p, SPEC4, 33, 33, _vectors(rng, 1, 33), rng)
        seen.append((ctx.get(dut.err_config), model.mismatches, model.compared > 0))

    simulate(dut, tb)
    assert seen[:-1] == [(1, 0, 0)] * len(bad)
    assert seen[-1] == (0, 0, True)


def test_tile_controller_last_flag_errors():
    """A wrong act ``last`` and a short ADC burst set their sticky flags; the controller does not hang."""
    p = TileParams.from_spec(SPEC1)
    rng = np.random.default_rng(7)
    dut = TileController(p)
    flags = []

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 1.0, 1.0, 1.0, 1.0)
        model = await run_one(ctx, h, dut, p, SPEC1, 32, 32, _vectors(rng, 1, 32), rng, act_last_error=True)
        flags.append((ctx.get(dut.err_act_last), ctx.get(dut.err_adc_last), model.mismatches))
        model = await run_one(ctx, h, dut, p, SPEC1, 32, 32, _vectors(rng, 1, 32), rng, short_adc=True)
        flags.append((ctx.get(dut.err_act_last), ctx.get(dut.err_adc_last), model.mismatches))

    simulate(dut, tb)
    assert flags == [(1, 0, 0), (0, 1, 0)]


def test_tile_controller_reset_mid_transfer():
    """Reset in the middle of an MVM: idle again, and the next run is exact."""
    p = TileParams.from_spec(SPEC4)
    rng = np.random.default_rng(8)
    dut = TileController(p)
    out = {}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 0.8, 0.7, 0.8, 0.7)
        await run_one(ctx, h, dut, p, SPEC4, 100, 32, _vectors(rng, 2, 100), rng, mode=1, reset_after=5)
        await h.step(ctx)
        out["after_reset"] = (ctx.get(dut.busy), ctx.get(dut.dac.valid), ctx.get(dut.col_out.valid),
                              ctx.get(dut.act.ready))
        model = await run_one(ctx, h, dut, p, SPEC4, 50, 60, _vectors(rng, 2, 50), rng, mode=1)
        out["model"] = model

    simulate(dut, tb)
    assert out["after_reset"] == (0, 0, 0, 0)
    assert out["model"].mvm == 2 * 2 * 2
    assert out["model"].compared > 2 * 2 * 2
    assert out["model"].mismatches == 0


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_tile_controller_params_and_verilog():
    with pytest.raises(ValueError, match="multiple of array.rows_per_dac_beat"):
        TileParams.from_spec(SPEC1.replace(**{"array.rows_per_dac_beat": 12}))
    with pytest.raises(TypeError, match="TileParams"):
        TileController(SPEC1)
    gc.collect()          # the refused instance warns "never used" when collected; here, not later
    for spec in (SPEC1, SPEC4):
        text = verilog.convert(TileController(TileParams.from_spec(spec)), name="tile_controller", emit_src=False)
        assert "module tile_controller" in text


def test_activation_packer_feeds_the_controller():
    """One int8 per beat -> ActivationPacker -> TileController: same DAC codes as row-group beats."""
    from amaranth.hdl import Module
    from amaranth.lib import wiring

    from rtl.tile_controller import ActivationPacker

    p = TileParams.from_spec(SPEC4)
    rng = np.random.default_rng(10)

    class Packed(wiring.Component):
        def __init__(self):
            self.pack, self.ctl = ActivationPacker(p), TileController(p)
            super().__init__({})

        def elaborate(self, platform):
            m = Module()
            m.submodules.pack, m.submodules.ctl = self.pack, self.ctl
            wiring.connect(m, self.pack.o, self.ctl.act)
            return m

    top = Packed()
    dut = top.ctl
    res = {}
    k, n = 45, 40                        # 2 x 2 blocks, a partial last row group

    async def tb(ctx, rst):
        h = Harness({"act": Source(top.pack.i, rng, 0.7), "adc": Source(dut.adc, rng, 0.8)},
                    {"dac": Sink(dut.dac, rng, 0.7), "col": Sink(dut.col_out, rng, 0.7)}, rst)
        vectors = _vectors(rng, 2, k)
        for x in vectors:
            for i, v in enumerate(x):
                h.sources["act"].put({"data": int(v), "last": int(i == k - 1)})
        res["model"] = await run_one(ctx, h, dut, p, SPEC4, k, n, vectors, rng, mode=1, enqueue_act=False)
        res["err"] = ctx.get(dut.err_act_last)

    simulate(top, tb)
    assert res["model"].mvm == 2 * 4
    assert res["model"].compared > 2 * 4
    assert res["model"].mismatches == 0
    assert res["err"] == 0


def test_tile_controller_registered_config_check_start_latency():
    """Issue 19: the configuration check is registered. act.ready rises exactly
    timing.start_latency_cycles() = 2 cycles after the start pulse (CHECK, then WAIT), busy is 1 from the
    cycle after start; a bad configuration sets err_config in the CHECK cycle's edge (2 cycles after start)."""
    p = TileParams.from_spec(SPEC1)
    rng = np.random.default_rng(9)
    dut = TileController(p)
    seen = {}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 1.0, 1.0, 1.0, 1.0)
        for label, cfg in (("good", (32, 32, 1, 1)), ("bad", (40, 32, 1, 1))):
            for port, value in zip(("k_rows", "n_cols", "n_row_blocks", "n_col_blocks"), cfg, strict=True):
                ctx.set(getattr(dut, port), value)
            ctx.set(dut.start, 1)
            trace = []
            for _ in range(4):
                trace.append((ctx.get(dut.busy), ctx.get(dut.act.ready), ctx.get(dut.err_config)))
                await h.step(ctx)
                ctx.set(dut.start, 0)
            seen[label] = trace
            if label == "good":
                ctx.set(dut.stop, 1)
                for _ in range(4):
                    await h.step(ctx)
                ctx.set(dut.stop, 0)

    simulate(dut, tb)
    assert timing.start_latency_cycles() == 2
    # cycle of start, CHECK, WAIT (accepting), WAIT
    assert seen["good"] == [(0, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 0)]
    assert seen["bad"] == [(0, 0, 0), (1, 0, 0), (0, 0, 1), (0, 0, 1)]
