"""RTL parameters derived from the chip description (one place, checked up front).

Every width and depth the datapath blocks need (tile controller, affine unit,
digital datapath) is derived here from a :class:`archmodel.spec.ChipSpec`, so
that nothing is configured twice (docs/design.md, one-spec principle). The
dataclasses are frozen; their constructors check every constraint the RTL
relies on and raise :class:`ValueError` naming the parameter, its value and
what was expected.

Constraints the RTL relies on (and why)
---------------------------------------
- ``array.rows % array.rows_per_dac_beat == 0``: the tile controller stores
  its input vector in row-group words; a row block must start on a word
  boundary so that one stored word is one DAC beat (all presets satisfy it).
- ``array.cols % array.cols_per_adc_beat == 0``: column ``j`` of a layer is
  lane ``j % cols_per_adc_beat`` of column group ``j // cols_per_adc_beat``,
  and a column block starts on a group boundary.
- ``periphery.accumulator_bits`` holds the exact sum of the ADC codes of the
  ``arrays_per_tile`` row blocks a tile can hold
  (``golden.affine.partial_sum_acc_bits``): no saturation logic exists.
- ``periphery.affine_lanes`` (``L``) is a power of two that divides
  ``array.cols_per_adc_beat`` and ``array.rows_per_dac_beat``: the affine
  unit emits slot ``s`` of a column group (its columns ``s*L .. s*L + L - 1``)
  per cycle, so only a group's final slot is partial, and
  :class:`rtl.axis.ResultPacker` fills an ``act`` beat of ``rows_per_dac_beat``
  int8 with whole ``L``-lane result beats.
- the affine sum ``max(acc + scale, offset) + 1`` fits 64 bits
  (``golden.affine.affine_requantize``).
"""

from __future__ import annotations

from dataclasses import dataclass

from archmodel import timing
from archmodel.errors import AimcError
from archmodel.fixedpoint import ACT_BITS
from archmodel.spec import ChipSpec

__all__ = ["ACT_BITS", "MAX_WEIGHT_WORDS", "DigitalParams", "PatchParams", "TileParams"]

#: Default cap on the digital datapath's weight-memory depth (words), assumed.
MAX_WEIGHT_WORDS = 4096


class RtlParamsError(AimcError, ValueError):
    """A chip description outside what the RTL implements (e.g. isaac's 16-bit DAC: the RTL streams int8
    activations, so a DAC of more than 8 bits has nothing to convert); raised by the ``from_spec`` constructors."""


def _outside_rtl(spec: ChipSpec, exc: ValueError) -> RtlParamsError:
    return RtlParamsError(f"chip '{spec.name}' cannot be built as RTL: {exc} (the mapper's PPA model still "
                          "takes it: aimc map)")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_affine(acc_bits: int, scale_bits: int, offset_bits: int, where: str) -> None:
    sum_bits = max(acc_bits + scale_bits, offset_bits) + 1
    if sum_bits > 64:
        raise ValueError(
            f"{where}: affine sum width max(acc_bits + scale_bits, offset_bits) + 1 = "
            f"max({acc_bits} + {scale_bits}, {offset_bits}) + 1 = {sum_bits} exceeds 64 bits"
        )


