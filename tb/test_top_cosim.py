"""cocotb tests of the co-processor top level (``aimc_top``, :class:`rtl.top.Coprocessor`).

A small network runs end to end: configured over AXI4-Lite from the
configuration compiler's register writes (:mod:`rtl.register_compiler`),
fed and drained over AXI4-Stream (cocotbext-axi drivers), with a PCM-array
bridge (:mod:`tb.bridge`) on the array port of every tile it uses, checked
bit for bit against the archmodel golden run of the same network and seed
(:mod:`tb.top_env`). Every test prints its seed, asserts zero mismatches and
the number of outputs compared, and writes its counts and cycles to
``$AIMC_COSIM_OUT/<test>.json``; a cocotb timeout fails a test instead of
letting it hang.

Scenarios (tiny preset: 2 x 2 tiles of one 32 x 32 array):

- ``test_mlp_two_tiles``: a 2-layer MLP 30 -> 32 -> 10 on 8 vectors, layer 1
  on tile 0, its int8 results routed over the mesh to tile 1 for layer 2,
  results back to the host; no stalls; every configuration register written
  is read back.
- ``test_mesh_backpressure``: a 4-layer MLP 20 -> 28 -> 32 -> 17 -> 12 on 12
  vectors through all four tiles, 0 -> 1 -> 3 -> 2 -> host (every mesh
  direction and the east-edge turn), drifted to 1 day (GDC alpha folded into
  the affine scale), with random pauses on the AXI4-Stream input and output
  (back-pressure into the mesh) and random stalls on every array port; the
  host must see the chip refuse input flits (back-pressure crossed the whole
  pipeline) and the chip must see its output refused.
- ``test_fault_detected``: the 2-layer MLP with one corrupted ``coef_scale``
  write (column 3 of the last layer): the checker must report mismatches in
  that column only, every other output matching (checks the checker).

Environment
-----------
AIMC_COSIM_ARCH : chip description (preset or YAML path), default ``tiny``
AIMC_COSIM_CHANGES : JSON dict of dotted-path changes, default ``{}``
AIMC_COSIM_SEED : seed, default 1
AIMC_COSIM_OUT : folder for the per-test JSON results (optional)
AIMC_CHAIN_ORDER, AIMC_CHAIN_WINDOW : host send order and skew window of ``test_chain_home_first``
    (exploration; defaults ``home_first``, no window; ``tb.top_env.host_order``)
AIMC_CHAIN_RUNS : runs of ``test_chain_random`` (default 8)
AIMC_CONV_READY : ready/valid probability of ``test_conv_chain``'s ports (default 0.7; 1.0: no stall)

Issue-15 scenarios (partial-sum chains, digital first/last layers, several
destinations, fault location): ``test_chain_home_first``,
``test_chain_upstream_first``, ``test_chain_random``, ``test_tile_to_digital``,
``test_digital_to_tile``, ``test_digital_to_chain``, ``test_digital_weight_fault``;
the whole network from the mapper's placement: ``test_digits_network`` and
``test_digits_fault`` (``AIMC_PLACEMENT``, ``AIMC_DIGITS_IMAGES``,
``AIMC_DIGITS_WEIGHTS``, ``AIMC_FAULT``, ``AIMC_PROFILE``; :mod:`tb.network_env`)
(each docstring says what it asserts).

Issue-18 scenarios (convolutions through the patch buffers, pools, residual joins): ``test_conv_chain``,
``test_conv_chain_rate``, ``test_conv_pool``, ``test_conv_pool_fault`` (an RTL-side fault located behind a pool),
``test_conv_residual``; the whole CNN in one run: ``test_cnn_network`` / ``test_cnn_fault`` (:mod:`tb.cnn_env`).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import cocotb
from cocotb.clock import Clock

from rtl.register_compiler import RegWrite, compile_digital_weights
from tb.streams import CycleClock
from tb.top_checker import NetResult
from tb.top_env import TopTestbench, mlp_job, prepare_network, resolve_spec

warnings.filterwarnings("ignore", category=DeprecationWarning)

PERIOD_NS = 10


def _env() -> dict:
    return {
        "arch": os.environ.get("AIMC_COSIM_ARCH", "tiny"),
        "changes": json.loads(os.environ.get("AIMC_COSIM_CHANGES", "{}") or "{}"),
        "seed": int(os.environ.get("AIMC_COSIM_SEED", "1")),
    }


def _save(test: str, data: dict) -> None:
    out = os.environ.get("AIMC_COSIM_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        tmp = Path(out) / f".{test}.json.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        tmp.replace(Path(out) / f"{test}.json")


async def _start(dut, env: dict, **stalls) -> TopTestbench:
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    dut.rst.value = 1
    clock = CycleClock(dut.clk, PERIOD_NS)
    tb = TopTestbench(dut, clock, resolve_spec(env["arch"], env["changes"]), seed=env["seed"], **stalls)
    await tb.reset(4)
    return tb


def _check(res: NetResult, test: str, extra: dict | None = None) -> None:
    _save(test, res.as_dict() | {"test": test} | (extra or {}))
    msg = f"seed {res.seed}: {res.summary()}"
    assert res.mismatches == 0, msg + "; first: " + "; ".join(res.first_mismatches[:3])
    assert res.compared == res.expected_outputs, msg
    assert res.dac_mismatches == 0, msg + "; first: " + "; ".join(res.first_mismatches[:3])
    assert res.dac_compared > 0, msg
    assert res.extra_outputs == 0 and res.format_errors == 0, msg + f", {res.extra_outputs} extra outputs, " \
                                                                    f"{res.format_errors} format errors"
    assert res.protocol_errors == 0, msg + f", {res.protocol_errors} array-port protocol errors"
    assert res.axil_errors == 0, msg + f", {res.axil_errors} AXI4-Lite error responses"
    assert res.readback_mismatches == 0, msg + "; " + "; ".join(res.first_mismatches[:3])
    assert res.tap_mismatches == 0, msg + f", {res.tap_mismatches} mirrored intermediate outputs wrong"
    assert not any(res.flags.values()), msg + f", flags {[k for k, v in res.flags.items() if v]}"


@cocotb.test(timeout_time=3, timeout_unit="ms")
async def test_mlp_two_tiles(dut):
    env = _env()
    dut._log.info("test_mlp_two_tiles: seed %d", env["seed"])
    tb = await _start(dut, env)
    pn = prepare_network(mlp_job(env["arch"], [30, 32, 10], [0, 1], 8, env["seed"], changes=env["changes"],
                                 t_inf_s=0.0, name="mlp 30-32-10 on tiles 0, 1"))
    res = await tb.run(pn, readback=True, log=dut._log)
    _check(res, "test_mlp_two_tiles")
    assert res.compared == 8 * 10
    assert res.dac_compared == 8 * (30 + 32)
    assert res.mvms == [8, 8]
    assert res.readback_checked > 0
    assert res.cycles >= res.bound_cycles, res.summary()
    assert res.interval_cycles == max(res.stage_cycles), res.summary()  # full rate: the slowest stage sets it


@cocotb.test(timeout_time=8, timeout_unit="ms")
async def test_mesh_backpressure(dut):
    env = _env()
    dut._log.info("test_mesh_backpressure: seed %d", env["seed"])
    tb = await _start(dut, env, p_in=0.9, p_out=0.3, p_dac_ready=0.7, p_adc_valid=0.7)
    pn = prepare_network(mlp_job(env["arch"], [20, 28, 32, 17, 12], [0, 1, 3, 2], 12, env["seed"],
                                 changes=env["changes"], t_inf_s=86400.0,
                                 name="mlp 20-28-32-17-12 on tiles 0, 1, 3, 2"))
    res = await tb.run(pn, log=dut._log)
    _check(res, "test_mesh_backpressure")
    assert res.compared == 12 * 12
    assert res.dac_compared == 12 * (20 + 28 + 32 + 17)
    assert res.mvms == [12, 12, 12, 12]
    assert all(a > 1.0 for a in res.gdc_alpha), res.gdc_alpha  # drifted: GDC scales up
    assert res.in_stall_cycles > 0 and res.out_stall_cycles > 0, res.summary()


def _negate_coef_scale(pn, tile: int, col: int) -> None:
    """RTL-side fault: the ``coef_scale`` write of output column ``col`` of ``tile``'s affine unit negated in
    ``pn.writes`` (the configuration on its way to the chip; the golden run untouched)."""
    rm = pn.regmap
    at = pn.writes.index(RegWrite(*rm.write(f"tile{tile}.affine.coef_addr", coef_addr=col),
                                  f"tile{tile}.affine.coef_addr"))
    wr = pn.writes[at + 1]
    assert wr.name == f"tile{tile}.affine.coef_scale"
    scale = rm.decode(wr.name, wr.data)["coef_scale"]
    pn.writes[at + 1] = RegWrite(wr.addr, rm.encode(wr.name, coef_scale=-scale), wr.name)


@cocotb.test(timeout_time=3, timeout_unit="ms")
async def test_fault_detected(dut):
    env = _env()
    dut._log.info("test_fault_detected: seed %d", env["seed"])
    tb = await _start(dut, env)
    pn = prepare_network(mlp_job(env["arch"], [30, 32, 10], [0, 1], 8, env["seed"], changes=env["changes"],
                                 t_inf_s=0.0, name="mlp 30-32-10, column 3 of layer 2 corrupted"))
    col = 3
    _negate_coef_scale(pn, 1, col)
    res = await tb.run(pn, log=None)
    _save("test_fault_detected", res.as_dict() | {"test": "test_fault_detected"})
    msg = f"seed {res.seed}: {res.summary()}"
    assert res.compared == res.expected_outputs == 8 * 10, msg
    assert res.mismatches > 0 and res.mismatched_columns == [col], msg + f", columns {res.mismatched_columns}"
    assert res.dac_mismatches == 0 and res.format_errors == 0 and res.extra_outputs == 0, msg


# ---------------------------------------------------------------- partial-sum chains (issue 15)

CHAIN_K, CHAIN_N, CHAIN_B = 52, 24, 8  # K = 32 + 20 rows on two tiles of tiny, N = 24 columns, 8 vectors


def _chain_job(env: dict, tiles: list[int], seed: int, name: str):
    return mlp_job(env["arch"], [CHAIN_K, CHAIN_N], [tiles], CHAIN_B, seed, changes=env["changes"], t_inf_s=0.0,
                   name=name)


def _chain_check(res: NetResult, test: str) -> None:
    _check(res, test)
    assert res.compared == CHAIN_B * CHAIN_N, res.summary()
    assert res.dac_compared == CHAIN_B * CHAIN_K, res.summary()


@cocotb.test(timeout_time=3, timeout_unit="ms")
async def test_chain_home_first(dut):
    """The issue's case: tiles 0 -> 1, K = 32 + 20, N = 24, 8 vectors, home half of each vector first, no window

    (hung after 40 of 192 outputs when activations and partial sums shared the mesh)."""
    env = _env()
    tb = await _start(dut, env)
    order = os.environ.get("AIMC_CHAIN_ORDER", "home_first")  # exploration: another send order, window
    window = int(os.environ["AIMC_CHAIN_WINDOW"]) if os.environ.get("AIMC_CHAIN_WINDOW") else None
    pn = prepare_network(_chain_job(env, [0, 1], env["seed"], f"chain 0->1, 52x24, {order} order"))
    res = await tb.run(pn, log=dut._log, order=order, window=window)
    _chain_check(res, "test_chain_home_first")
    assert res.mvms == [CHAIN_B, CHAIN_B]


@cocotb.test(timeout_time=3, timeout_unit="ms")
async def test_chain_upstream_first(dut):
    """All upstream halves enqueued first; the host DMA keeps the skew within one vector (window 1)."""
    env = _env()
    tb = await _start(dut, env)
    pn = prepare_network(_chain_job(env, [0, 1], env["seed"], "chain 0->1, all upstream halves first"))
    res = await tb.run(pn, log=dut._log, order="tiles", window=1)
    _chain_check(res, "test_chain_upstream_first")


@cocotb.test(timeout_time=40, timeout_unit="ms")
async def test_chain_random(dut):
    """Random chains over ordered tile pairs and host orders, ready low on >= 25 % of cycles everywhere."""
    import numpy as np

    env = _env()
    rng = np.random.default_rng([env["seed"], 15])
    pairs = [(a, b) for a in range(4) for b in range(4) if a != b]
    runs = []
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7)
    for r in range(int(os.environ.get("AIMC_CHAIN_RUNS", "8"))):
        a, b = pairs[int(rng.integers(len(pairs)))]
        order = ["vector", "home_first", "tiles", "random"][r % 4]
        window = None if order in ("vector", "home_first") else 1
        if r:
            await tb.reset(4)
        pn = prepare_network(_chain_job(env, [a, b], env["seed"] * 100 + r, f"chain {a}->{b}, {order}"))
        res = await tb.run(pn, log=dut._log, order=order, window=window)
        _chain_check(res, f"test_chain_random_{r}")
        runs.append({"tiles": [a, b], "order": order, "window": window, "compared": res.compared,
                     "mismatches": res.mismatches, "cycles": res.cycles, "in_stall_cycles": res.in_stall_cycles,
                     "out_stall_cycles": res.out_stall_cycles})
    assert sum(x["out_stall_cycles"] for x in runs) > 0, runs  # the host refused output flits
    _save("test_chain_random", {"runs": runs, "compared": sum(x["compared"] for x in runs),
                                "mismatches": sum(x["mismatches"] for x in runs), "seed": env["seed"]})


# ---------------------------------------------------------------- conv layers through patch buffers (issue 18)

#: conv1 8 -> 8, 2 x 2, stride 2, pad 1 on 6 x 6 (out 4 x 4, K = 32, tile 0); conv2 8 -> 10, 2 x 3, pad 1
#: (out 5 x 4, K = 48 = 32 + 16 on the chain 3 -> 1: tile 1's rows start mid-patch at tap (1, 1)); 2 images
CONV_CHAIN = dict(input_shape=(8, 6, 6), tiles=[0, [3, 1]], n_images=2,
                  convs=[dict(out_channels=8, kernel_size=2, stride=2, padding=1),
                         dict(out_channels=10, kernel_size=(2, 3), padding=1)])


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_conv_chain_rate(dut):
    """test_conv_chain's network with no stall: every tile's MVMs start exactly its stage cycles apart
    (``archmodel.timing.mvm_cycles``: conv1 4 + 6 + 1 + 2 = 13; conv2's upstream tile 4 + 6 + 2 + 2 = 14), the
    home tile at the upstream tile's pace (its own MVM is 12 cycles), 0 mismatches."""
    import numpy as np

    from tb.top_env import conv_job

    env = _env()
    tb = await _start(dut, env)
    c = CONV_CHAIN
    pn = prepare_network(conv_job(env["arch"], c["input_shape"], c["convs"], c["tiles"], c["n_images"], env["seed"],
                                  changes=env["changes"], name="conv chain, no stall"))
    res = await tb.run(pn, log=dut._log)
    gaps = [np.diff(s).tolist() for s in res.mvm_start_cycles]
    _check(res, "test_conv_chain_rate", {"mvm_gaps": gaps})
    assert res.compared == 400, res.summary()
    assert res.stage_cycles == [13, 14, 12], res.summary()
    assert set(gaps[0]) == {13} and set(gaps[1]) == {14}, gaps
    assert set(gaps[2][-20:]) == {14}, gaps  # the home tile waits for the upstream partial sums


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_conv_chain(dut):
    """conv -> conv with stride and padding: the host sends the int8 map pixel by pixel to tile 0; tile 0's output
    pixels are multicast (two destination entries, every beat) to both tiles of conv2's partial-sum chain, whose
    patch buffers cut their own beat ranges; ready low on ~30 % of cycles at s_axis, m_axis and every array port.
    Asserts 0 mismatches over 2 x 20 x 10 outputs, every DAC code of every MVM (2 x 16 x 32 + 2 x 20 x (32 + 16))
    equal to the golden tap-major patch rows, MVMs per tile [32, 40, 40], status flags clear."""
    from tb.top_env import conv_job

    env = _env()
    p = float(os.environ.get("AIMC_CONV_READY", "0.7"))  # exploration: 1.0 = no stall (cycles vs the model)
    tb = await _start(dut, env, p_in=p, p_out=p, p_dac_ready=p, p_adc_valid=p)
    c = CONV_CHAIN
    pn = prepare_network(conv_job(env["arch"], c["input_shape"], c["convs"], c["tiles"], c["n_images"], env["seed"],
                                  changes=env["changes"], name="conv 8x6x6 -2x2/2p1-> 8x4x4 -2x3p1-> 10x5x4"))
    res = await tb.run(pn, log=dut._log)
    spans = {li: (s[-1] - s[0]) / (len(s) - 1) if len(s) > 1 else None for li, s in enumerate(res.mvm_start_cycles)}
    _check(res, "test_conv_chain", {"mvm_interval_cycles": spans})
    assert res.compared == 2 * 20 * 10, res.summary()
    assert res.dac_compared == 2 * 16 * 32 + 2 * 20 * (32 + 16), res.summary()
    assert res.mvms == [32, 40, 40], res.summary()
    assert res.out_stall_cycles > 0 or p == 1.0, res.summary()  # the host refused output flits


#: conv1 8 -> 8, 2 x 2, stride 2, pad 1 on 6 x 6 (tile 0) -> max pool 2 (tile 0's output stream) -> 2 x 2 ->
#: conv2 8 -> 16, 2 x 2, pad 1 (out 3 x 3, tile 1) -> global average pool (tile 1's output stream; divisor 9); 3 images
CONV_POOL = dict(input_shape=(8, 6, 6), tiles=[0, 1], n_images=3, pools=[("maxpool", 2), ("global_avgpool",)],
                 convs=[dict(out_channels=8, kernel_size=2, stride=2, padding=1),
                        dict(out_channels=16, kernel_size=2, padding=1)])


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_conv_pool(dut):
    """conv -> max pool -> conv -> global average pool, the pools on the producing tiles' output streams, ready low
    ~30 % at every port. Asserts 0 mismatches over 3 x 16 outputs, the DAC codes of conv2 (its patches of the
    max-pooled map: 3 x 9 x 32) and of conv1 (3 x 16 x 32), MVMs [48, 27]."""
    from tb.top_env import conv_job

    env = _env()
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7)
    c = CONV_POOL
    pn = prepare_network(conv_job(env["arch"], c["input_shape"], c["convs"], c["tiles"], c["n_images"], env["seed"],
                                  changes=env["changes"], pools=c["pools"],
                                  name="conv 8x6x6 -2x2/2p1-> maxpool 2 -> 2x2p1 -> global avg pool"))
    res = await tb.run(pn, log=dut._log)
    _check(res, "test_conv_pool")
    assert res.compared == 3 * 16, res.summary()
    assert res.dac_compared == 3 * 16 * 32 + 3 * 9 * 32, res.summary()
    assert res.mvms == [48, 27], res.summary()


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_conv_pool_fault(dut):
    """RTL-side fault in test_conv_pool's network: the ``coef_scale`` write of output channel 5 of conv1's tile
    (tile 0) negated on its way to the chip (the golden run untouched), 2 images, ready low ~30 % at every port.
    conv1's channel 5 is then wrong, the max pool passes it on, and conv2's tile (mapped layer 1) must see wrong
    DAC codes only in the rows that read channel 5 (tap-major rows: row % 8 == 5), conv1's tile (layer 0) none:
    the fault is located at conv1's output, behind the pool."""
    from tb.top_env import conv_job

    env = _env()
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7)
    c = CONV_POOL
    pn = prepare_network(conv_job(env["arch"], c["input_shape"], c["convs"], c["tiles"], 2, env["seed"],
                                  changes=env["changes"], pools=c["pools"], name="conv pool, conv1 channel 5 fault"))
    col = 5
    _negate_coef_scale(pn, 0, col)
    res = await tb.run(pn, log=None)
    _save("test_conv_pool_fault", res.as_dict() | {"test": "test_conv_pool_fault", "channel": col})
    assert res.compared == res.expected_outputs == 2 * 16, res.summary()
    assert res.dac_mismatches > 0 and res.mismatches > 0, res.summary()
    assert {li for li, _ in res.dac_mismatch_at} == {1}, res.dac_mismatch_at
    assert {row % 8 for _, row in res.dac_mismatch_at} == {col}, res.dac_mismatch_at


