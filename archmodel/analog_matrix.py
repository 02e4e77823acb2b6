"""Analog matrix model: one layer's weight matrix on many PCM arrays (DAC -> arrays -> ADC -> partial sums).

Data path (docs/design.md, "Data path of one analog layer")::

    int8 activations x ──► DAC codes d (signed, dac_bits)      golden.tile_controller.dac_codes
      ──► V_i = d_i · V_lsb,        V_lsb = v_read_v / 2^(dac_bits-1)        [V]
      ──► I_j = Σ_i V_i · G_ij,     G = Σ_devices (g⁺ − g⁻)                   [µA]
          (+ output noise σ = output_noise_fraction · I_fs, keyed by MVM index)
      ──► ADC code a_j = sat_adc(rint(I_j / I_fs · 2^(adc_bits-1)))
      ──► partial sums of the row blocks added as integers   golden.affine.accumulate_partial_sums

with ``I_fs`` the ADC full scale (``ChipSpec.adc_full_scale_ua``).

Weights -> conductances (docs/design.md, PCM device model)
-----------------------------------------------------
One conductance scale per **layer**: ``s = g_max / max|W|`` (µS per weight
unit, max over the whole matrix); with ``mapping.weight_scaling: per_column``
one per column, ``s_j = g_max / max_i |W_ij|`` (aihwkit's per-column weight
scaling; ``golden.coefficients.weight_abs_max``), folded into the per-column
affine multiplier. Each weight uses ``devices_per_weight``
devices, half on each side; every device of a side gets the same target
``g⁺_T = clip(W·s, 0, g_max)``, ``g⁻_T = clip(−W·s, 0, g_max)``; the devices of
the other sign are programmed to 0 (they still get programming noise). The
currents of the devices of one side add, so the effective weight conductance
is ``G = Σ g⁺ − Σ g⁻ ≈ n_pp · W · s`` with ``n_pp = devices_per_weight / 2``.

Splitting over arrays
---------------------
A (K × N) matrix is split into ``ceil(K/rows)`` row blocks and ``ceil(N/cols)``
column blocks (golden.tile_controller.tile_schedule gives the hardware order). Each row block
is integrated and converted by its own array; the partial sums of the row
blocks add as integers after the ADC.

Exactness and determinism
-------------------------
Conductances are held on a grid of ``2^-24`` µS (assumed; 6e-8 µS, far below
any device noise). DAC codes are integers, so every product and every partial
sum of the MVM is an integer multiple of ``2^-24`` below ``2^53``: the float64
matrix product is *exact*, whatever the BLAS summation order. Batched and
one-at-a-time MVMs therefore give identical ADC codes. Per-MVM output noise is
keyed by (noise_seed, array index, MVM index) (docs/design.md), so it also does not
depend on batching: MVM ``m`` of array ``a`` takes row ``m % NOISE_BLOCK_MVMS``
of the standard normals ``Generator(PCG64(SeedSequence([noise_seed, a,
m // NOISE_BLOCK_MVMS]))).standard_normal((NOISE_BLOCK_MVMS, C))`` (C = the
array's columns in use). Drawing a block of MVMs per generator keeps batched
evaluation fast; a drawn block is kept (bounded cache, :meth:`AnalogMatrix._noise_block`),
so one-vector calls reuse it rather than building a generator per MVM.

Read noise per block of MVMs
----------------------------
``drift(t, rng)`` draws one read-noise sample for every device and keeps it for
every later MVM (the wave-1 behaviour). ``drift(t, read_noise_key=key)`` instead
redraws it for every block of :data:`READ_NOISE_BLOCK_MVMS` MVMs: MVM ``m`` reads
the conductances ``max(g_d + σ·z, 0)`` with ``z = Generator(PCG64(SeedSequence([*key,
m // READ_NOISE_BLOCK_MVMS]))).standard_normal((2, n_pp, K, N))`` (``g_d`` and
``σ``: :meth:`archmodel.pcm.PCMDeviceModel.drift_mean`). The key carries (seed,
draw, layer, time index), so MVMs with different indices -- test images,
AdaBS images, calibration vectors -- see independent read noise, and a batch
gives the same codes as one MVM at a time (each block's conductances are exact on
the grid). Assumed: 1/f noise is correlated over nearby reads, so one sample per
block of 1,024 MVMs (~0.25 ms of reads) is a coarse but unbiased stand-in.

Drift bookkeeping
-----------------
``device.drift_bookkeeping: per_device`` (default): every programmed device
drifts from its own programmed conductance with its own ν and reads its own
noise. ``net_weight_resplit`` follows aihwkit's inference tile
(``InferenceTileWithPeriphery``/``BaseNoiseModel``: programming noise on the pair,
``convert_back_to_weights``, then the programmed net weight re-split onto
conductances before ``apply_drift_noise_to_conductance``): the programmed net
``Σ g⁺ − Σ g⁻`` is put on device 0 of its sign (the other devices at 0 µS), which
keeps its ν (drawn from its target at programming), and drift and read noise
apply to that. Exact for one device per polarity; with more, the net sits on
one device (may exceed g_max; assumed).

ADC full scale
--------------
``I_fs`` is ``ChipSpec.adc_full_scale_ua`` (``calibration.adc_range: fixed``)
unless :meth:`AnalogMatrix.set_adc_full_scale` sets a per-layer value
(``per_layer``: ``archmodel.calibration.adc_range_from_currents``), the same for
every row block; :attr:`AnalogMatrix.adc_full_scale_fraction` is the matching
fraction for the affine coefficients (``golden.coefficients.analog_affine_multiplier``).

Random draws: ``program`` and ``drift`` draw through the caller's
``numpy.random.Generator``, once for all devices of the layer, in the order of
:mod:`archmodel.pcm` on an array of shape ``(2, n_pp, K, N)`` (index 0 = G⁺).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from archmodel.fixedpoint import CLIP_UFUNC as _CLIP
from archmodel.fixedpoint import check_range
from archmodel.golden.affine import accumulate_partial_sums
from archmodel.golden.coefficients import weight_abs_max
from archmodel.golden.tile_controller import dac_codes
from archmodel.pcm import PCMDeviceModel, ProgrammedDevices, get_statistics
from archmodel.spec import ChipSpec, SpecError

__all__ = ["G_GRID_US", "NOISE_BLOCK_MVMS", "READ_NOISE_BLOCK_MVMS", "AnalogMatrix", "device_model_from_spec"]

#: MVMs whose output noise one generator draws (assumed; see module docstring).
NOISE_BLOCK_MVMS = 64
#: MVMs that share one draw of the read noise when it is keyed (assumed; see module docstring).
READ_NOISE_BLOCK_MVMS = 1024

#: Memory budget of the cached read-noise blocks of one matrix (a pure cache; at least 4 blocks kept).
_READ_CACHE_BYTES = 64 << 20
#: Memory budget of the cached output-noise blocks of one matrix (a pure cache; at least 4 blocks kept).
_NOISE_CACHE_BYTES = 16 << 20
_NDARRAY, _DOT, _MATMUL, _RINT, _MULTIPLY, _INT64 = np.ndarray, np.dot, np.matmul, np.rint, np.multiply, np.dtype(np.int64)
_ADD = np.add

#: Attributes whose assignment keeps :meth:`AnalogMatrix._fast_constants`'s cache (every other assignment clears it).
_FAST_KEEPS = frozenset({"_fast", "_read_cache", "_noise_cache"})

#: Conductance grid in µS (assumed): keeps the float64 MVM exact (see module docstring).
G_GRID_US = 2.0**-24


def device_model_from_spec(spec: ChipSpec, *, fixed_nu: float | None = None, ideal: bool = False) -> PCMDeviceModel:
    """The :class:`~archmodel.pcm.PCMDeviceModel` of a chip description's ``device`` section.

    Parameters
    ----------
    spec : ChipSpec
        Chip description (``device.model``, ``g_max_us``, ``t0_s``, ``t_read_s``, scales).
    fixed_nu : float, optional
        Give every device exactly this drift exponent (GDC tests).
    ideal : bool
        No programming noise, no drift, no read noise.

    Raises
    ------
    SpecError
        ``device.model`` is ``none`` (no PCM device model applies, e.g. ReRAM ISAAC).
    """
    d = spec.device
    if d.model == "none":
        raise SpecError(f"chip '{spec.name}': device.model is 'none' (no PCM device model applies to this "
                        "chip); accuracy and drift need a PCM device model ('joshi2020' or 'hermes')")
    stats = get_statistics(d.model, g_max_us=d.g_max_us, t0_s=d.t0_s, t_read_s=d.t_read_s)
    if ideal:
        return PCMDeviceModel.ideal(stats)
    return PCMDeviceModel(
        stats,
        prog_noise_scale=d.prog_noise_scale,
        drift_scale=d.drift_scale,
        read_noise_scale=d.read_noise_scale,
        fixed_nu=fixed_nu,
    )


class AnalogMatrix:
    """One layer's (K × N) weight matrix programmed on the PCM arrays of a chip description.

    Parameters
    ----------
    spec : ChipSpec
        Chip description: array size, DAC/ADC, device model.
    device_model : PCMDeviceModel, optional
        Defaults to :func:`device_model_from_spec`.
    noise_seed : int
        Seed of the per-MVM output noise (used only when
        ``array.output_noise_fraction > 0``).
    ideal_periphery : bool
        If True, the ADC neither rounds nor saturates (codes are floats), no
        output noise is added and the conductances are not snapped to the
        ``2^-24`` µS grid (so a common drift factor scales every current
        exactly, up to float rounding) -- for calibration tests; the DAC is
        unchanged. Batched and one-at-a-time results may then differ in the
        last bits (BLAS summation order).

    Members
    -------
    weights : ndarray (K, N), float64
        The programmed weight matrix (rows = inputs in im2col order, columns = outputs).
    g_scale_us : float or ndarray (N,)
        Conductance scale ``s = g_max / max|W|`` in µS per weight unit; one per
        column with ``mapping.weight_scaling: per_column``.
    w_abs_max : float or ndarray (N,)
        The ``max|W|`` behind it (``golden.coefficients.weight_abs_max``): the
        affine coefficients' ``w_abs_max``.
    g_pos_us, g_neg_us : ndarray (K, N), float64
        Current effective conductances ``Σ g⁺`` and ``Σ g⁻`` in µS (on the 2^-24 µS
        grid unless ``ideal_periphery``).
    """

    def __init__(
        self,
        spec: ChipSpec,
        device_model: PCMDeviceModel | None = None,
        *,
        noise_seed: int = 0,
        ideal_periphery: bool = False,
    ) -> None:
        self.spec = spec
        self.device_model = device_model if device_model is not None else device_model_from_spec(spec)
        self.noise_seed = int(noise_seed)
        self.ideal_periphery = bool(ideal_periphery)
        a = spec.array
        self.rows, self.cols = a.rows, a.cols
        self.n_pp = a.devices_per_polarity
        self.v_lsb_v = a.v_read_v / 2 ** (a.dac_bits - 1)
        self.i_fs_ua = spec.adc_full_scale_ua
        self.adc_levels = 2 ** (a.adc_bits - 1)
        self._dac_lo = -(1 << (a.dac_bits - 1))
        self._noise_fraction = float(a.output_noise_fraction)
        self.weights: np.ndarray | None = None
        self.g_scale_us: float | np.ndarray = float("nan")
        self.w_abs_max: float | np.ndarray = float("nan")
        self.devices: ProgrammedDevices | None = None
        self.g_pos_us: np.ndarray | None = None
        self.g_neg_us: np.ndarray | None = None
        self.t_inf_s: float | None = None
        self._read_key: tuple[int, ...] | None = None  # keyed read noise: see module docstring
        self._read_parts: tuple[np.ndarray, np.ndarray] | None = None
        self._read_cache: dict[int, np.ndarray] = {}
        self._noise_cache: dict[tuple[int, int, int], np.ndarray] = {}  # output-noise blocks (_noise_block)
        self._read_rows: tuple[int, int] | None = None  # a row_slice: rows of the parent's keyed read-noise draws
        self._n_rb = 0

    # ------------------------------------------------------------------ shapes
    @property
    def shape(self) -> tuple[int, int]:
        """(K, N) of the programmed matrix."""
        self._check_programmed()
        return self.weights.shape  # type: ignore[union-attr,return-value]

    def row_slice(self, r0: int, r1: int, noise_seed: int) -> AnalogMatrix:
        """Rows ``r0 .. r1-1`` of this programmed (and possibly drifted) matrix as a matrix of their own.

        The array of one tile of a partial-sum chain: the whole layer is programmed at once (one
        conductance scale ``g_max / max|W|``), each tile holds its rows. Same conductances, devices,
        scale and time; its own output-noise key ``noise_seed``; no cache is shared. Keyed read noise
        (``drift(read_noise_key=)``) stays the parent's draws on these rows until the slice is drifted again.

        Raises
        ------
        ValueError
            If nothing is programmed or ``0 <= r0 < r1 <= K`` does not hold.
        """
        import copy

        self._check_programmed()
        k = self.weights.shape[0]  # type: ignore[union-attr]
        if not 0 <= r0 < r1 <= k:
            raise ValueError(f"row_slice: rows {r0}..{r1 - 1} outside the matrix's {k} rows")
        part = copy.copy(self)
        part.noise_seed = int(noise_seed)
        part.weights = self.weights[r0:r1]  # type: ignore[index]
        part.g_pos_us, part.g_neg_us = self.g_pos_us[r0:r1], self.g_neg_us[r0:r1]  # type: ignore[index]
        part._g_eff = self._g_eff[r0:r1]

        def rows(d: ProgrammedDevices) -> ProgrammedDevices:
            return ProgrammedDevices(d.g_target_us[..., r0:r1, :], d.g_prog_us[..., r0:r1, :], d.nu[..., r0:r1, :])

        part.devices = rows(self.devices)  # type: ignore[arg-type]
        part._drift_devices = part.devices if self._drift_devices is self.devices else rows(self._drift_devices)
        # keyed read noise: the parent's draws (of its whole shape) restricted to these rows
        p0 = self._read_rows[0] if self._read_rows is not None else 0
        part._read_rows = (p0 + r0, p0 + r1)
        part._read_cache, part._noise_cache = {}, {}
        part._n_rb = math.ceil((r1 - r0) / self.rows)
        return part

    @property
    def n_row_blocks(self) -> int:
        return math.ceil(self.shape[0] / self.rows)

    @property
    def n_col_blocks(self) -> int:
        return math.ceil(self.shape[1] / self.cols)

    @property
    def n_arrays(self) -> int:
        """Arrays used: row blocks × column blocks."""
        return self.n_row_blocks * self.n_col_blocks

    def row_block_slices(self) -> list[slice]:
        """Row range of each row block, in row-block order."""
        k = self.shape[0]
        return [slice(r, min(r + self.rows, k)) for r in range(0, k, self.rows)]

    def _check_programmed(self) -> None:
        if self.weights is None:
            raise RuntimeError("AnalogMatrix: call program(weights, rng) first")

    # -------------------------------------------------------------- programming
    def program(self, weights: npt.ArrayLike, rng: np.random.Generator) -> AnalogMatrix:
        """Program a weight matrix as differential conductance pairs.

        Parameters
        ----------
        weights : array_like (K, N)
            Real weights; rows are inputs, columns outputs. Not all zero, finite.
        rng : numpy.random.Generator
            Draws programming noise and drift exponents.

        Returns
        -------
        AnalogMatrix
            ``self``, with conductances at ``t_inf = 0`` before read noise (``g_P``).

        Raises
        ------
        ValueError
            If ``weights`` is not 2-D, not finite, or all zero.
        """
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 2 or w.size == 0:
            raise ValueError(f"weights must be a non-empty 2-D (K, N) matrix, got shape {w.shape}")
        if not np.all(np.isfinite(w)):
            raise ValueError("weights contain NaN or inf")
        w_abs = weight_abs_max(w, self.spec.mapping.weight_scaling)  # raises on all-zero weights
        g_max = self.device_model.g_max_us
        self.weights = w.copy()
        self.weights.setflags(write=False)
        self.w_abs_max = w_abs
        self.g_scale_us = g_max / w_abs
        g_t = np.empty((2, self.n_pp, *w.shape))
        g_t[0] = np.clip(w * self.g_scale_us, 0.0, g_max)
        g_t[1] = np.clip(-w * self.g_scale_us, 0.0, g_max)
        self.devices = self.device_model.program(g_t, rng)
        self._drift_devices = self.devices
        if self.spec.device.drift_bookkeeping == "net_weight_resplit":
            g = self.devices.g_prog_us
            net = g[0].sum(axis=0) - g[1].sum(axis=0)
            resplit = np.zeros_like(g)
            resplit[0, 0] = np.maximum(net, 0.0)
            resplit[1, 0] = np.maximum(-net, 0.0)
            self._drift_devices = ProgrammedDevices(self.devices.g_target_us, resplit, self.devices.nu)
        self._read_key, self._read_parts, self._read_cache, self._read_rows = None, None, {}, None
        self._n_rb = math.ceil(w.shape[0] / self.rows)
        self._set_conductances(self.devices.g_prog_us)
        self.t_inf_s = None
        return self

    def drift(self, t_inf_s: float, rng: np.random.Generator | None = None, *,
              read_noise_key: tuple[int, ...] | None = None) -> AnalogMatrix:
        """Move the conductances to time ``t_inf_s`` after programming (drift + 1/f read noise).

        ``t_inf_s = 0`` is allowed (no drift, read noise only). Each call starts
        from the programmed state.

        Parameters
        ----------
        t_inf_s : float
            Time after programming in s (>= 0).
        rng : numpy.random.Generator, optional
            One read-noise draw for every later MVM (needed unless ``read_noise_key``).
        read_noise_key : tuple of int, optional
            Redraw the read noise per block of MVMs, keyed by (key, MVM block)
            (module docstring, "Read noise per block of MVMs"); ``rng`` is not used.

        Returns
        -------
        AnalogMatrix
            ``self``.
        """
        self._check_programmed()
        self._read_cache = {}
        if read_noise_key is not None:
            self._read_key = tuple(int(v) for v in read_noise_key)
            self._read_parts = self.device_model.drift_mean(self._drift_devices, t_inf_s)
            self._read_rows = None
        else:
            if rng is None:
                raise ValueError("drift needs rng or read_noise_key")
            self._read_key, self._read_parts = None, None
            self._set_conductances(self.device_model.drift(self._drift_devices, t_inf_s, rng))
        self.t_inf_s = float(t_inf_s)
        return self

    def _block_g_eff(self, block: int) -> np.ndarray:
        """Effective conductances (K, N) read by the MVMs of read-noise block ``block``."""
        if self._read_key is None:
            return self._g_eff
        g = self._read_cache.get(block)
        if g is None:
            g_d, sigma = self._read_parts  # type: ignore[misc]
            seq = np.random.SeedSequence([*self._read_key, int(block)])
            full = np.random.Generator(np.random.PCG64(seq)).standard_normal(g_d.shape)
            # max(g_d + σ·z, 0), then rint(·/grid)·grid: the same operations as written out, in place on z
            # (IEEE + and · commute, so σ·z == z·σ and g_d + σz == σz + g_d bit for bit)
            full *= sigma
            full += g_d
            np.maximum(full, 0.0, out=full)
            if not self.ideal_periphery:
                np.divide(full, G_GRID_US, out=full)
                np.rint(full, out=full)
                full *= G_GRID_US
            g = full[0].sum(axis=0) - full[1].sum(axis=0)
            if self._read_rows is not None:
                g = g[self._read_rows[0]:self._read_rows[1]]
            # every block of this time is reused by each setting: keep them all within a memory budget
            if len(self._read_cache) >= max(4, _READ_CACHE_BYTES // max(1, g.nbytes)):
                self._read_cache.pop(next(iter(self._read_cache)))
            self._read_cache[block] = g
        return g

    def _chunks(self, mvm_index: int, count: int) -> list[tuple[int, int, np.ndarray]]:
        """(start, stop, conductances) of the MVMs ``mvm_index .. +count``, split at read-noise blocks."""
        if self._read_key is None:
            return [(0, count, self._g_eff)]
        out = []
        m = 0
        while m < count:
            blk, row = divmod(mvm_index + m, READ_NOISE_BLOCK_MVMS)
            take = min(READ_NOISE_BLOCK_MVMS - row, count - m)
            out.append((m, m + take, self._block_g_eff(blk)))
            m += take
        return out

    # ------------------------------------------------------------- ADC range
    def set_adc_full_scale(self, i_fs_ua: float) -> AnalogMatrix:
        """Set this layer's ADC full scale ``I_fs`` in µA (every row block; ``calibration.adc_range: per_layer``).

        Raises
        ------
        ValueError
            ``i_fs_ua`` not finite and > 0, or above ``rows · devices_per_polarity ·
            g_max · V_read`` (the largest current an array can carry; fraction 1).
        """
        a = self.spec.array
        i_max = a.rows * a.devices_per_polarity * self.spec.device.g_max_us * a.v_read_v
        if not (math.isfinite(i_fs_ua) and 0 < i_fs_ua <= i_max * (1 + 1e-12)):
            raise ValueError(f"ADC full scale must be in (0, {i_max:g}] µA, got {i_fs_ua}")
        self.i_fs_ua = float(i_fs_ua)
        return self

    @property
    def adc_full_scale_fraction(self) -> float:
        """``I_fs / (rows · devices_per_polarity · g_max · V_read)``, the ``adc_full_scale_fraction`` of the
        affine coefficients (``golden.coefficients.analog_affine_multiplier``) for this layer's full scale."""
        a = self.spec.array
        return min(1.0, self.i_fs_ua / (a.rows * a.devices_per_polarity * self.spec.device.g_max_us * a.v_read_v))

    def _set_conductances(self, g: np.ndarray) -> None:
        if not self.ideal_periphery:  # ideal periphery: no quantization at all (GDC exactness)
            g = np.round(g / G_GRID_US) * G_GRID_US
        self.g_pos_us = g[0].sum(axis=0)
        self.g_neg_us = g[1].sum(axis=0)
        self._g_eff = self.g_pos_us - self.g_neg_us  # exact on the grid (none when ideal_periphery)

    # --------------------------------------------------------------------- MVM
    def column_currents_ua(self, dac_codes: npt.ArrayLike, mvm_index: int = 0) -> np.ndarray:
        """Column currents of every row block's array, in µA, before the ADC.

        Parameters
        ----------
        dac_codes : array_like of int, (K,) or (B, K)
            Signed DAC codes (``dac_bits``).
        mvm_index : int
            Index of the first MVM (selects the read-noise block when it is keyed).

        Returns
        -------
        ndarray, float64, (n_row_blocks, B, N)
            Exact (see module docstring). A 1-D input gives B = 1.
        """
        d = self._checked_codes(dac_codes)
        k = self.weights.shape[0]  # type: ignore[union-attr]
        if d.ndim != 2 or d.shape[1] != k:
            raise ValueError(f"dac_codes must have shape (B, {k}) or ({k},), got {np.shape(dac_codes)}")
        return self._currents(d.astype(np.float64), mvm_index)  # codes; V_lsb applied after the exact sum

    def _checked_codes(self, dac_codes: npt.ArrayLike) -> np.ndarray:
        """DAC codes as a 2-D integer array, range-checked (the model's input boundary).

        An integer ndarray is checked with one min/max pass (the per-call cost of a
        one-vector MVM); anything else, or a code out of range, goes through
        :func:`archmodel.fixedpoint.check_range` (its conversion and its error message).
        """
        self._check_programmed()
        d = dac_codes
        if type(d) is np.ndarray and d.dtype.kind == "i" and d.size:
            lo = self._dac_lo
            if lo <= np.minimum.reduce(d, axis=None) and np.maximum.reduce(d, axis=None) < -lo:
                return d if d.ndim == 2 else np.atleast_2d(d)
        return np.atleast_2d(check_range(d, self.spec.array.dac_bits, "dac_codes"))

    def _currents(self, v: np.ndarray, mvm_index: int, row_order: np.ndarray | None = None) -> np.ndarray:
        """Column currents (n_row_blocks, B, N) in µA of float64 DAC codes ``v`` (B, K); no checks.

        ``row_order`` (one row block only): ``v``'s columns are the matrix rows in this
        order (the same exact sums, module docstring).
        """
        n_rb = self._n_rb
        out = np.empty((n_rb, v.shape[0], self.weights.shape[1]))  # type: ignore[union-attr]
        if n_rb == 1 and self._read_key is None:  # one array per column block, fixed conductances
            np.matmul(v, self._g_eff if row_order is None else self._g_eff[row_order], out=out[0])  # exact
            out *= self.v_lsb_v
            return out
        slices = self.row_block_slices()
        for b0, b1, g in self._chunks(mvm_index, v.shape[0]):
            if n_rb == 1:
                np.matmul(v[b0:b1], g if row_order is None else g[row_order], out=out[0, b0:b1])  # exact
                continue
            for r, sl in enumerate(slices):
                np.matmul(v[b0:b1, sl], g[sl], out=out[r, b0:b1])  # exact (module docstring)
        out *= self.v_lsb_v
        return out

    def __setattr__(self, name: str, value: object) -> None:
        # Explicit invalidation of the batch-1 fast path's cached eligibility and constants
        # (_fast_constants): any assignment (program, drift, row_slice, set_adc_full_scale,
        # ideal_periphery, a test replacing _g_eff, ...) clears it; it is rebuilt on the next MVM.
        # In-place changes of the arrays it holds are seen through the shared reference.
        if name not in _FAST_KEEPS:
            object.__setattr__(self, "_fast", None)
        object.__setattr__(self, name, value)

    def _fast_constants(self) -> Callable[..., np.ndarray | None] | bool:
        """The fast path of :meth:`mvm_adc_codes`, built once and cached in ``self._fast``.

        ``False`` unless one row block, fixed conductances (no keyed read noise), quantizing
        periphery, DAC codes of at most 16 bits (their float64 conversion exact) and, with output
        noise, one column block; else a function of (this matrix, DAC codes, MVM index) returning the codes, or
        ``None`` when the input is not an integer ndarray of shape (B, K) with every code in range,
        or is a batch with output noise (the general path then converts, checks and raises
        check_range's message). With output noise the one vector gets row ``mvm_index % 64`` of the
        cached keyed block (:meth:`_noise_block`, array 0), added as :meth:`_convert` adds it.
        Its constants -- G_eff (K, N) in µS, V_lsb in V,
        2^(adc_bits-1) / I_fs in 1/µA, -2^(adc_bits-1), 2^(adc_bits-1) - 1 (0-d float64 arrays: a ufunc
        converts a Python float on every call; the values are the same float64 numbers) and the range
        table -- are bound in the closure (local reads, no tuple unpacking per call: at batch 1 every
        read after the 2 MB matmul has flushed the caches counts). The range table has
        2^(dac_bits-1) entries: ``table.take(codes)`` accepts exactly the indices
        ``[-2^(dac_bits-1), 2^(dac_bits-1))`` (numpy's ``take`` wraps negative indices once and raises
        IndexError beyond), i.e. exactly the signed DAC range -- the range check in one call.
        Cleared by every attribute assignment (``__setattr__``).
        """
        ok = (self.weights is not None and self._n_rb == 1 and self._read_key is None and not self.ideal_periphery
              and self._dac_lo >= -(1 << 15) and (self._noise_fraction == 0.0 or self.n_col_blocks == 1))
        if not ok:
            object.__setattr__(self, "_fast", False)
            return False
        top = float(self.adc_levels)
        k, g, n_half = self._g_eff.shape[0], self._g_eff, -self._dac_lo
        v_lsb, to_code = np.array(self.v_lsb_v), np.array(self.adc_levels / self.i_fs_ua)
        lo, hi = np.array(-top), np.array(top - 1.0)
        take = np.zeros(n_half, dtype=np.bool_).take
        ndarray, int64, dot, matmul, multiply, clip, rint = _NDARRAY, _INT64, _DOT, _MATMUL, _MULTIPLY, _CLIP, _RINT
        # output noise (one array: one row block, one column block): sigma as in _convert, the row of the
        # cached keyed block as _output_noise / _noise_rows take it (array 0, N columns)
        noisy = self._noise_fraction > 0.0
        sigma, n_cols = np.array(self._noise_fraction * self.i_fs_ua), g.shape[1]
        add = _ADD

        def fast(owner: AnalogMatrix, dac_codes: object, mvm_index: int) -> np.ndarray | None:
            # (``owner`` is this matrix, passed per call: a bound method kept in the closure would make a
            # reference cycle self -> _fast -> self, freed only by the cyclic GC with its caches)
            # (dtype by identity first, one shape read)
            if type(dac_codes) is not ndarray or not ((dt := dac_codes.dtype) is int64 or dt.kind == "i"):
                return None
            shape = dac_codes.shape
            if len(shape) != 2 or shape[1] != k:
                return None
            if shape[0] == 1:
                try:
                    take(dac_codes)  # the range check (IndexError outside the DAC range; docstring above)
                except IndexError:
                    return None  # out of range: the general path raises check_range's message
                # np.dot converts the integer codes to float64 (exact: |d| <= 2^15) before its BLAS call,
                # ~5 µs cheaper than matmul's casting iterator; the sum is exact (module docstring)
                x = dot(dac_codes, g)
                if noisy:  # _convert's order: i = x·V_lsb; i += σ·z; then the ADC below
                    multiply(x, v_lsb, x)
                    blk, row = divmod(mvm_index, NOISE_BLOCK_MVMS)
                    add(x, multiply(owner._noise_block(0, n_cols, blk)[row], sigma), x)
                    multiply(x, to_code, x)
                    clip(x, lo, hi, x)
                    rint(x, x)
                    return x.astype(int64)[None]
            elif noisy:
                return None  # a batch with output noise: the general path (its noise rows span blocks)
            else:  # a batch: argmin/argmax (SIMD) beat take's per-element bounds check; matmul's conversion
                f = dac_codes.ravel()
                if not (f.size and -n_half <= f[f.argmin()] and f[f.argmax()] < n_half):
                    return None
                x = matmul(dac_codes, g)
            multiply(x, v_lsb, x)
            multiply(x, to_code, x)  # same two products, same order, as _convert
            clip(x, lo, hi, x)  # saturate, then round (the order _convert uses)
            rint(x, x)
            return x.astype(int64)[None]

        object.__setattr__(self, "_fast", fast)
        return fast

    def mvm_adc_codes(self, dac_codes: npt.ArrayLike, mvm_index: int = 0) -> np.ndarray:
        """ADC codes of every row block for a batch of MVMs.

        Parameters
        ----------
        dac_codes : array_like of int, (K,) or (B, K)
            Signed DAC codes.
        mvm_index : int
            Index of the first MVM of the batch; MVM ``b`` uses ``mvm_index + b``
            as the key of its output noise.

        Returns
        -------
        ndarray, (n_row_blocks, B, N)
            int64 codes in ``[-2^(adc_bits-1), 2^(adc_bits-1) - 1]``; float64
            unrounded codes when ``ideal_periphery``.

        Raises
        ------
        ValueError
            A code outside the signed ``dac_bits`` range (:func:`archmodel.fixedpoint.check_range`'s
            message), or a shape other than (K,) / (B, K).
        """
        fast = self._fast
        if fast is None:
            fast = self._fast_constants()
        if fast and (codes := fast(self, dac_codes, mvm_index)) is not None:
            return codes
        x = self.column_currents_ua(dac_codes, mvm_index)  # a fresh array: updated in place below
        return self._convert(x, lambda: self._output_noise(x.shape, mvm_index))

    def array_adc_codes(
        self, row_block: int, col_block: int, dac_codes: npt.ArrayLike, mvm_index: int = 0
    ) -> np.ndarray:
        """ADC codes of ONE array (row block ``row_block``, column block ``col_block``).

        What the array behind one array port returns for one MVM (the
        co-simulation bridge calls this). Identical, code for code, to the
        matching slice of :meth:`mvm_adc_codes` for the same ``mvm_index``:
        same exact sum, same float operations, same noise key.

        Parameters
        ----------
        row_block, col_block : int
            Block indices (array index ``col_block · n_row_blocks + row_block``).
        dac_codes : array_like of int, (R,) or (B, R)
            DAC codes of the block's ``R`` rows only.
        mvm_index : int
            Output-noise key of the first vector.

        Returns
        -------
        ndarray of int64, (B, C)
            Codes of the block's ``C`` columns (float64 when ``ideal_periphery``).
        """
        self._check_programmed()
        if not (0 <= row_block < self.n_row_blocks and 0 <= col_block < self.n_col_blocks):
            raise ValueError(
                f"block ({row_block}, {col_block}) out of range; the matrix has "
                f"{self.n_row_blocks} x {self.n_col_blocks} blocks"
            )
        rsl = self.row_block_slices()[row_block]
        c0, c1 = col_block * self.cols, min((col_block + 1) * self.cols, self.shape[1])
        d = np.atleast_2d(check_range(dac_codes, self.spec.array.dac_bits, "dac_codes"))
        if d.ndim != 2 or d.shape[1] != rsl.stop - rsl.start:
            raise ValueError(f"dac_codes must have {rsl.stop - rsl.start} rows per vector, got shape {np.shape(dac_codes)}")
        x = np.empty((d.shape[0], c1 - c0))
        for b0, b1, g in self._chunks(mvm_index, d.shape[0]):
            x[b0:b1] = d[b0:b1].astype(np.float64) @ g[rsl, c0:c1]
        x *= self.v_lsb_v
        array_index = col_block * self.n_row_blocks + row_block
        return self._convert(x, lambda: self._noise_rows(array_index, c1 - c0, mvm_index, x.shape[0]))

    def _convert(self, i_ua: np.ndarray, noise) -> np.ndarray:
        """The ADC, in place on column currents ``i_ua`` (µA): add output noise, scale, round, saturate.

        The one conversion both :meth:`mvm_adc_codes` and :meth:`array_adc_codes`
        use, so they stay identical code for code. ``noise()`` returns the
        standard normals of ``i_ua``'s shape; it is called only when output
        noise is on.
        """
        sigma = self._noise_fraction * self.i_fs_ua
        if sigma > 0 and not self.ideal_periphery:
            z = noise()
            z *= sigma
            i_ua += z
        i_ua *= self.adc_levels / self.i_fs_ua
        if self.ideal_periphery:
            return i_ua
        # saturate, then round: rint is monotone and fixes the integer bounds, so rint(clip(x)) ==
        # clip(rint(x)) for every float -- one pass fewer than maximum + minimum after rint, same bits
        top = float(self.adc_levels)
        _CLIP(i_ua, -top, top - 1.0, i_ua)
        _RINT(i_ua, i_ua)
        return i_ua.astype(np.int64)

    def _noise_rows(self, array_index: int, n_cols: int, mvm_index: int, count: int) -> np.ndarray:
        """Standard normals (count, n_cols) of MVMs ``mvm_index .. mvm_index+count-1`` of one array."""
        out = np.empty((count, n_cols))
        m = mvm_index
        while m < mvm_index + count:
            blk, row = divmod(m, NOISE_BLOCK_MVMS)
            take = min(NOISE_BLOCK_MVMS - row, mvm_index + count - m)
            z = self._noise_block(array_index, n_cols, blk)
            out[m - mvm_index:m - mvm_index + take] = z[row:row + take]
            m += take
        return out

    def _noise_block(self, array_index: int, n_cols: int, blk: int) -> np.ndarray:
        """The standard normals (NOISE_BLOCK_MVMS, n_cols) of output-noise block ``blk`` of one array.

        ``Generator(PCG64(SeedSequence([noise_seed, array_index, blk])))`` draws the
        block once; it is kept (bounded, oldest dropped first) so the next MVMs of
        the block -- one-vector calls above all -- reuse it instead of building a
        generator per call. A pure cache: the values are the keyed draws.
        """
        key = (array_index, n_cols, blk)
        z = self._noise_cache.get(key)
        if z is None:
            seq = np.random.SeedSequence([self.noise_seed, array_index, blk])
            z = np.random.Generator(np.random.PCG64(seq)).standard_normal((NOISE_BLOCK_MVMS, n_cols))
            z.setflags(write=False)
            if len(self._noise_cache) >= max(4, _NOISE_CACHE_BYTES // z.nbytes):
                self._noise_cache.pop(next(iter(self._noise_cache)))
            self._noise_cache[key] = z
        return z

    def _output_noise(self, shape: tuple[int, int, int], mvm_index: int) -> np.ndarray:
        """Standard normals of shape (n_rb, B, N), keyed by (seed, array index, MVM index)."""
        n_rb, b, n = shape
        z = np.empty(shape)
        for cb in range(self.n_col_blocks):
            c0, c1 = cb * self.cols, min((cb + 1) * self.cols, n)
            for rb in range(n_rb):
                array_index = cb * n_rb + rb  # golden.tile_controller.tile_schedule numbering
                z[rb, :, c0:c1] = self._noise_rows(array_index, c1 - c0, mvm_index, b)
        return z

    def mvm_partial_sums(self, dac_codes: npt.ArrayLike, mvm_index: int = 0) -> np.ndarray:
        """ADC codes of all row blocks added as integers (golden contract).

        Returns
        -------
        ndarray, (B, N)
            int64 partial sums (float64 when ``ideal_periphery``).
        """
        codes = self.mvm_adc_codes(dac_codes, mvm_index)
        if self.ideal_periphery:
            return codes.sum(axis=0)
        if codes.shape[0] == 1 and self.spec.periphery.accumulator_bits >= self.spec.array.adc_bits + 1:
            return codes[0]  # one row block: the sum is the codes themselves (no overflow possible)
        return accumulate_partial_sums(
            codes, adc_bits=self.spec.array.adc_bits, acc_bits=self.spec.periphery.accumulator_bits
        )

    def mvm_partial_sums_trusted(self, dac_codes_f64: np.ndarray, mvm_index: int = 0,
                                 row_order: np.ndarray | None = None) -> np.ndarray:
        """:meth:`mvm_partial_sums` of DAC codes the caller guarantees are in range, without re-checking them.

        The same currents, ADC conversion, noise keys and integer sum of the row
        blocks as :meth:`mvm_partial_sums` (bit-identical; tests/test_accuracy_golden.py),
        for the accuracy evaluator, whose codes come from
        ``golden.tile_controller.dac_codes`` of range-checked int8 activations (range
        checks at the boundaries, not at every internal step).

        Parameters
        ----------
        dac_codes_f64 : ndarray of float64, (B, K)
            Integer DAC codes within the signed ``dac_bits`` range, as float64.
        mvm_index : int
            Index of the first MVM (noise keys).
        row_order : ndarray of int, (K,), optional
            The columns of ``dac_codes_f64`` are the matrix rows in this order (a
            permutation). Allowed with one row block and the grid conductances only:
            every partial sum is then exact, so any order gives the same currents.

        Returns
        -------
        ndarray, (B, N)
            int64 partial sums (float64 when ``ideal_periphery``).

        Raises
        ------
        ValueError
            ``row_order`` with several row blocks or ``ideal_periphery``.
        """
        self._check_programmed()
        if row_order is not None and (self.n_row_blocks != 1 or self.ideal_periphery):
            raise ValueError("row_order needs one row block and the conductance grid (exact sums)")
        x = self._currents(dac_codes_f64, mvm_index, row_order)
        codes = self._convert(x, lambda: self._output_noise(x.shape, mvm_index))
        if self.ideal_periphery:
            return codes.sum(axis=0)
        if codes.shape[0] == 1 and self.spec.periphery.accumulator_bits >= self.spec.array.adc_bits + 1:
            return codes[0]  # one row block: the sum is the codes themselves (no overflow possible)
        return accumulate_partial_sums(
            codes, adc_bits=self.spec.array.adc_bits, acc_bits=self.spec.periphery.accumulator_bits
        )

    # ------------------------------------------------------------ float API
    @property
    def weight_units_per_code(self) -> float | np.ndarray:
        """Real factor from a partial-sum code to ``x_int8 @ W`` units (per column (N,) with per-column scaling).

        ``x_int8 @ W ≈ psum · I_fs / 2^(adc_bits-1) / (V_lsb · s · n_pp) · 2^(8 - dac_bits)``
        (ideal DAC rounding; derived from the data path above).
        """
        self._check_programmed()
        dac_shift = 2 ** (8 - self.spec.array.dac_bits)
        return self.i_fs_ua / self.adc_levels / (self.v_lsb_v * self.g_scale_us * self.n_pp) * dac_shift

    def matmul(self, x: npt.ArrayLike, in_scale: float | None = None, mvm_index: int = 0) -> np.ndarray:
        """Float convenience API: ``y ≈ x @ W`` through int8 quantization, DAC, arrays, ADC.

        Parameters
        ----------
        x : array_like, (K,) or (B, K)
            Real input activations.
        in_scale : float, optional
            Real value of one int8 step; default ``max|x| / 127`` (per call).
        mvm_index : int
            Output-noise key of the first vector.

        Returns
        -------
        ndarray, float64, (B, N) (or (N,) for 1-D input)
        """
        xa = np.asarray(x, dtype=np.float64)
        single = xa.ndim == 1
        if xa.ndim != 2:
            xa = np.atleast_2d(xa)
        if in_scale is None:
            m = float(np.maximum.reduce(np.abs(xa), axis=None))  # = np.max (NaN propagates the same way)
            in_scale = m / 127.0 if m > 0 else 1.0
        # clip(rint(x / s), -128, 127) as int64, with the ufuncs in place (the same operations, same order)
        v = xa / in_scale
        _RINT(v, v)
        _CLIP(v, -128.0, 127.0, v)
        x_int8 = v.astype(np.int64)
        dac_bits = self.spec.array.dac_bits
        if dac_bits == 8:
            # an 8-bit DAC maps a code to itself (golden.tile_controller.dac_codes) and the clip bounds the codes,
            # except where x was NaN (the cast gives garbage): then the error dac_codes has always raised
            try:
                psum = self.mvm_partial_sums(x_int8, mvm_index)
            except ValueError:
                dac_codes(x_int8, dac_bits)  # raises check_range's "x_int8: ..." for a NaN input
                raise  # anything else (a wrong shape): the error mvm_partial_sums raised, as before
        else:
            psum = self.mvm_partial_sums(dac_codes(x_int8, dac_bits), mvm_index)
        y = psum * (self.weight_units_per_code * in_scale)
        return y[0] if single else y