@dataclass(frozen=True)
class TileParams:
    """Widths and depths of one analog tile's digital periphery.

    Parameters
    ----------
    array_rows, array_cols : int
        Crossbar array size (``array.rows``, ``array.cols``).
    rows_per_dac_beat : int
        DAC codes per array-port ``dac`` beat (``array.rows_per_dac_beat``);
        divides ``array_rows``.
    cols_per_adc_beat : int
        ADC codes per array-port ``adc`` beat (``array.cols_per_adc_beat``);
        divides ``array_cols``.
    dac_bits : int
        Signed DAC code width, 2..8 (``array.dac_bits``).
    adc_bits : int
        Signed ADC code width (``array.adc_bits``).
    arrays_per_tile : int
        Arrays behind one tile controller (``array.arrays_per_tile``).
    acc_bits : int
        Signed partial-sum accumulator width (``periphery.accumulator_bits``).
    scale_bits, offset_bits : int
        Signed widths of the affine scale and offset
        (``periphery.affine_scale_bits``, ``periphery.affine_offset_bits``).
    affine_lanes : int
        Columns the affine unit accumulates, requantizes and emits per cycle
        (``periphery.affine_lanes``); a power of two dividing ``cols_per_adc_beat``
        and ``rows_per_dac_beat``. Default 1.

    Raises
    ------
    ValueError
        If a constraint of the module docstring does not hold.
    """

    array_rows: int
    array_cols: int
    rows_per_dac_beat: int
    cols_per_adc_beat: int
    dac_bits: int
    adc_bits: int
    arrays_per_tile: int
    acc_bits: int
    scale_bits: int
    offset_bits: int
    affine_lanes: int = 1

    def __post_init__(self) -> None:
        for name in ("array_rows", "array_cols", "rows_per_dac_beat", "cols_per_adc_beat",
                     "arrays_per_tile"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"TileParams.{name} must be a positive integer, got {v!r}")
        if not 2 <= self.dac_bits <= ACT_BITS:
            raise ValueError(f"TileParams.dac_bits must be in [2, {ACT_BITS}], got {self.dac_bits}")
        if not 2 <= self.adc_bits <= 32:
            raise ValueError(f"TileParams.adc_bits must be in [2, 32], got {self.adc_bits}")
        for name in ("acc_bits", "scale_bits", "offset_bits"):
            v = getattr(self, name)
            if not 2 <= v <= 63:
                raise ValueError(f"TileParams.{name} must be in [2, 63], got {v}")
        if self.array_rows % self.rows_per_dac_beat:
            raise ValueError(
                f"array.rows = {self.array_rows} must be a multiple of array.rows_per_dac_beat = "
                f"{self.rows_per_dac_beat} (a row block must start on a DAC-beat boundary)"
            )
        if self.array_cols % self.cols_per_adc_beat:
            raise ValueError(
                f"array.cols = {self.array_cols} must be a multiple of array.cols_per_adc_beat = "
                f"{self.cols_per_adc_beat} (a column block must start on an ADC-beat boundary)"
            )
        lanes = self.affine_lanes
        if not isinstance(lanes, int) or isinstance(lanes, bool) or lanes < 1 or lanes & (lanes - 1):
            raise ValueError(f"periphery.affine_lanes must be a power of two >= 1, got {lanes!r}")
        for name in ("cols_per_adc_beat", "rows_per_dac_beat"):
            if getattr(self, name) % lanes:
                raise ValueError(f"periphery.affine_lanes = {lanes} must divide array.{name} = "
                                 f"{getattr(self, name)} (rtl/params.py: whole lanes per beat)")
        worst = self.arrays_per_tile << (self.adc_bits - 1)
        if worst > (1 << (self.acc_bits - 1)) - 1:
            need = (worst).bit_length() + 1
            raise ValueError(
                f"periphery.accumulator_bits = {self.acc_bits} can overflow: {self.arrays_per_tile} "
                f"row blocks x 2**{self.adc_bits - 1} = {worst}; need accumulator_bits >= {need}"
            )
        _check_affine(self.acc_bits, self.scale_bits, self.offset_bits, "periphery")

    @classmethod
    def from_spec(cls, spec: ChipSpec) -> TileParams:
        """Derive the tile parameters from a chip description.

        Raises
        ------
        RtlParamsError
            (a ValueError) If the chip description violates a constraint of the RTL (module docstring).
        """
        a, p = spec.array, spec.periphery
        try:
            return cls(
                array_rows=a.rows, array_cols=a.cols,
                rows_per_dac_beat=a.rows_per_dac_beat, cols_per_adc_beat=a.cols_per_adc_beat,
                dac_bits=a.dac_bits, adc_bits=a.adc_bits, arrays_per_tile=a.arrays_per_tile,
                acc_bits=p.accumulator_bits, scale_bits=p.affine_scale_bits,
                offset_bits=p.affine_offset_bits, affine_lanes=p.affine_lanes,
            )
        except RtlParamsError:
            raise
        except ValueError as exc:
            raise _outside_rtl(spec, exc) from None

    # ---- derived figures ---------------------------------------------------------
    @property
    def affine_latency_cycles(self) -> int:
        """Pipeline latency of the affine unit's requantizer: :data:`archmodel.timing.AFFINE_LATENCY_CYCLES`
        (a chip description's ``periphery.affine_latency_cycles`` must equal it)."""
        return timing.AFFINE_LATENCY_CYCLES

    @property
    def max_rows(self) -> int:
        """Largest K (rows in use) one tile holds: ``array_rows * arrays_per_tile``."""
        return self.array_rows * self.arrays_per_tile

    @property
    def max_cols(self) -> int:
        """Largest N (columns in use) one tile holds: ``array_cols * arrays_per_tile``."""
        return self.array_cols * self.arrays_per_tile

    @property
    def dac_beats_per_block(self) -> int:
        """DAC beats of a full row block: ``array_rows // rows_per_dac_beat``."""
        return self.array_rows // self.rows_per_dac_beat

    @property
    def adc_beats_per_block(self) -> int:
        """ADC beats of a full column block: ``array_cols // cols_per_adc_beat``."""
        return self.array_cols // self.cols_per_adc_beat

    @property
    def input_words(self) -> int:
        """Row-group words of one stored input vector: ``max_rows // rows_per_dac_beat``."""
        return self.max_rows // self.rows_per_dac_beat

    @property
    def column_groups(self) -> int:
        """ADC-beat column groups of the widest layer: ``max_cols // cols_per_adc_beat``."""
        return self.max_cols // self.cols_per_adc_beat

    @property
    def max_shift(self) -> int:
        """Largest requantization shift: ``acc_bits + scale_bits - 1`` (golden contract)."""
        return self.acc_bits + self.scale_bits - 1

    @property
    def max_chained_row_blocks(self) -> int:
        """Most row blocks (over all tiles of a chain) whose ADC codes add exactly in ``acc_bits``."""
        return ((1 << (self.acc_bits - 1)) - 1) >> (self.adc_bits - 1)