#: conv0 8 -> 8, 1 x 3, pad (0, 1) on 4 x 4 (tile 0) -> conv1 8 -> 8, 3 x 1, pad (1, 0) (tile 3); the residual
#: ReLU(conv1 + conv0) added by tile 1's join -> conv2 8 -> 10, 2 x 2, stride 2 (tile 1) -> host; 3 images
CONV_RESIDUAL = dict(input_shape=(8, 4, 4), tiles=[0, 3, 1], n_images=3, residual=(2, 0),
                     convs=[dict(out_channels=8, kernel_size=(1, 3), padding=(0, 1)),
                            dict(out_channels=8, kernel_size=(3, 1), padding=(1, 0)),
                            dict(out_channels=10, kernel_size=2, stride=2)])


@cocotb.test(timeout_time=10, timeout_unit="ms")
async def test_conv_residual(dut):
    """A residual block: tile 0's pixels multicast to conv1 (tile 3) and to tile 1's residual join, which merges
    them by source tag with conv1's and adds them (requantize_sum, ReLU) before tile 1's patch buffer; ready low
    ~30 % at every port. Asserts 0 mismatches over 3 x 4 x 10 outputs and every DAC code (conv2's are the
    patches of the added map): 3 x 16 x 24 x 2 + 3 x 4 x 32; MVMs [48, 48, 12]."""
    from tb.top_env import conv_job

    env = _env()
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7)
    c = CONV_RESIDUAL
    pn = prepare_network(conv_job(env["arch"], c["input_shape"], c["convs"], c["tiles"], c["n_images"], env["seed"],
                                  changes=env["changes"], residual=c["residual"],
                                  name="residual: conv0 -> conv1, + conv0 -> conv2"))
    res = await tb.run(pn, log=dut._log)
    _check(res, "test_conv_residual")
    assert res.compared == 3 * 4 * 10, res.summary()
    assert res.dac_compared == 2 * 3 * 16 * 24 + 3 * 4 * 32, res.summary()
    assert res.mvms == [48, 48, 12], res.summary()


