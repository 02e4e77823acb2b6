"""Golden model of the PCM array emulator (``rtl/emulator.py``): integer conductances, MAC, shift-ADC, noise.

The emulator stands behind one tile's array port on an FPGA prototype (docs/design.md,
"The PCM array emulator"). It holds each array as signed integer **conductance codes**
``c`` (``g_bits`` wide, default 8) and answers one MVM, with ``d`` the received DAC
codes of the array's rows (rows not sent count as 0), as::

    acc_j = sum_i d_i * c_ij                                   exact integer (MAC)
    q_j   = round_half_even(acc_j / 2**shift)                  the ADC as a shift
    n_j   = (s_j * sigma + 2**(NOISE_SHIFT - 1)) >> NOISE_SHIFT  read noise in ADC LSB (arithmetic shift)
    a_j   = saturate(q_j + n_j, adc_bits)

**Meaning of a code.** With the chip's DAC LSB ``V_lsb`` [V], ADC full scale ``I_fs`` [µA]
and ``2**(adc_bits-1)`` levels, the analog model's ADC code is
``rint(V_lsb * sum_i d_i G_ij * 2**(adc_bits-1) / I_fs)`` (docs/design.md 4.3), so a code
``c`` stands for the effective conductance ``G = c * g_lsb_us`` with
``g_lsb_us = I_fs / (V_lsb * 2**(adc_bits-1) * 2**shift)`` (:func:`code_lsb_us`): then the
analog model's ADC and the emulator's shift compute the same rounded value
(half to even on both sides; only exact ties may differ in the analog model, whose
float product is off by an ulp there). :func:`conductance_codes` quantizes a
programmed :class:`archmodel.analog_matrix.AnalogMatrix` (at its current drift time) this way.

**Read noise** (assumed; Irwin-Hall approximation of a Gaussian): per ADC beat, each of
the beat's ``cols_per_adc_beat`` lanes steps its own xorshift32 generator
(Marsaglia 2003, shifts 13, 17, 5; period 2**32 - 1) once; the four bytes of the new
state are four uniforms ``u_k`` on ``0..255`` and ``s = sum_k u_k - 510`` (zero mean,
``Var(s) = 4 (256**2 - 1) / 12 = 21845``, ``sigma_s = 147.8``). ``sigma`` (0..255) scales it:
``n = round_half_up(s * sigma / 1024)`` has standard deviation ≈ ``0.1443 * sigma`` ADC LSB
(exactly :func:`noise_variance`; the rounding adds ≈ 1/12 LSB²). Lane ``l``'s generator
starts at :func:`lane_seed` ``(seed, l)``; the generators step for every beat the
emulator emits (noise on or off), in emission order, so a seed reproduces every code.

Sources: the ADC equation, docs/design.md 4.3; xorshift32, G. Marsaglia, "Xorshift RNGs",
J. Stat. Softw. 8(14), 2003; Irwin-Hall, the sum of n uniforms has variance ``n/12`` of the
squared range (here of the discrete uniform, ``(256**2 - 1)/12``). Widths and constants
are the project's (assumed).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "NOISE_BYTES", "NOISE_SHIFT", "SIGMA_BITS", "EmulatorModel", "code_lsb_us", "conductance_codes",
    "emulator_beat_cycles", "emulator_latency_cycles", "lane_seed", "noise_pmf", "noise_variance", "round_half_even_shift",
    "xorshift32",
]

#: Uniform bytes summed per noise sample (Irwin-Hall n = 4; one xorshift32 state), assumed.
NOISE_BYTES = 4
#: Fraction bits of the noise scale: n = (s * sigma) / 2**NOISE_SHIFT, assumed.
NOISE_SHIFT = 10
#: Width of the unsigned noise scale ``sigma`` (0 = no noise), assumed.
SIGMA_BITS = 8
#: Cycles from a column group's last row to its ADC beat's ``adc.valid``, less one: the MAC pipeline (6) plus the ADC
#: pipeline (7) (rtl/emulator.py ``MAC_STAGES + ADC_STAGES``); the first beat comes ``rows + PIPELINE_CYCLES`` after ``last``.
PIPELINE_CYCLES = 13
#: ADC pipeline stages E0 .. E6 of that total (rtl/emulator.py asserts both).
ADC_STAGES = 7
_MASK32 = (1 << 32) - 1
_GOLDEN = 0x9E3779B9  # 2**32 / golden ratio (Knuth's multiplicative hash), assumed lane spreading constant


def xorshift32(x: int) -> int:
    """One step of Marsaglia's xorshift32 (13, 17, 5) on a nonzero 32-bit state."""
    x ^= (x << 13) & _MASK32
    x ^= x >> 17
    x ^= (x << 5) & _MASK32
    return x


def lane_seed(seed: int, lane: int) -> int:
    """Start state of lane ``lane``: ``(seed XOR (0x9E3779B9 * (lane + 1) mod 2**32)) | 1`` (never 0)."""
    return ((int(seed) & _MASK32) ^ ((_GOLDEN * (lane + 1)) & _MASK32)) | 1


