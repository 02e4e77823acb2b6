"""cocotb: the exported PCM array emulator (rtl/emulator.py) against its golden model, bit for bit.

Parameters (environment): ``AIMC_EMU_SEED`` (stimulus and noise seed), ``AIMC_EMU_SIGMA`` (noise
scale, 0 = off), ``AIMC_EMU_MVMS``, ``AIMC_EMU_P`` (probability of ``adc.ready`` and of a
``dac.valid`` beat per cycle; 1 = no back-pressure), ``AIMC_EMU_ADC_BEATS`` (the ``ADC_BEATS`` value
written, 1 .. groups; default: drawn from the seed), ``AIMC_EMU_FAULT`` (``row,col``:
the RTL memory gets that conductance code negated-and-offset over the bus after the golden model
was loaded, so the checker must see mismatches), ``AIMC_EMU_OUT`` (folder for the JSON result).

The testbench loads random conductance codes over the write port, sets ``SHIFT``, ``SIGMA``,
``SEED`` and ``ADC_BEATS``, then runs MVMs with random DAC codes and a random number of DAC beats,
and compares every ADC beat with :class:`archmodel.golden.emulator.EmulatorModel`. The JSON records
what was sent and seen, so a caller needs no replay of the bench's random draws: ``adc_beats`` (the
value written), ``dac_beats`` (DAC beats of each MVM) and ``beat_cycles`` (for each MVM, the cycle of
each accepted ADC beat counted from the cycle that accepted the ``last`` DAC beat; without
back-pressure they must equal :func:`archmodel.golden.emulator.emulator_beat_cycles`, checked by
``tests/test_emulator.py``), plus the counts ``mvms``, ``compared``, ``mismatches`` and ``err``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly

from archmodel.golden.emulator import EmulatorModel
from archmodel.spec import load_spec
from rtl.emulator import REG_ADC_BEATS, REG_SEED, REG_SHIFT, REG_SIGMA, address_map
from rtl.params import TileParams
from rtl.tile_controller import adc_beat_layout, dac_beat_layout
from tb.streams import CycleClock, StreamPort

PERIOD_NS = 10
SHIFT = 10


@cocotb.test()
async def test_emulator_vs_golden(dut):
    spec = load_spec("tiny")
    p = TileParams.from_spec(spec)
    seed = int(os.environ.get("AIMC_EMU_SEED", "1"))
    sigma = int(os.environ.get("AIMC_EMU_SIGMA", "0"))
    n_mvm = int(os.environ.get("AIMC_EMU_MVMS", "40"))
    prob = float(os.environ.get("AIMC_EMU_P", "1.0"))
    fault = os.environ.get("AIMC_EMU_FAULT", "")
    rng = np.random.default_rng(seed)
    am = address_map(p)
    clock = CycleClock(dut.clk, PERIOD_NS)
    Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=False)
    dut.rst.value = 1
    dut.wr_en.value = 0
    dut.dac__valid.value = 0
    dut.adc__ready.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    codes = rng.integers(-127, 128, (1, p.array_rows, p.array_cols))
    beats_full = p.array_cols // p.cols_per_adc_beat
    forced = os.environ.get("AIMC_EMU_ADC_BEATS")
    n_beats = int(forced) if forced else int(rng.integers(1, beats_full + 1))
    model = EmulatorModel(codes, adc_bits=p.adc_bits, dac_bits=p.dac_bits, cols_per_adc_beat=p.cols_per_adc_beat,
                          shift=SHIFT, sigma=sigma, seed=seed, adc_beats=[n_beats])
    writes = [(am.cell(0, r, c), int(codes[0, r, c])) for r in range(p.array_rows) for c in range(p.array_cols)]
    writes += [(am.reg(REG_SHIFT), SHIFT), (am.reg(REG_SIGMA), sigma), (am.reg(REG_SEED), seed),
               (am.reg(REG_ADC_BEATS), n_beats)]
    if fault:
        r, c = (int(v) for v in fault.split(","))
        writes.append((am.cell(0, r, c), int(np.clip(-codes[0, r, c] + 3, -127, 127))))
    await clock.edge
    for addr, val in writes:
        dut.wr_en.value = 1
        dut.wr_addr.value = addr
        dut.wr_data.value = val & 0xFFFFFFFF
        await clock.edge
    dut.wr_en.value = 0

    dac, adc = StreamPort(dut, "dac", dac_beat_layout(p)), StreamPort(dut, "adc", adc_beat_layout(p))
    stats = {"mvms": 0, "compared": 0, "mismatches": 0, "first": [], "adc_beats": n_beats, "dac_beats": [],
             "beat_cycles": []}
    for mvm in range(n_mvm):
        nb = int(rng.integers(1, p.array_rows // p.rows_per_dac_beat + 1))
        d = rng.integers(-(1 << (p.dac_bits - 1)), 1 << (p.dac_bits - 1), nb * p.rows_per_dac_beat)
        for b in range(nb):
            while prob < 1.0 and rng.random() >= prob:
                dac.valid.value = 0
                await clock.edge
            dac.write({"codes": [int(x) for x in d[b * p.rows_per_dac_beat:(b + 1) * p.rows_per_dac_beat]],
                       "last": int(b == nb - 1)})
            dac.valid.value = 1
            while True:
                await ReadOnly()
                if dac.ready.value:
                    break
                await clock.edge
            last_cycle = clock.cycle()
            await clock.edge
        dac.valid.value = 0
        expected = model.mvm(0, d)
        got, cycles = [], []
        while True:
            ready = int(prob >= 1.0 or rng.random() < prob)
            adc.ready.value = ready
            await ReadOnly()
            if adc.valid.value and ready:
                cycles.append(clock.cycle() - last_cycle)
                beat = adc.read()
                got += beat["codes"]
                if beat["last"]:
                    await clock.edge
                    break
            await clock.edge
        adc.ready.value = 0
        stats["mvms"] += 1
        stats["dac_beats"].append(nb)
        stats["beat_cycles"].append(cycles)
        stats["compared"] += len(expected)
        bad = int(np.sum(np.array(got) != expected)) if len(got) == len(expected) else len(expected)
        stats["mismatches"] += bad
        if bad and len(stats["first"]) < 3:
            stats["first"].append(f"MVM {mvm}: got {got[:8]}, expected {list(expected[:8])}")
    await ReadOnly()
    stats["err"] = int(dut.err.value)
    out = os.environ.get("AIMC_EMU_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "emulator.json").write_text(json.dumps(stats, indent=1))
    dut._log.info("emulator: %s", stats)
