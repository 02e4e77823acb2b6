"""Tile-level co-simulation environment: job, reference model, driver, monitor, checker.

Structure (after cocotb's ``examples/matrix_multiplier``)::

    TileJob ──prepare()──► PreparedJob: AnalogMatrix (programmed, drifted),
                           affine coefficients, expected int8 outputs (reference model)
    Testbench(dut, prepared)
      ├─ driver    : configuration ports, coefficient writes, start/stop, act beats
      ├─ bridge    : tb.bridge.PCMArrayBridge on the array port (same AnalogMatrix)
      ├─ monitor   : tb.streams.StreamSink on ``out`` (optional random back-pressure)
      └─ checker   : in-order compare of (column, data, last) with the reference;
                     counts compared items and mismatches

Reference model (the golden run, same seed): ``golden.tile_controller.dac_codes`` of every
input vector -> ``AnalogMatrix.mvm_partial_sums`` (batched, MVM index = vector
index) -> ``golden.affine.affine_requantize`` with the integer coefficients the
driver writes into the RTL. The bridge answers each MVM with
``AnalogMatrix.array_adc_codes`` of the same matrix, so the co-simulation also
checks that one-array-at-a-time and batched evaluation agree.

Randomness: everything is drawn from the job's ``seed``:
``default_rng([seed, 0])`` for weights, inputs and biases (job builders),
``default_rng([seed, 1])`` for programming noise and drift, ``noise_seed =
seed`` for per-MVM output noise, ``default_rng([seed, 2])`` for the random
stalls of the testbench.

ADC range (:func:`prepare`): with the chip's ``calibration.adc_range: per_layer``
(the presets' default) the layer's ADC full scale is measured on the job's own
seeded input vectors right after programming, before drift -- a structure-only
job has no calibration images -- with the accuracy path's contract,
:func:`archmodel.calibration.adc_range_from_currents` (5 sigma of the column
currents, the same full scale for every row block), and set on the
:class:`~archmodel.analog_matrix.AnalogMatrix` the bridge answers from
(``set_adc_full_scale``); ``fixed`` keeps ``array.adc_full_scale_fraction``.

Affine coefficients (:func:`prepare`): the real per-column multiplier from
:func:`archmodel.golden.coefficients.analog_affine_multiplier` (conductance scale, DAC/ADC
LSBs, the matrix's ADC full-scale fraction, GDC alpha measured with :mod:`archmodel.calibration` when the matrix
has drifted), the bias folded with :func:`archmodel.golden.coefficients.folded_offset`, an
output scale chosen so that the 99th percentile of ``|y|`` maps to 100 (some
outputs saturate), quantized by :func:`archmodel.golden.coefficients.quantize_affine`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archmodel import calibration, timing
from archmodel.analog_matrix import AnalogMatrix
from archmodel.golden.affine import AffineCoefficients
from archmodel.golden.coefficients import analog_affine_multiplier, folded_offset, quantize_affine
from archmodel.golden.digital import im2col, kernel_matrix
from archmodel.golden.tile_controller import block_counts, dac_codes
from archmodel.network.ir import Layer
from archmodel.spec import ChipSpec, load_spec
from rtl.affine import result_layout
from rtl.params import TileParams
from rtl.tile_controller import act_beat_layout, index_shape

__all__ = ["PreparedJob", "Testbench", "TileJob", "conv_job", "layer_job", "prepare",
           "random_job", "resolve_spec"]


# ======================================================================== job


def resolve_spec(arch: str, changes: dict[str, Any] | None = None) -> ChipSpec:
    """``load_spec(arch)`` with dotted-path ``changes`` applied (``ChipSpec.replace``)."""
    spec = load_spec(arch)
    return spec.replace(**changes) if changes else spec


@dataclass
class TileJob:
    """One analog layer to co-simulate on one tile (plain data; saved to / loaded from ``.npz``).

    Attributes
    ----------
    name : str
        Label for reports.
    arch : str
        Chip description: preset name or YAML path.
    changes : dict
        Dotted-path changes applied to it (``ChipSpec.replace``).
    seed : int
        Seed of every draw (module docstring).
    t_inf_s : float or None
        Drift time after programming in s (None: conductances as programmed,
        no read noise; 0: read noise only).
    weights : ndarray (K, N), float64
        Weight matrix (im2col rows x output columns).
    x : ndarray (B, K), int64
        int8 input vectors, one per MVM step (output pixel).
    bias : ndarray (N,), float64
        Bias in real output units (before the output scale).
    relu : bool
    in_scale : float
        Real value of one input int8 step.
    """

    name: str
    arch: str
    changes: dict[str, Any]
    seed: int
    t_inf_s: float | None
    weights: np.ndarray
    x: np.ndarray
    bias: np.ndarray
    relu: bool = True
    in_scale: float = 1.0 / 64

    def save(self, path: str | Path) -> Path:
        """Write the job to ``path`` (``.npz``); returns the path."""
        path = Path(path)
        meta = {"name": self.name, "arch": self.arch, "changes": self.changes, "seed": self.seed,
                "t_inf_s": self.t_inf_s, "relu": self.relu, "in_scale": self.in_scale}
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez(tmp, weights=self.weights, x=self.x, bias=self.bias, meta=np.array(json.dumps(meta)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> TileJob:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            return cls(weights=f["weights"], x=f["x"], bias=f["bias"], **meta)


@dataclass
class PreparedJob:
    """A job made ready to run: chip description, matrix, coefficients, expected outputs."""

    job: TileJob
    spec: ChipSpec
    params: TileParams
    matrix: AnalogMatrix
    n_row_blocks: int
    n_col_blocks: int
    coefs: AffineCoefficients
    psums: np.ndarray       # (B, N) partial sums (reference)
    expected: np.ndarray    # (B, N) int8 outputs (reference)
    gdc_alpha: float = 1.0
    adc_range: str = "fixed"           # the chip's calibration.adc_range
    adc_full_scale_ua: float = 0.0     # the layer's ADC full scale I_fs, µA (matrix.i_fs_ua)
    adc_full_scale_fraction: float = 0.0  # I_fs / (rows · devices_per_polarity · g_max · V_read)

    @property
    def k(self) -> int:
        return int(self.job.weights.shape[0])

    @property
    def n(self) -> int:
        return int(self.job.weights.shape[1])

    @property
    def n_vectors(self) -> int:
        return int(self.job.x.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.expected.size)


def prepare(job: TileJob) -> PreparedJob:
    """Program the matrix, drift it, derive the affine coefficients and the expected outputs.

    Raises
    ------
    ValueError
        If the layer does not fit one tile of the chip description.
    """
    spec = resolve_spec(job.arch, job.changes)
    p = TileParams.from_spec(spec)
    w = np.asarray(job.weights, dtype=np.float64)
    x = np.asarray(job.x, dtype=np.int64)
    k, n = w.shape
    if x.ndim != 2 or x.shape[1] != k:
        raise ValueError(f"x must have shape (B, {k}), got {x.shape}")
    n_rb, n_cb = block_counts(k, n, p.array_rows, p.array_cols)
    if n_rb * n_cb > p.arrays_per_tile:
        raise ValueError(f"a {k} x {n} matrix needs {n_rb} x {n_cb} = {n_rb * n_cb} arrays of "
                         f"{p.array_rows} x {p.array_cols}; one tile of '{spec.name}' has "
                         f"array.arrays_per_tile = {p.arrays_per_tile}")
    rng = np.random.default_rng([job.seed, 1])
    matrix = AnalogMatrix(spec, noise_seed=job.seed).program(w, rng)
    frac = spec.array.adc_full_scale_fraction  # adc_range: fixed (exactly the chip's value)
    if spec.calibration.adc_range == "per_layer":  # on the seeded stimulus, right after programming
        matrix.set_adc_full_scale(calibration.adc_range_from_currents(matrix, x))
        frac = matrix.adc_full_scale_fraction
    alpha = 1.0
    if job.t_inf_s is not None:
        cal = calibration.gdc_calibration_inputs(spec.calibration.gdc_input, spec.calibration.gdc_vectors, k,
                                                 seed=job.seed)
        ref = calibration.gdc_reference(matrix, cal)
        matrix.drift(float(job.t_inf_s), rng)
        alpha = float(calibration.gdc_alpha(matrix, cal, ref))
    d = dac_codes(x, spec.array.dac_bits)
    psums = matrix.mvm_partial_sums(d, 0)
    a = spec.array
    m = analog_affine_multiplier(
        in_scale=job.in_scale, out_scale=1.0, w_abs_max=matrix.w_abs_max, g_max_us=spec.device.g_max_us,
        v_read_v=a.v_read_v, array_rows=a.rows, adc_bits=a.adc_bits, dac_bits=a.dac_bits,
        adc_full_scale_fraction=frac, gdc_alpha=alpha)
    bias = np.asarray(job.bias, dtype=np.float64)
    y = psums * m + bias
    out_scale = float(np.percentile(np.abs(y), 99)) / 100.0
    if not math.isfinite(out_scale) or out_scale <= 0:
        out_scale = 1.0
    coefs = quantize_affine(np.broadcast_to(m / out_scale, (n,)), folded_offset(bias, out_scale=out_scale),
                                   relu=bool(job.relu), scale_bits=p.scale_bits, offset_bits=p.offset_bits,
                                   max_shift=min(p.max_shift, 62))
    expected = coefs.apply(psums, acc_bits=p.acc_bits, scale_bits=p.scale_bits, offset_bits=p.offset_bits)
    return PreparedJob(job=job, spec=spec, params=p, matrix=matrix, n_row_blocks=n_rb, n_col_blocks=n_cb,
                       coefs=coefs, psums=psums, expected=expected, gdc_alpha=alpha,
                       adc_range=spec.calibration.adc_range, adc_full_scale_ua=float(matrix.i_fs_ua),
                       adc_full_scale_fraction=float(frac))


def random_job(arch: str, k: int, n: int, n_vectors: int, seed: int, *, changes: dict[str, Any] | None = None,
               t_inf_s: float | None = 0.0, relu: bool = True, name: str | None = None) -> TileJob:
    """A K x N matrix of normal weights and ``n_vectors`` uniform int8 vectors (extremes in vector 0)."""
    rng = np.random.default_rng([seed, 0])
    w = rng.standard_normal((k, n))
    x = rng.integers(-128, 128, (n_vectors, k))
    x[0, ::2], x[0, 1::2] = 127, -128
    bias = rng.normal(0.0, 0.5, n)
    return TileJob(name or f"random {k}x{n}", arch, dict(changes or {}), int(seed), t_inf_s, w, x, bias, relu)


def conv_job(arch: str, c_in: int, c_out: int, hw: int, seed: int, *, kernel: int = 3, padding: int = 1,
             stride: int = 1, changes: dict[str, Any] | None = None, t_inf_s: float | None = 0.0,
             weights: np.ndarray | None = None, bias: np.ndarray | None = None, name: str | None = None) -> TileJob:
    """A convolution layer: random int8 (C_in, hw, hw) image, im2col (``golden.digital.im2col``) -> one vector per pixel.

    ``weights`` (OIHW) default to normal draws; the matrix is ``golden``'s tap-major im2col order
    (``golden.digital.kernel_matrix``).
    """
    rng = np.random.default_rng([seed, 0])
    w4 = rng.standard_normal((c_out, c_in, kernel, kernel)) if weights is None else np.asarray(weights, float)
    img = rng.integers(-128, 128, (c_in, hw, hw))
    cols = im2col(img, kernel, stride, padding)
    wm = kernel_matrix(w4)
    b = rng.normal(0.0, 0.5, c_out) if bias is None else np.asarray(bias, float)
    return TileJob(name or f"conv{kernel}x{kernel} {c_in}->{c_out} {hw}x{hw}", arch, dict(changes or {}),
                   int(seed), t_inf_s, wm, cols.T.copy(), b, True)


def layer_job(arch: str, layer: Layer, seed: int, *, changes: dict[str, Any] | None = None,
              t_inf_s: float | None = 0.0, name: str | None = None) -> TileJob:
    """The job of one conv / linear layer of a network (weights random from ``seed`` if it has none).

    Inputs are random int8 from ``seed``: an input tensor of the layer's shape,
    unfolded with ``golden.digital.im2col`` (conv), or one vector (linear). One input
    vector per output pixel, as the mapper counts MVMs.

    Raises
    ------
    ValueError
        Not a conv / linear layer, or a grouped convolution.
    """
    if layer.op not in ("conv", "linear"):
        raise ValueError(f"layer {layer.name!r} ({layer.op}) is not a conv or linear layer")
    if layer.groups != 1:
        raise ValueError(f"layer {layer.name!r} is a grouped convolution (groups = {layer.groups}); "
                         "the tile co-simulation runs one matrix per tile")
    rng = np.random.default_rng([seed, 0])
    k, n = layer.matrix_shape
    wparam = layer.params.get("weight")
    bparam = layer.params.get("bias")
    if layer.op == "conv":
        c_in, h, wd = layer.input_shapes[0]
        kh, kw = layer.attrs["kernel_size"]
        w4 = rng.standard_normal((n, c_in, kh, kw)) if wparam is None else np.asarray(wparam, float)
        img = rng.integers(-128, 128, (c_in, h, wd))
        cols = im2col(img, (kh, kw), layer.attrs["stride"], layer.attrs["padding"],
                             layer.attrs["dilation"])
        wm = kernel_matrix(w4)
        x = cols.T.copy()
    else:
        wm = rng.standard_normal((k, n)) if wparam is None else np.asarray(wparam, float).T
        x = rng.integers(-128, 128, (1, k))
    if not np.any(wm):
        wm = rng.standard_normal((k, n))
    b = rng.normal(0.0, 0.5, n) if bparam is None else np.asarray(bparam, float)
    return TileJob(name or layer.name, arch, dict(changes or {}), int(seed), t_inf_s, wm, x, b, True)


def layer_vector_cycles(spec: ChipSpec, k: int, n: int) -> int:
    """The mapper's stage time per vector of a ``k x n`` matrix on one tile: ``timing.tile_vector_cycles``
    over its ``ceil(k/rows) x ceil(n/cols)`` arrays (column key = column block)."""
    a = spec.array
    return timing.tile_vector_cycles(spec, [(cb, min(a.rows, k - rb * a.rows), min(a.cols, n - cb * a.cols))
                                            for cb in range(-(-n // a.cols)) for rb in range(-(-k // a.rows))])


# ======================================================================== testbench


@dataclass
class RunResult:
    """Outcome of one run of a job on the tile (counts and cycles)."""

    name: str
    seed: int
    expected_outputs: int
    compared: int = 0
    mismatches: int = 0
    extra_outputs: int = 0
    protocol_errors: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    mvms: int = 0
    array_cycles: int = 0          # first DAC beat .. the cycle a next MVM could start
    predicted_cycles: int = 0      # n_vectors * sum of timing.mvm_cycles (the mapper's t_pixel sum)
    total_cycles: int = 0          # start pulse .. last output, inclusive
    # steady-state stage time per vector: spacing of successive vectors' last outputs, averaged from the
    # first vector's to the last one's (0.0 with fewer than 2 vectors); what timing.tile_vector_cycles predicts
    vector_cycles: float = 0.0
    predicted_vector_cycles: int = 0   # timing.tile_vector_cycles of the layer on this tile
    adc_range: str = ""                # the chip's calibration.adc_range (PreparedJob)
    adc_full_scale_ua: float = 0.0     # the layer's ADC full scale, µA
    adc_full_scale_fraction: float = 0.0
    first_mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.mismatches == 0 and self.compared == self.expected_outputs and self.extra_outputs == 0
                and self.protocol_errors == 0 and not any(self.flags.values()))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Testbench:
    """Driver, bridge, monitor and checker of :class:`rtl.tile.Tile` (module docstring).

    Parameters
    ----------
    dut : cocotb handle
        A :class:`rtl.tile.Tile` top.
    clock : tb.streams.CycleClock
        Its clock (already started).
    seed : int
        Seed of the random stalls.
    p_act_valid, p_out_ready, p_dac_ready, p_adc_valid : float
        Stall probabilities (1.0 = none: the timing contract of the mapper).
    fault_mvm : int, optional
        Fault injection in the bridge (see :class:`tb.bridge.PCMArrayBridge`).
    """

    def __init__(self, dut: Any, clock: Any, *, seed: int = 0, p_act_valid: float = 1.0,
                 p_out_ready: float = 1.0, p_dac_ready: float = 1.0, p_adc_valid: float = 1.0,
                 fault_mvm: int | None = None):
        self.dut, self.clock = dut, clock
        self.fault_mvm = fault_mvm
        self.rng = np.random.default_rng([seed, 2])
        self.p = dict(act=p_act_valid, out=p_out_ready, dac=p_dac_ready, adc=p_adc_valid)
        self.tasks: list = []

    # ------------------------------------------------------------------ low-level
    async def reset(self, cycles: int = 2) -> None:
        """Cancel the stream coroutines, drive every input idle, assert ``rst`` for ``cycles`` cycles."""
        from cocotb.triggers import ClockCycles

        for t in self.tasks:
            t.cancel()
        self.tasks = []
        await self.clock.edge
        d = self.dut
        # the mesh partial-sum chain is idle at tile level (the top-level co-simulation covers it)
        for name in ("act__valid", "adc__valid", "start", "stop", "coef_we", "aff_clear", "chain_in", "chain_out",
                     "psum_in__valid", "psum_out__ready"):
            getattr(d, name).value = 0
        d.out__ready.value = 0
        d.dac__ready.value = 0
        d.rst.value = 1
        await ClockCycles(self.clock.clk, cycles)
        d.rst.value = 0
        await self.clock.edge

    async def pulse(self, name: str) -> None:
        getattr(self.dut, name).value = 1
        await self.clock.edge
        getattr(self.dut, name).value = 0

    async def configure(self, pj: PreparedJob, *, mode: int = 1, k: int | None = None, n: int | None = None,
                        n_rb: int | None = None, n_cb: int | None = None) -> None:
        """Write the affine coefficients (one column per cycle) and the layer configuration."""
        d, c = self.dut, pj.coefs
        d.coef_we.value = 1
        for j in range(pj.n):
            d.coef_addr.value = j
            d.coef_scale.value = int(c.scale[j])
            d.coef_offset.value = int(c.offset[j])
            await self.clock.edge
        d.coef_we.value = 0
        d.shift.value = int(c.shift)
        d.relu.value = int(c.relu)
        d.k_rows.value = pj.k if k is None else k
        d.n_cols.value = pj.n if n is None else n
        d.n_row_blocks.value = pj.n_row_blocks if n_rb is None else n_rb
        d.n_col_blocks.value = pj.n_col_blocks if n_cb is None else n_cb
        d.mode.value = mode
        await self.clock.edge

    def act_beats(self, pj: PreparedJob) -> list[dict]:
        """``act`` beats of every input vector (lanes beyond K hold random garbage: ignored by the RTL)."""
        rpb = pj.params.rows_per_dac_beat
        beats = []
        for xv in pj.job.x:
            nb = -(-pj.k // rpb)
            for i in range(nb):
                lanes = [int(v) for v in xv[i * rpb:(i + 1) * rpb]]
                lanes += [int(v) for v in self.rng.integers(-128, 128, rpb - len(lanes))]
                beats.append({"data": lanes, "last": int(i == nb - 1)})
        return beats

    # ------------------------------------------------------------------ one run
    async def run(self, pj: PreparedJob, *, timeout_cycles: int | None = None,
                  abort_after_outputs: int | None = None, log: Any = None) -> RunResult:
        """Run every input vector of ``pj`` through the tile and check every output.

        With ``abort_after_outputs`` the run stops (returns, leaving the
        coroutines running) once that many outputs were compared: the caller
        then resets the design in the middle of the transfer.
        """
        import cocotb
        from cocotb.triggers import ClockCycles, Event, ReadOnly, SimTimeoutError, with_timeout

        from tb.bridge import PCMArrayBridge
        from tb.streams import StreamPort, StreamSink, StreamSource

        d, clock, p = self.dut, self.clock, pj.params
        res = RunResult(pj.job.name, pj.job.seed, pj.n_outputs,
                        predicted_cycles=pj.n_vectors * timing.layer_mvm_cycles(pj.spec, pj.k, pj.n),
                        adc_range=pj.adc_range, adc_full_scale_ua=pj.adc_full_scale_ua,
                        adc_full_scale_fraction=pj.adc_full_scale_fraction)
        want = pj.expected.reshape(-1)
        want_col = np.tile(np.arange(pj.n), pj.n_vectors)
        want_last = (want_col == pj.n - 1).astype(int)
        enough = Event()
        target = pj.n_outputs if abort_after_outputs is None else abort_after_outputs
        last_out_cycle = [0]
        vector_end_cycles: list[int] = []
        lanes = p.affine_lanes

        def check_beat(beat: dict, cycle: int) -> None:
            # a beat of ``affine_lanes`` results (rtl.affine.result_layout): one check per column
            if lanes == 1:
                check(beat, cycle)
                return
            cnt = int(beat["count"])
            if not 1 <= cnt <= lanes:
                res.protocol_errors += 1
                return
            for k in range(cnt):
                check({"column": beat["column"] + k, "data": beat["data"][k],
                       "last": beat["last"] if k == cnt - 1 else 0}, cycle)

        def check(beat: dict, cycle: int) -> None:
            if beat["last"]:
                vector_end_cycles.append(cycle)
            i = res.compared
            if i >= pj.n_outputs:
                res.extra_outputs += 1
                return
            got = (beat["column"], beat["data"], beat["last"])
            exp = (int(want_col[i]), int(want[i]), int(want_last[i]))
            res.compared += 1
            if got != exp:
                res.mismatches += 1
                if len(res.first_mismatches) < 10:
                    res.first_mismatches.append(f"output {i} (vector {i // pj.n}): got (column, data, last) "
                                                f"{got}, expected {exp}")
            last_out_cycle[0] = cycle
            if res.compared >= target:
                enough.set()

        await self.configure(pj, mode=1 if pj.n_vectors > 1 else 0)
        bridge = PCMArrayBridge(d, clock, pj.spec, pj.matrix, rng=self.rng,
                                p_dac_ready=self.p["dac"], p_adc_valid=self.p["adc"], fault_mvm=self.fault_mvm)
        out_port = StreamPort(d, "out", result_layout(index_shape(p.max_cols), p.affine_lanes))
        sink = StreamSink(out_port, clock, self.rng, self.p["out"], on_beat=check_beat)
        act = StreamSource(StreamPort(d, "act", act_beat_layout(p)), clock, self.rng, self.p["act"])
        for beat in self.act_beats(pj):
            act.put(beat)
        self.tasks = [cocotb.start_soon(bridge.run()), cocotb.start_soon(sink.run())]
        start_cycle = clock.cycle()
        await self.pulse("start")
        self.tasks.append(cocotb.start_soon(act.run()))
        if timeout_cycles is None:
            timeout_cycles = 4 * res.predicted_cycles + 50 * pj.n_vectors * max(pj.n, 8) + 2000
            if min(self.p.values()) < 1:
                timeout_cycles *= 8
        period = clock.period_ns

        async def feed_then_stop() -> None:
            while not act.idle:
                await ClockCycles(clock.clk, 8)
            await self.pulse("stop")

        if pj.n_vectors > 1:
            self.tasks.append(cocotb.start_soon(feed_then_stop()))
        try:
            await with_timeout(enough.wait(), timeout_cycles * period, "ns")
        except SimTimeoutError as exc:  # report what was seen, then fail
            raise AssertionError(f"seed {pj.job.seed}: timeout after {timeout_cycles} cycles: "
                                 f"{res.compared}/{pj.n_outputs} outputs, {bridge.stats.mvms} MVMs") from exc
        res.mvms = bridge.stats.mvms
        if abort_after_outputs is not None:
            return res
        # nothing more comes out, and the controller goes idle with done
        await ClockCycles(clock.clk, 16 + p.adc_beats_per_block)
        await ReadOnly()
        res.flags = {name: int(getattr(d, name).value) for name in
                     ("err_config", "err_act_last", "err_adc_last", "err_chain")}
        res.flags["not_done"] = int(not d.done.value)
        res.flags["busy"] = int(d.busy.value) | int(d.aff_busy.value)
        res.flags["vector_count"] = int(int(d.vector_count.value) != pj.n_vectors % (1 << 16))
        res.protocol_errors = bridge.stats.protocol_errors
        res.mvms = bridge.stats.mvms
        st = bridge.stats
        if st.first_dac_cycle is not None and st.last_adc_cycle is not None:
            res.array_cycles = st.last_adc_cycle + 3 - st.first_dac_cycle
        res.total_cycles = last_out_cycle[0] + 1 - start_cycle
        if len(vector_end_cycles) >= 2:
            res.vector_cycles = (vector_end_cycles[-1] - vector_end_cycles[0]) / (len(vector_end_cycles) - 1)
        res.predicted_vector_cycles = layer_vector_cycles(pj.spec, pj.k, pj.n)
        await clock.edge
        for t in self.tasks:
            t.cancel()
        self.tasks = []
        d.out__ready.value = 0
        if log is not None:
            log.info("%s: seed %d, %d/%d outputs compared, %d mismatches, %d MVMs, array cycles %d "
                     "(predicted %d), total cycles %d", res.name, res.seed, res.compared, res.expected_outputs,
                     res.mismatches, res.mvms, res.array_cycles, res.predicted_cycles, res.total_cycles)
            for line in res.first_mismatches + st.errors:
                log.error("%s", line)
        return res
