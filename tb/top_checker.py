"""Checker of the top-level co-simulation (one job): the run's counts, the output compare, the cycle bound.

- :class:`NetResult`: what one network run counted (compared outputs,
  mismatches, format and protocol errors, flags, cycles);
- :class:`OutputChecker`: in-order compare of the last layer's int8 output
  packets (``m_axis``) with the golden run;
- :func:`stage_cycles`: cycles per vector of a tile's slowest resource (the
  lower bound the measured cycles are compared with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from archmodel import timing
from archmodel.spec import ChipSpec
from rtl.params import TileParams
from rtl.register_compiler import MappedLayer
from rtl.tile_controller import act_beat_layout
from tb.packing import unpack, width_of

__all__ = ["NetResult", "OutputChecker", "stage_cycles"]


@dataclass
class NetResult:
    """Outcome of one network run (counts and cycles)."""

    name: str
    seed: int
    t_inf_s: float | None
    expected_outputs: int
    compared: int = 0
    mismatches: int = 0
    extra_outputs: int = 0
    format_errors: int = 0           # padding lanes not 0, wrong last, wrong tdest, short packets
    dac_compared: int = 0            # DAC codes checked at the array ports (every layer's input)
    dac_mismatches: int = 0
    protocol_errors: int = 0
    axil_errors: int = 0             # AXI4-Lite responses other than OKAY
    writes: int = 0
    readback_checked: int = 0
    readback_mismatches: int = 0
    flags: dict[str, int] = field(default_factory=dict)
    mvms: list[int] = field(default_factory=list)
    config_cycles: int = 0           # configuration: all AXI4-Lite writes and the weight stream
    weight_flits: int = 0            # digital weights streamed over s_axis (chan 1 to the digital node)
    weight_cycles: int = 0           # first weight flit offered .. the last accepted (seeded valid gaps)
    cycles: int = 0                  # first input flit accepted .. last output flit accepted
    bound_cycles: int = 0            # B x the slowest stage's cycles per vector (a lower bound)
    interval_cycles: float = 0.0     # mean cycles between the last outputs of consecutive vectors
    stage_cycles: list[int] = field(default_factory=list)  # per layer: slowest resource, cycles per vector
    gdc_alpha: list[float] = field(default_factory=list)
    in_stall_cycles: int = 0         # s_axis: tvalid and not tready (the chip back-pressures the host)
    out_stall_cycles: int = 0        # m_axis: tvalid and not tready (the host back-pressures the chip)
    mismatched_columns: list[int] = field(default_factory=list)
    dac_mismatch_at: list[list[int]] = field(default_factory=list)  # [mapped layer, row] of each wrong DAC code
    first_mismatches: list[str] = field(default_factory=list)
    tap_compared: int = 0            # int8 outputs of intermediate layers mirrored to the host (m_axis chan 1)
    tap_mismatches: int = 0
    tap_mismatch_at: list[list[int]] = field(default_factory=list)  # [source tag, column] of each wrong tap value
    config_wall_s: float = 0.0       # wall time of the configuration (AXI4-Lite writes), s
    run_wall_s: float = 0.0          # wall time of the whole run (configuration included), s
    tap_done_cycles: dict[int, list[int]] = field(default_factory=dict)  # source tag -> cycle each vector's tap ended
    mvm_start_cycles: list[list[int]] = field(default_factory=list)      # per bridge: cycle of each MVM's first DAC beat

    @property
    def ok(self) -> bool:
        return (self.mismatches == 0 and self.tap_mismatches == 0
                and self.compared == self.expected_outputs and self.extra_outputs == 0
                and self.format_errors == 0 and self.dac_mismatches == 0 and self.protocol_errors == 0
                and self.axil_errors == 0 and self.readback_mismatches == 0 and not any(self.flags.values()))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.name}: seed {self.seed}, {self.compared}/{self.expected_outputs} outputs compared, "
                f"{self.mismatches} mismatches; {self.dac_compared} DAC codes compared, {self.dac_mismatches} "
                f"mismatches; {self.writes} AXI4-Lite writes ({self.config_cycles} cycles); {self.cycles} cycles "
                f"from first input to last output (bound {self.bound_cycles}), {self.interval_cycles:.2f} "
                f"per vector (stages {self.stage_cycles}); MVMs per tile {self.mvms}; stall cycles "
                f"in {self.in_stall_cycles}, out {self.out_stall_cycles}")


class OutputChecker:
    """In-order compare of the last layer's int8 output packets with the golden run.

    Parameters
    ----------
    result : NetResult
        Counts ``compared``, ``mismatches``, ``format_errors`` there.
    expected : ndarray (B, N)
        The golden int8 outputs.
    n_vectors, n_cols, rows_per_beat : int
        Vectors B, output columns N, int8 lanes per ``act`` beat.
    act_layout, beat_bits, link_bits
        Layout and width of an ``act`` beat, flit payload width.
    """

    def __init__(self, result: NetResult, expected: np.ndarray, n_vectors: int, n_cols: int, rows_per_beat: int,
                 act_layout: Any, beat_bits: int, link_bits: int):
        self.res, self.want = result, expected
        self.n_last, self.rpb = n_cols, rows_per_beat
        self.act_layout, self.beat_bits, self.link_bits = act_layout, beat_bits, link_bits
        self.beats_per_vec = -(-n_cols // rows_per_beat)
        self.n_frames = n_vectors * self.beats_per_vec
        self.got = np.zeros_like(np.asarray(expected))  # int8 outputs as received (for top-1 from the RTL's scores)

    def check(self, fi: int, frame: Any) -> bool:
        """Compare output packet number ``fi``; True when it ends a vector."""
        res, want, n_last, rpb = self.res, self.want, self.n_last, self.rpb
        beats_per_vec = self.beats_per_vec
        v, b = divmod(fi, beats_per_vec)
        words = list(frame.tdata)
        n_words = -(-self.beat_bits // self.link_bits)
        if len(words) != n_words or (frame.tdest not in (0, None, [0] * len(words))):
            res.format_errors += 1
        raw = sum(int(wd) << (k * self.link_bits) for k, wd in enumerate(words[:n_words]))
        beat = unpack(self.act_layout, raw & ((1 << self.beat_bits) - 1))
        if beat["last"] != int(b == beats_per_vec - 1):
            res.format_errors += 1
        for lane, val in enumerate(beat["data"]):
            col = b * rpb + lane
            if col >= n_last:
                if val != 0:
                    res.format_errors += 1
                continue
            res.compared += 1
            self.got[v, col] = val
            exp = int(want[v, col])
            if val != exp:
                res.mismatches += 1
                if col not in res.mismatched_columns:
                    res.mismatched_columns.append(col)
                if len(res.first_mismatches) < 10:
                    res.first_mismatches.append(f"vector {v} column {col}: got {val}, expected {exp}")
        return b == beats_per_vec - 1


class TapChecker:
    """In-order compare of the packets an intermediate layer's home tiles mirror to the host (``chan`` 1).

    Parameters
    ----------
    result : NetResult
        Counts ``tap_compared`` / ``tap_mismatches`` there.
    taps : dict of source tag -> ndarray (B, N_t)
        Expected int8 outputs of each mirroring tile, in vector order.
    rows_per_beat, tag_layout, tag_bits, link_bits
        int8 lanes per beat, the tagged beat layout (``rtl.axis.tagged_layout``) and width, flit payload width.
    """

    def __init__(self, result: NetResult, taps: dict, rows_per_beat: int, tag_layout: Any, tag_bits: int,
                 link_bits: int, cycle: Any = None):
        self.res, self.taps, self.rpb, self.cycle = result, taps, rows_per_beat, cycle
        self.layout, self.bits, self.link_bits = tag_layout, tag_bits, link_bits
        self.beat = {t: 0 for t in taps}
        self.expected = sum(int(np.asarray(v).size) for v in taps.values())

    def check(self, frame: Any) -> None:
        res = self.res
        raw = sum(int(wd) << (k * self.link_bits) for k, wd in enumerate(frame.tdata))
        beat = unpack(self.layout, raw & ((1 << self.bits) - 1))
        src = int(beat["src"])
        if src not in self.taps:
            res.format_errors += 1
            return
        want = self.taps[src]
        n = want.shape[1]
        per_vec = -(-n // self.rpb)
        v, b = divmod(self.beat[src], per_vec)
        self.beat[src] += 1
        if v >= want.shape[0]:
            res.extra_outputs += 1
            return
        if b == per_vec - 1 and self.cycle is not None:
            res.tap_done_cycles.setdefault(src, []).append(int(self.cycle()))
        for lane, val in enumerate(beat["data"]):
            col = b * self.rpb + lane
            if col >= n:
                continue
            res.tap_compared += 1
            if val != int(want[v, col]):
                res.tap_mismatches += 1
                if [src, col] not in res.tap_mismatch_at:
                    res.tap_mismatch_at.append([src, col])


def stage_cycles(spec: ChipSpec, layer: MappedLayer) -> int:
    """Cycles per vector of one tile's slowest resource (lower bound of its interval).

    The array port (``layer.mvm_cycles``), the affine unit's
    ``periphery.affine_lanes`` results per cycle (``timing.affine_cycles`` per column
    block), and the flits in and out at one per cycle per link (a conv tile behind its patch buffer: the
    input pixels' beats per output pixel, rounded up).
    """
    p = TileParams.from_spec(spec)
    if getattr(layer, "tile", 0) is None:  # a DigitalLayer: K x ceil(C_out / mac_lanes) per vector
        return timing.digital_matrix_cycles(spec, layer.k_rows, layer.n_cols)
    cols = spec.array.cols
    affine = sum(timing.affine_cycles(spec, min(cols, layer.n_cols - c)) for c in range(0, layer.n_cols, cols))
    link = spec.interconnect.link_width_bits
    flits_per_beat = -(-width_of(act_beat_layout(p)) // link)
    beats_in = -(-layer.k_rows // p.rows_per_dac_beat)
    patch = getattr(layer, "patch", None)
    if patch is not None:  # a conv tile takes the producer's pixels: in_h·in_w·c_beats beats per out_h·out_w vectors
        beats_in = -(-patch.in_h * patch.in_w * patch.c_beats // (patch.out_h * patch.out_w))
    beats_out = -(-layer.n_cols // p.rows_per_dac_beat)
    return max(layer.mvm_cycles, affine, beats_in * flits_per_beat, beats_out * flits_per_beat)
