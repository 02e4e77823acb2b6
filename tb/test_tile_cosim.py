"""cocotb tests of one analog tile (tile controller + affine unit, ``rtl.tile.Tile``, the chip's tile).

The Verilog under test is the Amaranth RTL exported for the chip description
named by the environment; the PCM arrays behind the array port are the
archmodel tile model (:mod:`tb.bridge`); the reference is the archmodel golden
run with the same seed (:mod:`tb.tile_env`). Every test prints its seed,
asserts zero mismatches and the number of outputs compared, and writes its
counts and cycles to ``$AIMC_COSIM_OUT/<test>.json``.

Scenarios (cocotb test names; select them with the runner's ``testcase``):

- ``test_one_mvm``: one input vector, one full array (K = rows, N = cols);
- ``test_full_layer``: a 3x3 convolution (3 -> 8 channels, 8x8 input, one
  vector per output pixel: 64 MVMs); array-port cycles equal the mapper's sum
  of ``timing.mvm_cycles``;
- ``test_blocks_2x2``: a matrix over 2 x 2 arrays (``arrays_per_tile >= 4``):
  partial sums across row blocks, two column blocks; cycles as above;
- ``test_backpressure``: random valid / ready gaps on all four streams;
- ``test_reset_mid_transfer``: reset while outputs are flowing, then an exact run;
- ``test_invalid_config``: out-of-range configurations set ``err_config``,
  nothing is accepted, nothing hangs (cocotb timeout), a good run follows;
- ``test_fault_detected``: the bridge negates the ADC codes of one MVM; the
  checker must report mismatches in exactly that vector (checks the checker);
- ``test_job``: the job file ``$AIMC_COSIM_JOB`` (``aimc cosim``, benchmarks).

Environment
-----------
AIMC_COSIM_ARCH : chip description (preset or YAML path), default ``tiny``
AIMC_COSIM_CHANGES : JSON dict of dotted-path changes, default ``{}``
AIMC_COSIM_SEED : seed, default 1
AIMC_COSIM_T_INF : drift time in s (``none``: no drift, no read noise), default 0
AIMC_COSIM_OUT : folder for the per-test JSON results (optional)
AIMC_COSIM_JOB : job file of ``test_job``
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, ReadOnly

from rtl.params import TileParams
from tb.streams import CycleClock
from tb.tile_env import RunResult, Testbench, TileJob, conv_job, prepare, random_job, resolve_spec

PERIOD_NS = 10


def _env() -> dict:
    t_inf = os.environ.get("AIMC_COSIM_T_INF", "0")
    return {
        "arch": os.environ.get("AIMC_COSIM_ARCH", "tiny"),
        "changes": json.loads(os.environ.get("AIMC_COSIM_CHANGES", "{}") or "{}"),
        "seed": int(os.environ.get("AIMC_COSIM_SEED", "1")),
        "t_inf_s": None if t_inf.lower() == "none" else float(t_inf),
    }


def _params(env: dict) -> TileParams:
    return TileParams.from_spec(resolve_spec(env["arch"], env["changes"]))


def _save(test: str, data: dict) -> None:
    out = os.environ.get("AIMC_COSIM_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        tmp = Path(out) / f".{test}.json.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(Path(out) / f"{test}.json")


async def _start(dut, seed: int, **stalls) -> Testbench:
    clock = CycleClock(dut.clk, PERIOD_NS)
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    for name in ("act__valid", "adc__valid", "start", "stop", "coef_we", "aff_clear", "out__ready", "dac__ready",
                 "chain_in", "chain_out", "psum_in__valid", "psum_out__ready"):
        getattr(dut, name).value = 0
    tb = Testbench(dut, clock, seed=seed, **stalls)
    await tb.reset(3)
    return tb


def _check(dut, res: RunResult, test: str, extra: dict | None = None) -> None:
    data = res.as_dict() | {"test": test} | (extra or {})
    _save(test, data)
    msg = f"seed {res.seed}: {res.name}: {res.compared}/{res.expected_outputs} compared, {res.mismatches} mismatches"
    assert res.mismatches == 0, msg + "; first: " + "; ".join(res.first_mismatches[:3])
    assert res.compared == res.expected_outputs, msg
    assert res.extra_outputs == 0, msg + f", {res.extra_outputs} extra outputs"
    assert res.protocol_errors == 0, msg + f", {res.protocol_errors} array-port protocol errors"
    assert not any(res.flags.values()), msg + f", flags {res.flags}"


def _check_cycles(res: RunResult) -> None:
    """Array-port cycles against the mapper's figure: within 2 % (and exact when no stall)."""
    assert res.predicted_cycles > 0
    ratio = res.array_cycles / res.predicted_cycles
    assert abs(ratio - 1) <= 0.02, (f"seed {res.seed}: array-port cycles {res.array_cycles} vs predicted "
                                    f"{res.predicted_cycles} (ratio {ratio:.4f})")


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def test_one_mvm(dut):
    env = _env()
    dut._log.info("test_one_mvm: seed %d", env["seed"])
    tb = await _start(dut, env["seed"])
    p = _params(env)
    pj = prepare(random_job(env["arch"], p.array_rows, p.array_cols, 1, env["seed"], changes=env["changes"],
                            t_inf_s=env["t_inf_s"], name="one MVM"))
    res = await tb.run(pj, log=dut._log)
    _check(dut, res, "test_one_mvm")
    assert res.mvms == 1
    _check_cycles(res)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_full_layer(dut):
    env = _env()
    dut._log.info("test_full_layer: seed %d", env["seed"])
    tb = await _start(dut, env["seed"])
    pj = prepare(conv_job(env["arch"], 3, 8, 8, env["seed"], changes=env["changes"], t_inf_s=env["t_inf_s"]))
    res = await tb.run(pj, log=dut._log)
    _check(dut, res, "test_full_layer")
    assert res.mvms == 64 * pj.n_row_blocks * pj.n_col_blocks
    _check_cycles(res)


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_blocks_2x2(dut):
    env = _env()
    dut._log.info("test_blocks_2x2: seed %d", env["seed"])
    tb = await _start(dut, env["seed"])
    probe = _params(env)
    assert probe.arrays_per_tile >= 4, "test_blocks_2x2 needs array.arrays_per_tile >= 4"
    r, c = probe.array_rows, probe.array_cols
    k, n = r + r // 2 + 2, c + c // 4          # 2 row blocks, 2 column blocks, partial ones
    pj = prepare(random_job(env["arch"], k, n, 6, env["seed"], changes=env["changes"], t_inf_s=env["t_inf_s"],
                            name=f"2x2 blocks {k}x{n}"))
    assert (pj.n_row_blocks, pj.n_col_blocks) == (2, 2)
    res = await tb.run(pj, log=dut._log)
    _check(dut, res, "test_blocks_2x2")
    assert res.mvms == 6 * 4
    _check_cycles(res)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def test_backpressure(dut):
    env = _env()
    dut._log.info("test_backpressure: seed %d", env["seed"])
    tb = await _start(dut, env["seed"], p_act_valid=0.6, p_out_ready=0.5, p_dac_ready=0.6, p_adc_valid=0.6)
    probe = _params(env)
    k, n = probe.array_rows - 3, probe.array_cols - 5
    pj = prepare(random_job(env["arch"], k, n, 6, env["seed"], changes=env["changes"], t_inf_s=env["t_inf_s"],
                            name=f"back-pressure {k}x{n}"))
    res = await tb.run(pj, log=dut._log)
    _check(dut, res, "test_backpressure")
    assert res.array_cycles > res.predicted_cycles      # the stalls really stalled


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_reset_mid_transfer(dut):
    env = _env()
    dut._log.info("test_reset_mid_transfer: seed %d", env["seed"])
    tb = await _start(dut, env["seed"], p_out_ready=0.7)
    probe = _params(env)
    k, n = probe.array_rows, probe.array_cols
    first = prepare(random_job(env["arch"], k, n, 4, env["seed"], changes=env["changes"], name="before reset"))
    aborted = await tb.run(first, abort_after_outputs=n + 3)
    assert aborted.compared == n + 3 and aborted.mismatches == 0, f"seed {env['seed']}: {aborted}"
    await tb.reset(2)
    await ReadOnly()
    idle = {name: int(getattr(dut, name).value) for name in
            ("busy", "aff_busy", "out__valid", "dac__valid", "act__ready", "done")}
    await ClockCycles(dut.clk, 1)
    assert idle == dict.fromkeys(idle, 0), f"seed {env['seed']}: after reset {idle}"
    second = prepare(random_job(env["arch"], k - 5, n - 7, 3, env["seed"], changes=env["changes"],
                                t_inf_s=env["t_inf_s"], name="after reset"))
    res = await tb.run(second, log=dut._log)
    _check(dut, res, "test_reset_mid_transfer", {"aborted_compared": aborted.compared})


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_invalid_config(dut):
    env = _env()
    dut._log.info("test_invalid_config: seed %d", env["seed"])
    tb = await _start(dut, env["seed"])
    pj = prepare(random_job(env["arch"], 20, 12, 2, env["seed"], changes=env["changes"], t_inf_s=env["t_inf_s"],
                            name="after invalid configurations"))
    p = pj.params
    apt = p.arrays_per_tile
    bad = [(0, 12, 1, 1), (20, 0, 1, 1), (p.max_rows + 1, 12, apt, 1), (20, 12, 0, 1),
           (p.array_rows + 1, 12, 1, 1), (20, p.array_cols + 1, 1, 1)]
    if apt > 1:
        bad += [(20, 12, 2, 1), (p.max_rows, p.array_cols + 1, apt, 2)]
    seen = []
    for k, n, rb, cb in bad:
        await tb.configure(pj, k=k, n=n, n_rb=rb, n_cb=cb)
        # an activation beat is offered: it must not be taken
        dut.act__payload.value = 0
        dut.act__valid.value = 1
        await tb.pulse("start")
        accepted = 0
        for _ in range(40):
            await ReadOnly()
            accepted += int(dut.act__ready.value)
            await ClockCycles(dut.clk, 1)
        await ReadOnly()
        seen.append({"cfg": (k, n, rb, cb), "err_config": int(dut.err_config.value), "busy": int(dut.busy.value),
                     "accepted": accepted, "dac_valid": int(dut.dac__valid.value)})
        await ClockCycles(dut.clk, 1)
        dut.act__valid.value = 0
    for s in seen:
        assert (s["err_config"], s["busy"], s["accepted"], s["dac_valid"]) == (1, 0, 0, 0), \
            f"seed {env['seed']}: configuration {s['cfg']}: {s}"
    res = await tb.run(pj, log=dut._log)        # a good configuration clears the flag and runs exactly
    _check(dut, res, "test_invalid_config", {"bad_configs": len(bad)})


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_fault_detected(dut):
    env = _env()
    dut._log.info("test_fault_detected: seed %d", env["seed"])
    tb = await _start(dut, env["seed"])
    tb.fault_mvm = 2
    probe = _params(env)
    pj = prepare(random_job(env["arch"], probe.array_rows, 16, 4, env["seed"], changes=env["changes"],
                            t_inf_s=env["t_inf_s"], relu=False, name="fault in MVM 2"))
    res = await tb.run(pj, log=dut._log)
    _save("test_fault_detected", res.as_dict() | {"test": "test_fault_detected"})
    assert res.compared == res.expected_outputs == 4 * 16, f"seed {res.seed}: {res.compared}"
    vectors = {int(line.split("(vector ")[1].split(")")[0]) for line in res.first_mismatches}
    per_vector = 1 if pj.n_row_blocks * pj.n_col_blocks == 1 else None
    assert res.mismatches > 0, f"seed {res.seed}: the injected fault went unnoticed"
    if per_vector:
        assert vectors == {2}, f"seed {res.seed}: mismatches in vectors {vectors}, expected only vector 2"


@cocotb.test(timeout_time=600, timeout_unit="sec")
async def test_job(dut):
    path = os.environ.get("AIMC_COSIM_JOB")
    assert path, "AIMC_COSIM_JOB is not set"
    job = TileJob.load(path)
    dut._log.info("test_job: %s, seed %d", job.name, job.seed)
    tb = await _start(dut, job.seed)
    pj = prepare(job)
    res = await tb.run(pj, log=dut._log)
    _check(dut, res, "test_job", {"gdc_alpha": pj.gdc_alpha})