@dataclass(frozen=True)
class DigitalParams:
    """Widths and depths of the digital datapath (layers kept digital).

    Parameters
    ----------
    mac_lanes : int
        Parallel int8 x int8 MAC lanes (``digital.mac_lanes``).
    acc_bits : int
        Signed MAC accumulator width (``digital.accumulator_bits``).
    scale_bits, offset_bits : int
        Signed widths of the requantization scale and offset (the affine
        unit's, ``periphery.affine_scale_bits`` / ``affine_offset_bits``).
    weight_words : int
        Depth of the weight memory in words of ``mac_lanes`` int8 weights.
        From the chip description: ``min(global_buffer_kib * 1024 // mac_lanes,
        MAX_WEIGHT_WORDS)`` (assumed: the weights of a digital layer live in
        the global buffer; the cap keeps the generated Verilog small -- the
        digital layers of ResNet-32 need 27 and 64 words).
    max_channels : int
        Depth of the per-channel coefficient memory (largest C_out), default
        1024 (assumed: a 1000-class classifier fits).

    Raises
    ------
    ValueError
        If a width or depth is out of range.
    """

    mac_lanes: int
    acc_bits: int
    scale_bits: int
    offset_bits: int
    weight_words: int
    max_channels: int = 1024

    def __post_init__(self) -> None:
        for name in ("mac_lanes", "weight_words", "max_channels"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"DigitalParams.{name} must be a positive integer, got {v!r}")
        if not 16 <= self.acc_bits <= 48:
            raise ValueError(f"DigitalParams.acc_bits must be in [16, 48], got {self.acc_bits}")
        for name in ("scale_bits", "offset_bits"):
            v = getattr(self, name)
            if not 2 <= v <= 63:
                raise ValueError(f"DigitalParams.{name} must be in [2, 63], got {v}")
        _check_affine(self.acc_bits, self.scale_bits, self.offset_bits, "digital")

    @classmethod
    def from_spec(cls, spec: ChipSpec, *, max_channels: int = 1024,
                  max_weight_words: int | None = None) -> DigitalParams:
        """Derive the digital-datapath parameters from a chip description.

        Parameters
        ----------
        spec : ChipSpec
        max_channels : int, default 1024
            Coefficient-memory depth (largest C_out).
        max_weight_words : int, optional
            Cap on the weight-memory depth, default :data:`MAX_WEIGHT_WORDS`.

        Raises
        ------
        RtlParamsError
            (a ValueError) If a derived width or depth is out of range (e.g. a global
            buffer smaller than one weight word).
        """
        d, p = spec.digital, spec.periphery
        cap = MAX_WEIGHT_WORDS if max_weight_words is None else max_weight_words
        words = min(int(spec.buffers.global_buffer_kib * 1024) // d.mac_lanes, cap)
        if words < 1:
            raise _outside_rtl(spec, ValueError(
                f"buffers.global_buffer_kib = {spec.buffers.global_buffer_kib} holds no word of "
                f"digital.mac_lanes = {d.mac_lanes} int8 weights"
            ))
        try:
            return cls(mac_lanes=d.mac_lanes, acc_bits=d.accumulator_bits,
                       scale_bits=p.affine_scale_bits, offset_bits=p.affine_offset_bits,
                       weight_words=words, max_channels=max_channels)
        except ValueError as exc:
            raise _outside_rtl(spec, exc) from None

    @property
    def max_k(self) -> int:
        """Largest K (terms per output): fits the weight memory and sums exactly in ``acc_bits``."""
        exact = ((1 << (self.acc_bits - 1)) - 1) >> (2 * (ACT_BITS - 1))
        return min(self.weight_words, exact)

    @property
    def max_shift(self) -> int:
        """Largest requantization shift: ``acc_bits + scale_bits - 1``."""
        return self.acc_bits + self.scale_bits - 1


@dataclass(frozen=True)
class PatchParams:
    """Sizes of one tile's patch buffer (line buffer, :mod:`rtl.patchbuf`; docs/design.md section 11.2).

    Parameters
    ----------
    lanes : int
        int8 channels per word = per ``act`` beat (``array.rows_per_dac_beat``).
    words : int
        Depth of the line-buffer memory in words: ``floor(buffers.sram_kib_per_tile * 1024 / lanes)``
        (assumed: the tile's activation SRAM holds the line buffer; one word = ``lanes`` bytes).
    dim_bits : int, default 10
        Width of a feature-map height/width/coordinate (maps up to 1,023 x 1,023).
    geo_bits : int, default 4
        Width of a kernel size, stride, dilation, padding or first tap (up to 15).

    Raises
    ------
    ValueError
        If a size is not a positive integer.
    """

    lanes: int
    words: int
    dim_bits: int = 10
    geo_bits: int = 4

    def __post_init__(self) -> None:
        for name in ("lanes", "words", "dim_bits", "geo_bits"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"PatchParams.{name} must be a positive integer, got {v!r}")

    @classmethod
    def from_spec(cls, spec: ChipSpec) -> PatchParams:
        """Derive the patch-buffer sizes from a chip description (``tiny``: 4 KiB / 8 lanes = 512 words).

        Raises
        ------
        RtlParamsError
            (a ValueError) If the activation SRAM holds no word.
        """
        lanes = spec.array.rows_per_dac_beat
        words = int(spec.buffers.sram_kib_per_tile * 1024) // lanes
        if words < 1:
            raise _outside_rtl(spec, ValueError(
                f"buffers.sram_kib_per_tile = {spec.buffers.sram_kib_per_tile} holds no word of {lanes} int8"))
        return cls(lanes=lanes, words=words)