def round_half_even_shift(acc: npt.ArrayLike, shift: int) -> np.ndarray:
    """``acc / 2**shift`` rounded half to even, in exact integers (``shift`` >= 0)."""
    a = np.asarray(acc, dtype=np.int64)
    if shift == 0:
        return a.copy()
    q = a >> shift
    rem = a - (q << shift)
    half = 1 << (shift - 1)
    return q + ((rem > half) | ((rem == half) & (q & 1 == 1)))


def noise_pmf(sigma: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact distribution of one noise sample ``n`` at scale ``sigma``: (values, probabilities)."""
    u = np.ones(256) / 256
    p = u
    for _ in range(NOISE_BYTES - 1):
        p = np.convolve(p, u)
    s = np.arange(p.size) - 510
    n = (s * int(sigma) + (1 << (NOISE_SHIFT - 1))) >> NOISE_SHIFT
    vals, inv = np.unique(n, return_inverse=True)
    return vals, np.bincount(inv, weights=p)


def noise_variance(sigma: int) -> float:
    """Exact variance (ADC LSB²) of one noise sample at scale ``sigma``; ≈ (sigma/1024)² · 21845 + 1/12."""
    v, p = noise_pmf(sigma)
    mean = float(v @ p)
    return float(((v - mean) ** 2) @ p)


def code_lsb_us(v_lsb_v: float, i_fs_ua: float, adc_bits: int, shift: int) -> float:
    """Effective conductance of one code step, µS: ``I_fs / (V_lsb · 2**(adc_bits-1) · 2**shift)``."""
    return i_fs_ua / (v_lsb_v * 2 ** (adc_bits - 1) * 2**shift)


def conductance_codes(matrix, *, g_bits: int = 8, shift: int | None = None) -> tuple[np.ndarray, int]:
    """Quantize a programmed ``AnalogMatrix`` (at its current time) to emulator conductance codes.

    Parameters
    ----------
    matrix : archmodel.analog_matrix.AnalogMatrix
        Programmed (and possibly drifted, single read-noise draw) matrix, (K, N).
    g_bits : int
        Signed code width (2..18; an ECP5 MULT18X18D input).
    shift : int, optional
        The ADC shift; default: the largest with ``rows_per_polarity · g_max`` still in range
        (``floor(log2((2**(g_bits-1) - 1) / (n_pp · g_max · V_lsb · 2**(adc_bits-1) / I_fs)))``).

    Returns
    -------
    codes : ndarray of int64, (n_arrays, rows, cols)
        Array ``cb · n_rb + rb`` (docs/design.md 5), zero beyond the matrix;
        ``rint(G / code_lsb_us)`` clipped to ``±(2**(g_bits-1) - 1)``.
    shift : int

    Raises
    ------
    ValueError
        ``g_bits`` out of range, or no shift >= 0 keeps the codes in range.
    """
    if not 2 <= g_bits <= 18:
        raise ValueError(f"g_bits must be in [2, 18], got {g_bits}")
    spec = matrix.spec
    a = spec.array
    cmax = (1 << (g_bits - 1)) - 1
    per_us = matrix.v_lsb_v * 2 ** (a.adc_bits - 1) / matrix.i_fs_ua  # ADC codes per µS per DAC LSB
    if shift is None:
        shift = int(math.floor(math.log2(cmax / (a.devices_per_polarity * spec.device.g_max_us * per_us))))
    if shift < 0:
        raise ValueError(f"no ADC shift >= 0 fits g_bits = {g_bits} (full scale {matrix.i_fs_ua} µA)")
    g = np.asarray(matrix.g_pos_us - matrix.g_neg_us)
    k, n = g.shape
    n_rb, n_cb = math.ceil(k / a.rows), math.ceil(n / a.cols)
    codes = np.zeros((n_rb * n_cb, a.rows, a.cols), dtype=np.int64)
    q = np.clip(np.rint(g * per_us * 2.0**shift), -cmax, cmax).astype(np.int64)
    for cb in range(n_cb):
        for rb in range(n_rb):
            blk = q[rb * a.rows:(rb + 1) * a.rows, cb * a.cols:(cb + 1) * a.cols]
            codes[cb * n_rb + rb, :blk.shape[0], :blk.shape[1]] = blk
    return codes, int(shift)


def emulator_latency_cycles(array_rows: int, min_latency: int) -> int:
    """Cycles from accepting the ``last`` DAC beat to presenting the first ADC beat.

    ``max(min_latency, array_rows + PIPELINE_CYCLES)``: the first column group's MAC reads one
    conductance word per cycle for every row of the array (rows not received count as 0, so the
    number of DAC beats received does not matter), then 6 MAC pipeline stages and 7 ADC stages
    (rtl/emulator.py ``MAC_STAGES``, ``ADC_STAGES``); never earlier than ``min_latency`` (the
    modelled array, ``array_mvm_cycles + 1``). Tiny (32 rows): 45 cycles.
    """
    return max(int(min_latency), int(array_rows) + PIPELINE_CYCLES)


def emulator_beat_cycles(array_rows: int, beats: int, min_latency: int) -> list[int]:
    """Cycles from accepting ``last`` to presenting each of an MVM's ``beats`` ADC beats (``adc.ready`` held 1).

    The emulator computes one column group (ADC beat) at a time (rtl/emulator.py): group ``k``'s
    row counter starts at ``S_k = max(S_{k-1} + rows, I_{k-2} + 1)`` (``S_0 = 1``; at most two
    groups started and not yet issued to the ADC pipeline), its final accumulate is at
    ``S_k + rows + 4``, it is issued to the ADC pipeline at
    ``I_k = max(S_k + rows + 5, I_{k-1} + 1, min_latency - ADC_STAGES)`` and presented at
    ``I_k + 7`` (7 ADC stages). With ``min_latency <= rows + 13`` the beats come every ``rows``
    cycles: tiny (32 rows, 4 beats) 45, 77, 109, 141. Source: the RTL's pipeline (rtl/emulator.py).
    """
    adc_stages = ADC_STAGES
    mac_after_start = PIPELINE_CYCLES - ADC_STAGES - 1   # row counter start -> issue, beyond the rows (5)
    rows = int(array_rows)
    starts: list[int] = []
    issues: list[int] = []
    for k in range(int(beats)):
        s = 1 if k == 0 else starts[-1] + rows
        if k >= 2:
            s = max(s, issues[k - 2] + 1)
        i = max(s + rows + mac_after_start, int(min_latency) - adc_stages)  # final accumulate one cycle before
        if k:
            i = max(i, issues[-1] + 1)
        starts.append(s)
        issues.append(i)
    return [i + adc_stages for i in issues]


class EmulatorModel:
    """Bit-exact model of one ``ArrayEmulator`` (state: codes, shift, sigma, generators).

    Parameters
    ----------
    codes : array_like of int, (arrays, rows, cols)
        Conductance codes (signed ``g_bits``).
    adc_bits, dac_bits, g_bits : int
    cols_per_adc_beat : int
        Noise lanes (one generator each).
    shift, sigma, seed : int
        ADC shift (0..31), noise scale (0..255), generator seed (32 bits).
    adc_beats : list of int, optional
        ADC beats per MVM of each array (default: all columns).

    Raises
    ------
    ValueError
        A code, shift or sigma out of range.
    """

    def __init__(self, codes: npt.ArrayLike, *, adc_bits: int, dac_bits: int, cols_per_adc_beat: int,
                 g_bits: int = 8, shift: int = 0, sigma: int = 0, seed: int = 1,
                 adc_beats: list[int] | None = None):
        self.codes = np.array(codes, dtype=np.int64)
        if self.codes.ndim != 3:
            raise ValueError(f"codes must be (arrays, rows, cols), got shape {self.codes.shape}")
        lim = 1 << (g_bits - 1)
        if self.codes.size and (self.codes.min() < -lim or self.codes.max() >= lim):
            raise ValueError(f"codes must fit signed {g_bits} bits")
        if not 0 <= shift <= 31:
            raise ValueError(f"shift must be in [0, 31], got {shift}")
        if not 0 <= sigma < (1 << SIGMA_BITS):
            raise ValueError(f"sigma must be in [0, {(1 << SIGMA_BITS) - 1}], got {sigma}")
        self.adc_bits, self.dac_bits, self.lanes = adc_bits, dac_bits, cols_per_adc_beat
        self.shift, self.sigma = int(shift), int(sigma)
        cols = self.codes.shape[2]
        self.adc_beats = list(adc_beats) if adc_beats is not None else [cols // self.lanes] * self.codes.shape[0]
        self.reseed(seed)

    def reseed(self, seed: int) -> None:
        """Restart every lane's generator from :func:`lane_seed` ``(seed, lane)``."""
        self.state = [lane_seed(seed, lane) for lane in range(self.lanes)]

    def _noise(self) -> np.ndarray:
        out = np.empty(self.lanes, dtype=np.int64)
        for lane in range(self.lanes):
            x = self.state[lane] = xorshift32(self.state[lane])
            s = sum((x >> (8 * b)) & 0xFF for b in range(NOISE_BYTES)) - 510
            out[lane] = (s * self.sigma + (1 << (NOISE_SHIFT - 1))) >> NOISE_SHIFT
        return out

    def mvm(self, array: int, dac_codes: npt.ArrayLike) -> np.ndarray:
        """ADC codes of one MVM on ``array``: ``adc_beats[array] * cols_per_adc_beat`` codes.

        ``dac_codes`` are the received rows (shorter than ``rows``: the rest are 0).
        Advances the noise generators by one step per emitted beat.
        """
        d = np.asarray(dac_codes, dtype=np.int64)
        c = self.codes[array]
        acc = d @ c[:d.size]
        q = round_half_even_shift(acc, self.shift)
        lim = 1 << (self.adc_bits - 1)
        out = []
        for b in range(self.adc_beats[array]):
            lanes = q[b * self.lanes:(b + 1) * self.lanes] + self._noise()
            out.append(np.clip(lanes, -lim, lim - 1))
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)