# ---------------------------------------------------------------- digital first / last layer (issue 15)


def _digital_job(env: dict, sizes: list[int], tiles: list[int], digital: list[bool], name: str, n: int = 6):
    job = mlp_job(env["arch"], sizes, tiles, n, env["seed"], changes=env["changes"], t_inf_s=0.0, name=name)
    job.digital = list(digital)
    return job


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_tile_to_digital(dut):
    """Analog 30 -> 20 on tile 0, then the digital datapath 20 -> 10 (last layer), results to the host."""
    env = _env()
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7)
    pn = prepare_network(_digital_job(env, [30, 20, 10], [0, 0], [False, True], "tile 0 -> digital"))
    res = await tb.run(pn, log=dut._log)
    _check(res, "test_tile_to_digital")
    assert res.compared == 6 * 10 and res.dac_compared == 6 * 30 and res.mvms == [6], res.summary()


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_digital_to_tile(dut):
    """The digital datapath 24 -> 16 (first layer, packed int8 from the host), then analog 16 -> 10 on tile 1."""
    env = _env()
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7)
    pn = prepare_network(_digital_job(env, [24, 16, 10], [0, 1], [True, False], "digital -> tile 1"))
    res = await tb.run(pn, log=dut._log)
    _check(res, "test_digital_to_tile")
    assert res.compared == 6 * 10 and res.dac_compared == 6 * 16 and res.mvms == [6], res.summary()


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_digital_to_chain(dut):
    """The digital datapath 24 -> 52 splits each result vector over a chain (rows 0..31 to tile 2, 32..51 to
    tile 3: destination entries by beat range), chained 52 -> 24 on tiles 2 -> 3, results to the host."""
    env = _env()
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7)
    pn = prepare_network(_digital_job(env, [24, 52, 24], [0, [2, 3]], [True, False], "digital -> chain 2->3"))
    res = await tb.run(pn, log=dut._log)
    _check(res, "test_digital_to_chain")
    assert res.compared == 6 * 24 and res.dac_compared == 6 * 52 and res.mvms == [6, 6], res.summary()


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def test_digital_weight_fault(dut):
    """RTL-side fault: one digital weight streamed over AXI4-Stream is negated (W[ch 5, k 3] in its flit); the
    golden run is untouched. The chain tile that receives channel 5 (tile 2, rows 0..31) must report wrong DAC
    codes in row 5 only -- the fault is located at the digital layer's output -- and the final outputs mismatch."""
    env = _env()
    tb = await _start(dut, env, p_in=0.7)
    pn = prepare_network(_digital_job(env, [24, 52, 24], [0, [2, 3]], [True, False], "digital weight fault"))
    ch, k, lanes, K = 5, 3, pn.spec.digital.mac_lanes, 24
    chunk = pn.spec.interconnect.link_width_bits // 8
    g, lane = divmod(ch, lanes)
    ws = compile_digital_weights(pn.spec, pn.layers)
    at = (g * K + k) * -(-lanes // chunk) + lane // chunk  # flit of word g*K + k holding the lane
    sh = 8 * (lane % chunk)
    word = ws.flits[at]
    val = (word >> sh) & 0xFF
    val = val - 256 if val >= 128 else val
    assert val == pn.layers[0].w_int8[ch, k] and val != 0
    flits = list(ws.flits)
    flits[at] = (word & ~(0xFF << sh)) | (((-val) & 0xFF) << sh)
    pn.weights = ws._replace(flits=flits)
    res = await tb.run(pn, log=None)
    _save("test_digital_weight_fault", res.as_dict() | {"test": "test_digital_weight_fault", "weight": [ch, k, val]})
    assert res.compared == res.expected_outputs == 6 * 24, res.summary()
    assert res.dac_mismatches > 0 and {tuple(x) for x in res.dac_mismatch_at} == {(1, ch)}, res.dac_mismatch_at
    assert res.mismatches > 0, res.summary()


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_digits_network(dut):
    """The whole network from the placement, checked bit for bit (:func:`_digits`)."""
    await _digits(dut, os.environ.get("AIMC_FAULT", "none"), "test_digits_network")


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def test_digits_fault(dut):
    """The whole network with one conductance code of tile 1 changed behind the bridge only (:func:`_digits`)."""
    await _digits(dut, "conductance", "test_digits_fault")


async def _digits(dut, fault: str, test: str):
    """A whole network from the mapper's placement (``AIMC_PLACEMENT``: JSON file of
    ``archmodel.placement.Placement``; ``tb.network_env.prepare_placed``): images in over AXI4-Stream,
    class scores out, ready low on ~30 % of cycles (seeded) at ``m_axis``, the AXI4-Lite response
    channels (``bready``, ``rready``) and every array port (``dac.ready``; gaps on ``adc.valid`` and on
    ``s_axis.tvalid``), host credit of 2 images in flight. Asserts 0 mismatches with every score compared, every DAC
    code of the analog layer compared (= the digital first layer's outputs), no status flag. With
    ``AIMC_FAULT=conductance`` one conductance code of mapped layer ``AIMC_FAULT_TILE`` (the row with the
    largest mean input, a column that is neither 0 nor clipped) is raised by max |G| behind the bridge only and the test
    asserts that mismatches appear (located in the JSON: ``tap_mismatch_at``, ``dac_mismatch_at``).

    Environment: ``AIMC_DIGITS_IMAGES`` (default 4), ``AIMC_DIGITS_WEIGHTS`` (``trained`` default, or ``seeded``).
    """
    import numpy as np

    from archmodel.placement import LayerPlacement, Placement
    from archmodel.zoo import load_network
    from rtl.regmap import source_tag
    from tb.network_env import digits_images, prepare_placed

    env = _env()
    data = json.loads(Path(os.environ["AIMC_PLACEMENT"]).read_text())
    placement = Placement(data["spec_name"], data["network_name"], data["replicate"],
                          tuple(LayerPlacement(**lp) for lp in data["layers"]))
    n = int(os.environ.get("AIMC_DIGITS_IMAGES", "4"))
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7, p_axil=0.7)
    network = load_network(os.environ.get("AIMC_NETWORK") or placement.network_name)  # a zoo name or a file
    x, labels, split = digits_images(n, env["seed"])
    params, source = None, f"seeded random (standard normal / sqrt(K), seed {env['seed']})"
    if os.environ.get("AIMC_DIGITS_WEIGHTS", "trained") == "trained":
        from archmodel.digits_experiment import train_on_digits
        result, _ = train_on_digits(network, env["seed"], 0.0, 30, None, split=split)
        params = result.params
        source = (f"trained on the digits split of seed {env['seed']} (30 epochs, no weight noise; "
                  f"FP32 test accuracy {result.test_accuracy:.4f})")
    t_inf = float(os.environ.get("AIMC_T_INF", "0"))
    placed = prepare_placed(tb.spec, placement, network, x, seed=env["seed"], params=params, labels=labels,
                            weights_source=source, t_inf_s=t_inf)
    pn = placed.pn
    fault_at = None
    if fault == "conductance":
        li = int(os.environ.get("AIMC_FAULT_TILE", "1"))
        mt = pn.matrices[li]
        # the row with the largest mean input (so the fault shows); the column whose smallest output over the
        # images is largest while its largest stays below 100 (ReLU does not hide a raise, +127 does not clip it)
        row = int(np.argmax(pn.inputs[li].mean(axis=0)))
        home = li + 1 if pn.layers[li].chain_out else li
        cb_out = pn.taps[source_tag(tb.spec, pn.layers[home].tile)]
        col = int(np.argmax(np.where(cb_out.max(axis=0) < 100, cb_out.min(axis=0), -1)))
        mt._g_eff = mt._g_eff.copy()
        mt._g_eff[row, col] += float(np.max(np.abs(mt._g_eff)))  # behind the bridge only; the golden run is done
        fault_at = [li, row, col, source_tag(tb.spec, pn.layers[home].tile)]
    prof = None
    if os.environ.get("AIMC_PROFILE"):
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
    res = await tb.run(pn, credit=2, log=dut._log)
    if prof is not None:
        prof.disable()
        prof.dump_stats(os.environ["AIMC_PROFILE"])
    st1 = await tb.read("digital.status1")
    st2 = await tb.read("digital.status2")
    got = tb.checker.got
    top1_rtl = np.argmax(got, axis=1)
    top1_model = np.argmax(pn.expected, axis=1)
    out = res.as_dict() | {
        "test": test, "images": n, "weights": source, "network": network.name, "t_inf_s": t_inf, "fault": fault,
        "fault_at": fault_at,
        "labels": labels.tolist(), "top1_rtl": top1_rtl.tolist(), "top1_model": top1_model.tolist(),
        "accuracy_rtl": float(np.mean(top1_rtl == labels)), "accuracy_model": float(np.mean(top1_model == labels)),
        "layer_names": placed.layer_names, "layer_kinds": placed.layer_kinds,
        "predicted_cycles": placed.predicted_cycles,
        "digital_cycles": [int(st1["cycles0"]), int(st2["cycles1"])],
        "layer_outputs": [int(o.size) for o in pn.layer_outputs],
        "layer_shapes": [[lp.matrix_rows, lp.matrix_cols] for lp in placement.layers],
        "mac_lanes": tb.spec.digital.mac_lanes,
        "analog_span_cycles": _analog_span(res, n),
    }
    _save(test, out)
    msg = f"seed {res.seed}: {res.summary()}"
    if fault == "none":
        _check(res, test, out)
        assert res.compared == n * 10 and res.dac_compared == n * 64 * 2 and res.tap_compared == n * 64, msg
        assert res.tap_mismatches == 0, msg
        assert (top1_rtl == top1_model).all(), msg
    else:
        assert res.compared == n * 10, msg
        assert res.mismatches > 0 or res.dac_mismatches > 0, msg


def _analog_span(res: NetResult, n: int) -> float | None:
    """Mean cycles per image from the last of the analog layer's tiles to start its MVM (first DAC beat of
    it) to the last of its outputs mirrored to the host: the layer's latency through the arrays, the chain's
    partial sums, the affine units and the mesh, once its input has arrived."""
    if not res.tap_done_cycles or not res.mvm_start_cycles:
        return None
    spans = []
    for v in range(n):
        starts = [s[v] for s in res.mvm_start_cycles if len(s) > v]
        ends = [e[v] for e in res.tap_done_cycles.values() if len(e) > v]
        if starts and ends:
            spans.append(max(ends) - max(starts) + 1)
    return sum(spans) / len(spans) if spans else None


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def test_cnn_network(dut):
    """A whole CNN on the chip, checked bit for bit (:func:`_cnn`; ``AIMC_FAULT`` as there)."""
    await _cnn(dut, os.environ.get("AIMC_FAULT", "none"), "test_cnn_network")


@cocotb.test(timeout_time=2000, timeout_unit="ms")
async def test_cnn_fault(dut):
    """The whole CNN with one of conv1's weight flits negated on its way to the chip (:func:`_cnn`)."""
    await _cnn(dut, "weight", "test_cnn_fault")


async def _cnn(dut, fault: str, test: str):
    """A whole CNN (the network of ``AIMC_PLACEMENT``) on the chip in ONE run, checked bit for bit against
    :mod:`tb.cnn_golden` (archmodel's integer forward), as :func:`tb.cnn_env.prepare_cnn` configures it --
    digits-cnn: conv1 (digital slot 0, 64 vectors per image) -> maxpool (digital node) -> conv2 -> conv3 -> relu3
    over the mesh to the digital node (and mirrored to the host) -> fc (digital slot 1) -> class scores to the host;
    digits-resnet (:mod:`tb.resnet_env`): the stem on slot 0 -> 11 tiles ... tiles 23 / 24 -> the digital node's
    input join (b2_add + global pool) -> fc on slot 1; the host keeps one image in flight (credit 1). Ready low on
    ~30 % of cycles (seeded) at m_axis, the AXI4-Lite responses and every array port. Asserts (no fault): every
    class score and mirrored (tap) value compared, 0 mismatches, every analog tile's DAC beats compared, no
    status flag, RTL top-1 = the model's. ``fault = "weight"``: the first layer's weight flit 1 negated on its way
    to the chip (golden untouched): asserts the DAC mismatches appear first (in layer order) at the tiles of the
    first layer reading its results (conv2; b1_conv1).

    Environment: ``AIMC_PLACEMENT`` (JSON of the mapper's placement, no replication), ``AIMC_CNN_IMAGES``
    (default 2), ``AIMC_CNN_WEIGHTS`` (``seeded`` default, or ``trained``: 30 epochs on the digits split of the
    seed), ``AIMC_CNN_WEIGHT_SEED`` (default 1, digits-resnet 3: tb.cnn_golden's seeded parameters),
    ``AIMC_CNN_T_INF`` (default 3600 s).
    """
    import numpy as np

    from archmodel.datasets import load_digits_split
    from archmodel.placement import LayerPlacement, Placement
    from archmodel.zoo import load_network
    from rtl.register_compiler import compile_digital_weights
    from tb.cnn_env import CNN_T_INF_S, prepare_cnn
    from tb.cnn_golden import cnn_golden, seeded_params

    env = _env()
    n = int(os.environ.get("AIMC_CNN_IMAGES", "2"))
    tb = await _start(dut, env, p_in=0.7, p_out=0.7, p_dac_ready=0.7, p_adc_valid=0.7, p_axil=0.7)
    pl = json.loads(Path(os.environ["AIMC_PLACEMENT"]).read_text())
    placement = Placement(pl["spec_name"], pl["network_name"], pl["replicate"],
                          tuple(LayerPlacement(**lp) for lp in pl["layers"]))
    net = load_network(os.environ.get("AIMC_NETWORK") or placement.network_name)  # a zoo name or a file
    residual = any(layer.op == "add" for layer in net.layers)
    if os.environ.get("AIMC_CNN_WEIGHTS", "seeded") == "trained":
        from archmodel.digits_experiment import train_on_digits
        result, data = train_on_digits(net, env["seed"], 0.0, 30, None)
        params = result.params
        source = (f"trained on the digits split of seed {env['seed']} (30 epochs, no weight noise; FP32 test "
                  f"accuracy {result.test_accuracy:.4f})")
    else:
        wseed = int(os.environ.get("AIMC_CNN_WEIGHT_SEED", "3" if residual else "1"))
        data = load_digits_split(env["seed"])
        params, source = seeded_params(net, wseed), f"seeded (tb.cnn_golden.seeded_params, seed {wseed})"
    t_inf = float(os.environ.get("AIMC_CNN_T_INF", repr(CNN_T_INF_S)))
    g = cnn_golden(tb.spec, net, placement, params, data.x_test[:n], data.x_train[:256], seed=env["seed"],
                   t_inf_s=t_inf)
    cn = prepare_cnn(g)
    f = cn.network
    fault_at = None
    if fault == "weight":
        ws = compile_digital_weights(tb.spec, [lyr for lyr in f.layers if lyr.tile is None])
        link = tb.spec.interconnect.link_width_bits
        k = 1  # flit 1: weight word 0's lanes 4.. (conv1 / the stem is 9 x 16: every word is used)
        flits = list(ws.flits)
        lanes = [((flits[k] >> (8 * i)) & 0xFF) for i in range(link // 8)]
        flits[k] = sum((((-((v ^ 0x80) - 0x80)) & 0xFF) << (8 * i)) for i, v in enumerate(lanes))
        f.weights = ws._replace(flits=flits)
        fault_at = {"flit": k, "layer": cn.layer_names[0]}
    res = await tb.run(f, log=dut._log, credit=1)
    st1 = await tb.read("digital.status1")
    st2 = await tb.read("digital.status2")
    scores = np.asarray(tb.checker.got)
    top1_rtl = np.argmax(scores, axis=1) if scores.shape == g.scores.shape else np.full(n, -1)
    # which layers' tiles saw wrong DAC codes (where a fault shows)
    dac_layers = list(dict.fromkeys(f.layers[li].name.split("[")[0]
                                    for li in sorted({li for li, _ in res.dac_mismatch_at})))  # in layer order
    first = f.layers[0]
    out = {
        "test": test, "images": n, "weights": source, "seed": env["seed"], "network": net.name, "fault": fault,
        "fault_at": fault_at, "run": res.as_dict(), "residual": cn.residual, "first_reader": cn.first_reader,
        "labels": data.y_test[:n].tolist(), "top1_rtl": top1_rtl.tolist(), "top1_model": g.top1.tolist(),
        "layer_names": cn.layer_names, "layer_kinds": cn.layer_kinds, "predicted_cycles": cn.predicted_cycles,
        "pixels": cn.pixels, "pace_notes": cn.pace_notes, "t_inf_s": t_inf,
        "conv1_cycles": int(st1["cycles0"]), "fc_cycles": int(st2["cycles1"]),
        "first_dests": len(first.dests),  # flits per first-layer pixel on the digital node's output link
        "first_flits_per_pixel": len(first.dests) * -(-first.n_cols // tb.params.rows_per_dac_beat)
        * -(-tb.tag_bits // tb.link_bits),
        "mvm_start_cycles": res.mvm_start_cycles, "tiles": [lyr.tile for lyr in f.layers],
        "tile_layers": [lyr.name.split("[")[0] for lyr in f.layers],
        "first_mismatches": res.first_mismatches[:8], "dac_mismatch_layers": dac_layers,
    }
    _save(test, out)
    if fault == "none":
        _check(res, test, out)
        taps = sum(int(v.size) for v in f.taps.values())
        assert res.compared == n * 10 and res.tap_compared == taps, res.summary()
        assert (top1_rtl == g.top1).all(), f"top-1 RTL {top1_rtl} != model {g.top1}"
    else:
        assert res.dac_mismatches > 0 and dac_layers[0] == cn.first_reader, res.summary() + f" at {dac_layers}"


def _check_digital_only(res: NetResult) -> None:
    """A run whose only outputs are the digital datapath's: every output compared, none extra, no flag."""
    msg = f"seed {res.seed}: {res.summary()}"
    assert res.mismatches == 0 and res.compared == res.expected_outputs, msg
    assert res.extra_outputs == 0 and res.format_errors == 0 and res.axil_errors == 0, msg
    assert not any(res.flags.values()), msg + f", flags {[k for k, v in res.flags.items() if v]}"
