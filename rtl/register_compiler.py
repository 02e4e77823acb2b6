"""Register compiler: a mapped analog layer -> the AXI4-Lite register writes that configure it.

The co-processor (:class:`rtl.top.Coprocessor`) is configured only through
its AXI4-Lite register bank, whose map :func:`rtl.regmap.build_regmap`
derives from the RTL blocks' own ports (docs/design.md, "Interfaces in the RTL").
This module turns one mapped layer into the ordered list of 32-bit writes
that program it on its tile, using that map as the only source of addresses
and field encodings: no address or bit offset is typed here.

What a layer needs (one tile ``t``, registers ``tile<t>.*``):

1. **tile controller** (``tc``): ``k_rows`` = K, ``n_cols`` = N,
   ``n_row_blocks`` / ``n_col_blocks`` = :func:`archmodel.golden.tile_controller.block_counts`
   ``(K, N, array.rows, array.cols)``, ``mode`` (1 = continuous vectors);
2. **affine unit** (``affine``): per column ``j`` the integer ``scale_j`` and
   ``offset_j`` written through the coefficient-memory port (``coef_addr``,
   ``coef_scale``, ``coef_offset``, then a ``coef_we`` pulse in ``ctrl``),
   the layer's ``shift`` and ``relu``, and the mesh chain flags
   (``chain_in`` / ``chain_out``);
3. **network interface** (``ni.dest``): where the int8 results go -- the next
   layer's tile ``(x, y)``, or the host ``(cols, 0)`` (the I/O router east of
   row 0; ``cols + 1`` is the digital datapath).

``start`` / ``stop`` are commands, not configuration: :func:`command_writes`
makes them (every layer of a pipeline is configured before any starts).

Affine coefficients (:func:`analog_layer`): the real per-column multiplier
of :func:`archmodel.golden.coefficients.analog_affine_multiplier` -- conductance scale
``s = g_max / max|W|`` (one per layer, docs/design.md), DAC and ADC LSBs of the
chip description, the GDC factor ``alpha`` (:mod:`archmodel.calibration`),
the folded batch norm -- and the offset of
:func:`archmodel.golden.coefficients.folded_offset`, quantized with
:func:`archmodel.golden.coefficients.quantize_affine` to the affine unit's widths
(``periphery.affine_scale_bits`` / ``affine_offset_bits``, shift up to
``acc_bits + scale_bits - 1``). The same :class:`AffineCoefficients` object is
what the golden model applies, so compiler and reference cannot drift apart.

Timing needs no register (the RTL never assumes the array latency: it waits
for the ADC stream, docs/design.md "The array port"); the layer's
``archmodel.timing.mvm_cycles`` per input vector is carried for the dump.

It sits next to the register map it reads (:mod:`rtl.regmap`) and imports
only ``rtl`` and ``archmodel``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from archmodel import timing
from archmodel.errors import AimcError
from archmodel.golden.affine import AffineCoefficients
from archmodel.golden.coefficients import analog_affine_multiplier, folded_offset, quantize_affine, weight_abs_max
from archmodel.golden.tile_controller import block_counts
from archmodel.spec import ChipSpec
from rtl.params import PatchParams, TileParams
from rtl.patchbuf import PatchConfig, PatchConfigError, patch_config
from rtl.pool import JOIN_DEPTH, PoolConfig, PoolConfigError, pool_config
from rtl.regmap import UNIT_KEYS, RegisterMap, build_regmap, dataflow_units, dest_entries

__all__ = ["DigitalLayer", "MappedLayer", "RegWrite", "WeightStream", "compile_digital_layer", "compile_digital_layers",
           "compile_digital_weights",
           "compile_mapped_network", "conv_layer", "residual_join", "with_pool",
           "JoinConfig", "digital_weight_words", "digital_dest", "digital_layer",
           "digital_start", "analog_layer", "chained_layer", "check_chains", "command_writes", "compile_layer", "compile_network",
           "dump_writes", "host_dest", "tile_coords", "MissingUnitError", "require_unit", "with_digital_patch"]


class JoinConfig(NamedTuple):
    """A tile's residual join (:class:`rtl.pool.ResidualJoin`): the source tags of the two addends and the add's
    integer coefficients (:func:`archmodel.accuracy.requantize_sum`)."""

    src_a: int
    src_b: int
    q0: int
    q1: int
    shift: int
    relu: bool


class InputJoinConfig(NamedTuple):
    """The digital node's input join (:class:`rtl.pool.InputJoin`) in front of its source queues: beats tagged
    ``join.src_a`` / ``join.src_b`` added as a tile's join adds them (``join``), pooled by ``pool`` (None: no
    pool) and queued tagged ``out_src`` (:func:`with_input_join`)."""

    join: JoinConfig
    out_src: int
    pool: PoolConfig | None


class RegWrite(NamedTuple):
    """One AXI4-Lite write: byte address, 32-bit word, register name (for dumps and checks)."""

    addr: int
    data: int
    name: str


@dataclass(frozen=True)
class MappedLayer:
    """One analog layer placed on one tile, ready to compile.

    Attributes
    ----------
    tile : int
        Tile index ``t = y * cols + x`` (row-major, as the mapper places).
    k_rows, n_cols : int
        Matrix rows K (im2col terms) and columns N (outputs).
    coefs : golden.affine.AffineCoefficients
        Integer affine coefficients (``n_cols`` columns, ``shift``, ``relu``).
    dest : tuple of int
        ``(x, y)`` the tile's results go to: a tile, or ``(cols, 0)`` = host.
    mode : int
        Tile-controller mode: 1 = continuous (vectors until ``stop``), 0 = one vector per ``start``.
    chain_in, chain_out : bool
        Mesh partial-sum chain (row blocks on several tiles); False for a layer on one tile.
    gdc_alpha : float
        GDC factor folded into ``coefs`` (reported only).
    g_scale_us : float
        Conductance scale ``g_max / max|W|``, µS per weight unit (reported only; max over the layer also with
        ``mapping.weight_scaling: per_column``, whose per-column scales are in ``coefs``).
    mvm_cycles : int
        Array-port cycles per input vector, ``sum of timing.mvm_cycles`` over the layer's arrays.
    name : str
        Label for dumps.
    dests : tuple of (x, y, lo, hi, chan)
        Destination entries of the results when they go to more than one place
        (a split over a chain's tiles, a multicast to column blocks): beat ``b``
        of a vector goes to every entry with ``lo <= b`` and (``hi == 0`` or
        ``b < hi``); empty: ``dest`` gets every beat. Entry 0 is also where
        partial sums go (``chain_out``), so it must equal ``dest`` then.
    patch : rtl.patchbuf.PatchConfig, optional
        A conv layer's row block: the tile's patch buffer configuration (:func:`conv_layer`); its input is then
        the producer's pixel vectors (C channels each), not its ``k_rows``-long rows. None: bypass.
    pool : rtl.pool.PoolConfig, optional
        A pooling layer applied to this (home) tile's results before they leave (:func:`with_pool`); None: bypass.
    join : JoinConfig, optional
        The tile's input is the residual add of two producers' streams (:func:`residual_join`); None: bypass.
    """

    tile: int
    k_rows: int
    n_cols: int
    coefs: AffineCoefficients
    dest: tuple[int, int]
    mode: int = 1
    chain_in: bool = False
    chain_out: bool = False
    gdc_alpha: float = 1.0
    g_scale_us: float = float("nan")
    mvm_cycles: int = 0
    name: str = ""
    dests: tuple[tuple[int, int, int, int, int], ...] = ()
    patch: PatchConfig | None = None
    pool: PoolConfig | None = None
    join: JoinConfig | None = None

    def __post_init__(self) -> None:
        if self.coefs.n_cols != self.n_cols:
            raise ValueError(f"layer {self.name!r}: {self.coefs.n_cols} affine coefficients for "
                             f"n_cols = {self.n_cols} columns")
        if self.mode not in (0, 1):
            raise ValueError(f"layer {self.name!r}: mode must be 0 or 1, got {self.mode!r}")


@dataclass(frozen=True)
class DigitalLayer:
    """One linear layer on the digital datapath (:class:`rtl.digital.DigitalDatapath`), ready to compile.

    Attributes
    ----------
    w_int8 : ndarray (C_out, K), int64
        int8 weights (``golden.digital.digital_linear`` layout).
    coefs : golden.affine.AffineCoefficients
        Requantization of the exact int32 sums (``C_out`` columns).
    dest : tuple of int
        ``(x, y)`` the results go to (a tile, or the host).
    n_pixels : int
        Vectors per ``start`` (one linear layer: the images of the run; a digital conv: images x output pixels).
    n_vectors : int
        With two layer slots: this layer's vectors per round (``digital.vectors``: slot 0 runs ``n_vectors``
        vectors, then slot 1 its ``n_vectors``, for ``n_pixels / n_vectors`` rounds, :mod:`rtl.digital`);
        1 (default) is the one-vector alternation. digits-cnn: conv1 64 (its output pixels per image), fc 1.
    dests : tuple of (x, y, lo, hi, chan)
        Destination entries, as :class:`MappedLayer` (up to ``rtl.regmap.DIGITAL_DESTS``); layer slot 0 only
        (slot 1's results go to ``dest``, register ``digital.out1``).
    patch : rtl.patchbuf.PatchConfig, optional
        Layer slot 0 is a conv whose patches the digital node's patch buffer builds (``digital.lb.*``,
        :func:`with_digital_patch`) from the input map's pixels (``sources`` then give one image's
        ``H·W·C`` elements per round, not K per vector); None: the input vectors are the patches (bypass).
    pool : rtl.pool.PoolConfig, optional
        Pooling of layer slot 0's results on the digital node's pool unit (``digital.pool.*``, issue 18:
        a digital conv followed by a pool); :func:`with_pool` sets it.
    sources : tuple of (tag, elements)
        Where the input vector comes from, in order (``rtl.regmap.source_tag``: a tile, or the host), and
        how many of its elements each source gives (they add up to K); empty: the host gives all K.
    input_join : InputJoinConfig, optional
        The layer's input (its source tagged ``out_src``) is the digital node's input join of two tiles' streams
        (``digital.add`` / ``digital.ipool``, :func:`with_input_join`); None: the join is switched off.
    w_scale : float
        Real value of one weight step (reported only).
    name : str
    """

    w_int8: np.ndarray
    coefs: AffineCoefficients
    dest: tuple[int, int]
    n_pixels: int = 1
    n_vectors: int = 1
    w_scale: float = 1.0
    name: str = ""
    dests: tuple[tuple[int, int, int, int, int], ...] = ()
    sources: tuple[tuple[int, int], ...] = ()
    pool: PoolConfig | None = None
    patch: PatchConfig | None = None
    input_join: InputJoinConfig | None = None

    @property
    def k_rows(self) -> int:
        return int(self.w_int8.shape[1])

    @property
    def n_cols(self) -> int:
        return int(self.w_int8.shape[0])

    tile = None  # not on a tile: the digital datapath at digital_dest()
    gdc_alpha = 1.0  # no drift in a digital layer
    chain_in = chain_out = False

    def sums(self, x_int8: npt.ArrayLike, acc_bits: int) -> np.ndarray:
        """Exact int32 sums ``x @ w.T`` (``golden.digital.digital_linear``), shape (B, C_out)."""
        from archmodel.golden.digital import digital_linear
        return digital_linear(x_int8, self.w_int8, acc_bits=acc_bits)


def digital_dest(spec: ChipSpec) -> tuple[int, int]:
    """Address of the digital datapath: ``(cols + 1, 0)``, east of the I/O router (:mod:`rtl.top`)."""
    return spec.tile_grid.cols + 1, 0


def digital_layer(spec: ChipSpec, weights: npt.ArrayLike, *, dest: tuple[int, int], in_scale: float,
                  out_scale: float, bias: npt.ArrayLike | None = None, relu: bool = True, n_pixels: int = 1,
                  name: str = "") -> DigitalLayer:
    """Quantize a real K x N weight matrix for the digital datapath (per-layer symmetric int8).

    ``w_scale = max|W| / 127``, ``w_int8 = round(W / w_scale)`` (transposed to
    (N, K)); the requantization multiplier is
    :func:`archmodel.golden.coefficients.digital_affine_multiplier` and the
    offset :func:`archmodel.golden.coefficients.folded_offset`, quantized with
    :func:`archmodel.golden.coefficients.quantize_affine` to the datapath's
    widths (``DigitalParams``).

    Raises
    ------
    ValueError
        Empty or all-zero weights, K or N beyond the datapath, or a coefficient that does not fit.
    """
    from archmodel.golden.coefficients import digital_affine_multiplier
    from rtl.params import DigitalParams

    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.size == 0 or not np.any(w):
        raise ValueError(f"layer {name!r}: weights must be a non-empty, non-zero (K, N) matrix, got {w.shape}")
    dp = DigitalParams.from_spec(spec)
    k, n = w.shape
    if k > dp.max_k or n > dp.max_channels or -(-n // dp.mac_lanes) * k > dp.weight_words:
        raise ValueError(f"layer {name!r}: a {k} x {n} layer does not fit the digital datapath of '{spec.name}' "
                         f"(max_k {dp.max_k}, max_channels {dp.max_channels}, weight_words {dp.weight_words})")
    w_scale = float(np.max(np.abs(w))) / 127.0
    w_int8 = np.clip(np.rint(w / w_scale), -127, 127).astype(np.int64).T.copy()
    m = digital_affine_multiplier(in_scale=in_scale, w_scale=w_scale, out_scale=out_scale)
    b = folded_offset(bias, None, None, None, None, 1e-5, out_scale=out_scale)
    coefs = quantize_affine(np.broadcast_to(m, (n,)), np.broadcast_to(b, (n,)), relu=relu,
                            scale_bits=dp.scale_bits, offset_bits=dp.offset_bits, max_shift=dp.max_shift)
    return DigitalLayer(w_int8=w_int8, coefs=coefs, dest=(int(dest[0]), int(dest[1])), n_pixels=int(n_pixels),
                        w_scale=w_scale, name=name)


def compile_digital_layer(spec: ChipSpec, layer: DigitalLayer, *, regmap: RegisterMap | None = None,
                          weights: bool = True) -> list[RegWrite]:
    """The register writes that configure ``layer`` alone on the digital datapath (:func:`compile_digital_layers`)."""
    return compile_digital_layers(spec, [layer], regmap=regmap, weights=weights)


def digital_weight_words(spec: ChipSpec, layer: DigitalLayer) -> int:
    """Weight-memory words of ``layer``: ``ceil(C_out / mac_lanes) * K`` (word layout of :mod:`rtl.digital`)."""
    return -(-layer.n_cols // spec.digital.mac_lanes) * layer.k_rows


def compile_digital_layers(spec: ChipSpec, layers: Sequence[DigitalLayer], *, regmap: RegisterMap | None = None,
                           weights: bool = True) -> list[RegWrite]:
    """The register writes that configure one or two layers on the digital datapath (nothing is started).

    Layer ``s`` goes to layer slot ``s`` (slot 1 and ``two_layers`` when there are two: per round the
    datapath runs ``n_vectors`` vectors of slot 0, then ``n_vectors`` of slot 1, :mod:`rtl.digital`); its
    weights at word ``w_base`` = the words of the layers before it, its coefficients at ``coef_base`` = their
    channels. Order: slot configuration (``k_terms``, ``c_out``, ``shift``, ``relu`` [, ``w_base1``, ``coef_base1``]); per
    channel ``coef_addr``, ``coef_scale``, ``coef_offset``, ``ctrl.coef_we``; the source queues
    (``digital.src<q>``, one per source, slot order); with ``weights`` the weight pointer
    (``w_addr`` = 0, ``ctrl.w_load``: the words themselves go over AXI4-Stream,
    :func:`compile_digital_weights`, after these writes); ``n_pixels`` (rounds with two layers),
    ``digital.vectors`` and ``two_layers``; the destinations (slot 0: ``digital.dest``..; slot 1: ``digital.out1``),
    the entries slot 0 does not use switched off (``en`` = 0); the pool unit (slot 0's results only), or
    ``digital.pool.en`` = 0 without one; last the digital node's input join (``digital.ipool.*``, ``digital.add.*``
    of the layer's :attr:`DigitalLayer.input_join`), or on a chip with residual joins and no layer with one
    :func:`digital_input_join_off` (2 writes). Every register a layer leaves unused is written to its off state,
    so a reconfigured node keeps nothing of an earlier configuration. ``start`` is a command
    (:func:`digital_start`).

    Raises
    ------
    ValueError
        More than two layers, the layers' weights do not fit the weight memory (one line naming the
        words needed and held), more sources than queues, sources that do not add up to K, with two layers
        vector counts that do not divide ``n_pixels`` into the same rounds or a source queue that one round's
        input would overfill (``rtl.regmap.DIGITAL_QUEUE_BEATS``: the no-full-queue rule of :mod:`rtl.digital`),
        or a value that does not fit its field; more than one layer with an input join, or an input join whose
        ``out_src`` is none of the layers' sources.
    """
    from rtl.params import DigitalParams
    from rtl.regmap import DIGITAL_QUEUE_BEATS, DIGITAL_QUEUES, source_tag

    rm = _regmap(spec, regmap)
    dp = DigitalParams.from_spec(spec)
    lanes = dp.mac_lanes
    if not 1 <= len(layers) <= 2:
        raise ValueError(f"{len(layers)} digital layers: the digital datapath holds one or two (layer slots 0, 1)")
    words = [digital_weight_words(spec, lyr) for lyr in layers]
    if sum(words) > dp.weight_words:
        names = ", ".join(lyr.name or "?" for lyr in layers)
        raise ValueError(f"digital layers {names} need {sum(words):,} weight words of {lanes} int8; the digital "
                         f"datapath of '{spec.name}' holds {dp.weight_words:,} (buffers.global_buffer_kib = "
                         f"{spec.buffers.global_buffer_kib:g}, rtl.params.MAX_WEIGHT_WORDS)")
    two = len(layers) == 2
    rounds = layers[0].n_pixels
    if two:
        for lyr in layers:
            if lyr.n_vectors < 1 or lyr.n_pixels % lyr.n_vectors:
                raise ValueError(f"layer {lyr.name!r}: {lyr.n_vectors} vectors per round do not divide its "
                                 f"{lyr.n_pixels} vectors")
        rounds = layers[0].n_pixels // layers[0].n_vectors
        if layers[1].n_pixels // layers[1].n_vectors != rounds:
            raise ValueError(f"digital layers {layers[0].name!r}, {layers[1].name!r}: "
                             f"{layers[0].n_pixels}/{layers[0].n_vectors} and {layers[1].n_pixels}/"
                             f"{layers[1].n_vectors} are not the same number of rounds")
    out: list[RegWrite] = []

    def w(reg: str, **values: int) -> None:
        addr, word = rm.write(reg, **values)
        out.append(RegWrite(addr, word, reg))

    queue = 0
    w_base = c_base = 0
    beat_lanes = spec.array.rows_per_dac_beat
    for s, lyr in enumerate(layers):
        k, n = lyr.k_rows, lyr.n_cols
        sfx = "1" if s else ""
        c = lyr.coefs
        w(f"digital.k_terms{sfx}", **{f"k_terms{sfx}": k})
        w(f"digital.c_out{sfx}", **{f"c_out{sfx}": n})
        w(f"digital.shift{sfx}", **{f"shift{sfx}": int(c.shift)})
        w(f"digital.relu{sfx}", **{f"relu{sfx}": int(c.relu)})
        if s:
            w("digital.w_base1", w_base1=w_base)
            w("digital.coef_base1", coef_base1=c_base)
        for j in range(n):
            w("digital.coef_addr", coef_addr=c_base + j)
            w("digital.coef_scale", coef_scale=int(c.scale[j]))
            w("digital.coef_offset", coef_offset=int(c.offset[j]))
            w("digital.ctrl", coef_we=1)
        srcs = lyr.sources or ((source_tag(spec, "host"), k),)
        if lyr.patch is not None and s:
            raise ValueError(f"layer {lyr.name!r}: the digital patch buffer serves layer slot 0 only")
        p = lyr.patch
        want = k if p is None else p.in_h * p.in_w * p.c_beats  # with the patch buffer: one input map per round
        per_round = lyr.n_vectors if p is None else 1
        if sum(e for _, e in srcs) != want:
            raise ValueError(f"layer {lyr.name!r}: its sources give {sum(e for _, e in srcs)} elements, "
                             + (f"K = {k}" if p is None else f"the input map has {want}"))
        for tag, elems in srcs:
            if queue >= DIGITAL_QUEUES:
                raise ValueError(f"digital layers need more than the {DIGITAL_QUEUES} source queues")
            beats = per_round * -(-elems // beat_lanes)
            if two and beats > DIGITAL_QUEUE_BEATS:
                raise ValueError(f"layer {lyr.name!r}: one round's input from source {tag} is {beats} beats, its "
                                 f"queue holds {DIGITAL_QUEUE_BEATS} (rtl.regmap.DIGITAL_QUEUE_BEATS; with two layer "
                                 "slots no queue may fill: rtl/digital.py)")
            w(f"digital.src{queue}", src=tag, en=1, slot=s, elems=elems)
            queue += 1
        w_base += words[s]
        c_base += n
    for q in range(queue, DIGITAL_QUEUES):
        w(f"digital.src{q}", src=0, en=0, slot=0, elems=0)
    if weights:  # the weight pointer; the words follow over AXI4-Stream (compile_digital_weights)
        w("digital.w_addr", w_addr=0)
        w("digital.ctrl", w_load=1)
    w("digital.n_pixels", n_pixels=rounds)
    w("digital.vectors", n_vectors0=layers[0].n_vectors if two else 1, n_vectors1=layers[1].n_vectors if two else 1)
    w("digital.two_layers", two_layers=int(two))
    _dest_writes(w, "digital", layers[0], dest_entries(spec)[1])
    units = dataflow_units(spec)
    if layers[0].patch is not None:
        require_unit(spec, "lb", layers[0].name)
        _patch_writes(w, "digital.lb", layers[0].patch)
    elif units["lb"]:
        w("digital.lb.en", en=0)
    if layers[0].pool is not None:  # slot 0's results only (rtl/top.py: slot 1's bypass the pool)
        require_unit(spec, "pool", layers[0].name)
        _pool_writes(w, "digital.pool", layers[0].pool)
    elif units["pool"]:
        _pool_off(w, "digital.pool")
    if two:
        w("digital.out1", x=layers[1].dest[0], y=layers[1].dest[1], chan=0)
    joins = [lyr for lyr in layers if lyr.input_join is not None]
    if len(joins) > 1:
        raise ValueError(f"layers {joins[0].name!r}, {joins[1].name!r}: the digital node has one input join")
    if joins:
        j = joins[0].input_join
        if j.out_src not in [t for lyr in layers for t, _ in lyr.sources]:
            raise ValueError(f"layer {joins[0].name!r}: its input join queues tag {j.out_src}, which no source "
                             "entry of the digital layers takes")
        require_unit(spec, "add", joins[0].name)
        _input_join_writes(w, j)
    elif units["add"]:  # nothing of an earlier network's join stays on (it would capture tags src_a / src_b)
        out += digital_input_join_off(spec, regmap=rm)
    return out


class WeightStream(NamedTuple):
    """The digital datapath's weights as host AXI4-Stream flits (:func:`compile_digital_weights`).

    ``x``, ``y``, ``chan``: the destination (``s_axis.tdest`` = ``{chan, y, x}``: the digital node, the
    weight channel :data:`rtl.top.CHAN_WEIGHT`); ``flits``: ``link_width_bits`` payloads, in order (one
    packet, ``tlast`` on the last flit).
    """

    x: int
    y: int
    chan: int
    flits: list[int]


def compile_digital_weights(spec: ChipSpec, layers: Sequence) -> WeightStream:
    """The weights of a network's digital layers as one stream of flits to the digital node.

    Sent after the configuration writes of :func:`compile_digital_layers` (which set the weight pointer
    to word 0 with ``w_load``): the layers' words back to back (layer slot ``s`` at ``w_base`` = the
    words before it), word ``g*K + k`` of a layer as ``ceil(mac_lanes / lanes)`` flits of
    ``lanes = link_width_bits // 8`` int8 (byte ``b`` of flit ``c`` = ``W[k, g*mac_lanes + c*lanes + b]``,
    0 past ``c_out`` or ``mac_lanes``); the datapath writes one flit per cycle (:mod:`rtl.digital`).
    ``layers``: any mix; the :class:`DigitalLayer` ones are taken, in order.
    """
    from rtl.top import CHAN_WEIGHT

    lanes = spec.digital.mac_lanes
    chunk = spec.interconnect.link_width_bits // 8
    flits: list[int] = []
    for lyr in (lyr for lyr in layers if isinstance(lyr, DigitalLayer)):
        k, n = lyr.k_rows, lyr.n_cols
        w = np.zeros((k, -(-n // lanes) * lanes), np.int64)
        w[:, :n] = lyr.w_int8.T
        for g in range(-(-n // lanes)):
            for kk in range(k):
                for c0 in range(0, lanes, chunk):
                    word = 0
                    for b in range(min(chunk, lanes - c0)):
                        word |= (int(w[kk, g * lanes + c0 + b]) & 0xFF) << (8 * b)
                    flits.append(word)
    x, y = digital_dest(spec)
    return WeightStream(x, y, CHAN_WEIGHT, flits)


def digital_start(spec: ChipSpec, *, regmap: RegisterMap | None = None) -> RegWrite:
    """The ``digital.ctrl.start`` pulse."""
    addr, word = _regmap(spec, regmap).write("digital.ctrl", start=1)
    return RegWrite(addr, word, "digital.ctrl")


def tile_coords(spec: ChipSpec, tile: int) -> tuple[int, int]:
    """``(x, y)`` of tile ``tile`` (row-major). Raises ValueError out of the grid."""
    rows, cols = spec.tile_grid.rows, spec.tile_grid.cols
    if not 0 <= tile < rows * cols:
        raise ValueError(f"tile {tile} is outside the {rows} x {cols} grid of '{spec.name}'")
    return tile % cols, tile // cols


def host_dest(spec: ChipSpec) -> tuple[int, int]:
    """Destination of results for the host: the I/O router at ``(cols, 0)`` (:mod:`rtl.top`)."""
    return spec.tile_grid.cols, 0


def analog_layer(spec: ChipSpec, weights: npt.ArrayLike, *, tile: int, dest: tuple[int, int], in_scale: float,
                 out_scale: float, bias: npt.ArrayLike | None = None, gdc_alpha: npt.ArrayLike = 1.0,
                 relu: bool = True, bn_gamma: npt.ArrayLike | None = None, bn_beta: npt.ArrayLike | None = None,
                 bn_mean: npt.ArrayLike | None = None, bn_var: npt.ArrayLike | None = None, eps: float = 1e-5,
                 mode: int = 1, name: str = "", groups_per_array: int = 1,
                 adc_full_scale_fraction: float | None = None) -> MappedLayer:
    """Map a real K x N weight matrix with its scales onto tile ``tile``: the integer affine coefficients.

    Parameters
    ----------
    spec : ChipSpec
    weights : array_like (K, N)
        Real weights (rows = inputs in im2col order); only ``max|W|`` enters
        the coefficients (conductance scale ``s = g_max_us / max|W|``).
    tile : int
        Home tile of the layer.
    dest : (x, y)
        Where the results go (next layer's tile, or :func:`host_dest`).
    in_scale, out_scale : float
        Real value of one input / output int8 step.
    bias : array_like (N,), optional
        Bias in real output units.
    gdc_alpha : float or array_like (N,)
        GDC factor(s) (:func:`archmodel.calibration.gdc_alpha`).
    relu : bool
    bn_gamma, bn_beta, bn_mean, bn_var, eps : optional
        Batch norm folded into scale and offset (all four or none).
    mode : int
        Tile-controller mode (1 = continuous).
    groups_per_array : int
        Groups of a grouped convolution packed block-diagonally on one array
        (``archmodel.placement.LayerPlacement.groups_per_array``); only 1 is
        supported until the RTL tile controller routes packed groups.
    adc_full_scale_fraction : float, optional
        The layer's ADC full scale as a fraction of ``rows · devices_per_polarity · g_max · V_read``
        (``calibration.adc_range: per_layer``: ``AnalogMatrix.adc_full_scale_fraction`` after
        ``archmodel.calibration.adc_range_from_currents``); default the chip's fixed
        ``array.adc_full_scale_fraction``.

    Returns
    -------
    MappedLayer

    Raises
    ------
    ValueError
        ``groups_per_array`` != 1 (packed groups), the matrix does not fit one tile
        (``block_counts`` > ``arrays_per_tile``), a
        scale is not positive, or a coefficient does not fit the affine unit.
    """
    if groups_per_array != 1:
        raise ValueError(f"layer {name!r}: {groups_per_array} convolution groups packed on one array "
                         "(block-diagonal) are not supported by the RTL tile controller yet; "
                         "only groups_per_array = 1")
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights must be a non-empty (K, N) matrix, got shape {w.shape}")
    k, n = w.shape
    a, per = spec.array, spec.periphery
    n_rb, n_cb = block_counts(k, n, a.rows, a.cols)
    if n_rb * n_cb > a.arrays_per_tile:
        raise ValueError(f"layer {name!r}: a {k} x {n} matrix needs {n_rb} x {n_cb} arrays of {a.rows} x {a.cols}; "
                         f"one tile of '{spec.name}' has array.arrays_per_tile = {a.arrays_per_tile}")
    tile_coords(spec, tile)
    if not np.any(w):
        raise ValueError(f"layer {name!r}: all weights are zero (no conductance scale)")
    w_abs_max = weight_abs_max(w, spec.mapping.weight_scaling)  # float, or (N,) per column
    m = analog_affine_multiplier(
        in_scale=in_scale, out_scale=out_scale, w_abs_max=w_abs_max, g_max_us=spec.device.g_max_us,
        v_read_v=a.v_read_v, array_rows=a.rows, adc_bits=a.adc_bits, dac_bits=a.dac_bits,
        adc_full_scale_fraction=a.adc_full_scale_fraction if adc_full_scale_fraction is None
        else adc_full_scale_fraction, gdc_alpha=gdc_alpha, bn_gamma=bn_gamma, bn_var=bn_var, eps=eps)
    b = folded_offset(bias, bn_gamma, bn_beta, bn_mean, bn_var, eps, out_scale=out_scale)
    m_cols, b_cols = np.broadcast_to(m, (n,)), np.broadcast_to(b, (n,))
    scale_bits, offset_bits, acc_bits = per.affine_scale_bits, per.affine_offset_bits, per.accumulator_bits
    coefs = quantize_affine(m_cols, b_cols, relu=relu, scale_bits=scale_bits, offset_bits=offset_bits,
                                   max_shift=min(62, acc_bits + scale_bits - 1))
    alpha = np.asarray(gdc_alpha, dtype=np.float64)
    return MappedLayer(tile=tile, k_rows=k, n_cols=n, coefs=coefs, dest=(int(dest[0]), int(dest[1])), mode=mode,
                       gdc_alpha=float(alpha.mean()), g_scale_us=spec.device.g_max_us / float(np.max(w_abs_max)),
                       mvm_cycles=timing.layer_mvm_cycles(spec, k, n), name=name)


def chained_layer(spec: ChipSpec, weights: npt.ArrayLike, *, tiles: Sequence[int], rows: Sequence[int],
                  dest: tuple[int, int], name: str = "", **kwargs) -> list[MappedLayer]:
    """Map a K x N matrix too tall for one tile onto a partial-sum chain of tiles.

    Tile ``tiles[i]`` holds rows ``sum(rows[:i]) .. sum(rows[:i+1]) - 1``; every
    tile but the last sends its partial sums (``chain_out``) to the next one
    over the partial-sum mesh (:mod:`rtl.top`), the last (the *home* tile)
    adds them (``chain_in``), requantizes with the layer's coefficients and
    sends the int8 results to ``dest``. A middle tile sets both flags. The
    coefficients are those of the whole matrix (one conductance scale
    ``g_max / max|W|`` for all its tiles, docs/design.md); ``kwargs`` are those
    of :func:`analog_layer` (scales, bias, GDC alpha, ReLU, batch norm, mode).

    Returns
    -------
    list of MappedLayer
        One per tile, upstream first, home last (``compile_network`` order).

    Raises
    ------
    ValueError
        ``rows`` does not add up to K, fewer than two tiles, a tile repeated, a
        slice does not fit its tile, or a coefficient does not fit.
    """
    w = np.asarray(weights, dtype=np.float64)
    tiles, rows = [int(t) for t in tiles], [int(r) for r in rows]
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights must be a non-empty (K, N) matrix, got shape {w.shape}")
    if len(tiles) < 2 or len(tiles) != len(rows) or len(set(tiles)) != len(tiles):
        raise ValueError(f"layer {name!r}: a chain needs >= 2 distinct tiles and one row count each, got tiles "
                         f"{tiles}, rows {rows}")
    if sum(rows) != w.shape[0] or min(rows) < 1:
        raise ValueError(f"layer {name!r}: row counts {rows} do not add up to K = {w.shape[0]}")
    n = w.shape[1]
    amax = float(np.max(np.abs(w)))
    out = []
    r0 = 0
    for i, (t, k) in enumerate(zip(tiles, rows, strict=True)):
        part = w[r0:r0 + k]
        r0 += k
        # analog_layer's coefficients depend on max|W| only: give it the slice with the layer's max|W| in it
        probe = part.copy()
        if float(np.max(np.abs(probe))) < amax:
            probe.flat[0] = amax
        home_tile = i == len(tiles) - 1
        lyr = analog_layer(spec, probe, tile=t, dest=dest if home_tile else tile_coords(spec, tiles[i + 1]),
                           name=f"{name}[{i}]" if name else f"chain[{i}]", **kwargs)
        out.append(replace(lyr, chain_in=i > 0, chain_out=not home_tile,
                           mvm_cycles=timing.layer_mvm_cycles(spec, k, n)))
    return out


class MissingUnitError(AimcError, ValueError):
    """The chip description has no unit of the kind a layer needs (``interconnect.line_buffers``,
    ``pool_units``, ``residual_joins`` false): one line naming the layer, the unit and the key."""


_UNIT_NAMES = {"lb": "line buffer", "pool": "pool unit", "add": "residual join"}


def require_unit(spec: ChipSpec, block: str, layer: str) -> None:
    """Refuse ``layer`` on ``spec`` when the chip has no ``block`` unit (``"lb"``, ``"pool"``, ``"add"``:
    :func:`rtl.regmap.dataflow_units`).

    Raises
    ------
    MissingUnitError
        One line: the layer, the unit and the chip-description key that is false.
    """
    if not dataflow_units(spec)[block]:
        raise MissingUnitError(f"layer {layer!r} needs a {_UNIT_NAMES[block]}; chip {spec.name!r} has none "
                               f"(interconnect.{UNIT_KEYS[block]}: false)")


def conv_layer(spec: ChipSpec, conv, layers: Sequence[MappedLayer]) -> list[MappedLayer]:
    """Attach conv layer ``conv``'s patch-buffer configuration to the tiles that hold its matrix.

    ``layers``: what :func:`analog_layer` (one tile) or :func:`chained_layer` (a partial-sum chain, upstream
    first) made of the layer's tap-major matrix (rows ``(i·kw + j)·C + c``, docs/design.md section 4.8); tile
    ``i`` holds rows ``[r0, r0 + k_rows)`` after the tiles before it, and its patch buffer gives its tile
    controller exactly those beats of every output pixel's patch (:func:`rtl.patchbuf.patch_config`).
    Every tile of the layer receives the producer's whole pixel vectors (a multicast: the producer's
    destination entries each take every beat, ``lo = hi = 0``).

    Raises
    ------
    MissingUnitError
        The chip has no line buffers (``interconnect.line_buffers: false``).
    PatchConfigError
        One line: ``C % rows_per_dac_beat != 0``, a row block not on a beat, the rows not adding up to
        ``kh·kw·C``, a size beyond the registers, or the ring not fitting ``buffers.sram_kib_per_tile``.
    """
    require_unit(spec, "lb", conv.name)
    pp = PatchParams.from_spec(spec)
    kh, kw = conv.attrs["kernel_size"] if conv.op == "conv" else (1, 1)
    k = kh * kw * conv.in_channels  # all input channels (a grouped conv: one block-diagonal matrix)
    out, r0 = [], 0
    for lyr in layers:
        out.append(replace(lyr, patch=patch_config(conv, r0, r0 + lyr.k_rows, pp)))
        r0 += lyr.k_rows
    if r0 != k:
        raise PatchConfigError(f"layer {conv.name!r}: its tiles hold {r0} rows, the matrix has K = {k}")
    return out


def with_pool(spec: ChipSpec, pool, layer: MappedLayer | DigitalLayer) -> MappedLayer | DigitalLayer:
    """``layer`` (a home tile, or a digital layer: the digital node's pool unit) with pooling layer ``pool`` on
    its output stream (:func:`rtl.pool.pool_config`).

    Raises
    ------
    rtl.pool.PoolConfigError
        One line: overlapping or padded windows, ``C % rows_per_dac_beat``, too wide for the pool unit, or
        ``layer`` is not a home tile.
    """
    require_unit(spec, "pool", layer.name)
    if isinstance(layer, DigitalLayer):  # the digital node's pool unit (digital.pool.*)
        return replace(layer, pool=pool_config(pool, spec.array.rows_per_dac_beat))
    if layer.chain_out:
        raise PoolConfigError(f"layer {layer.name!r}: only a home tile's results can be pooled (this one sends "
                              "partial sums)")
    return replace(layer, pool=pool_config(pool, spec.array.rows_per_dac_beat))


def residual_join(spec: ChipSpec, layer: MappedLayer, *, src_a: int, src_b: int, scale_a: float, scale_b: float,
                  out_scale: float, relu: bool, skew_beats: int | None = None) -> MappedLayer:
    """``layer``'s input becomes ``requantize_sum([a, b], [scale_a, scale_b], out_scale, relu)`` of the streams
    tagged ``src_a`` and ``src_b`` (``rtl.regmap.source_tag``), added by the tile's residual join.

    The coefficients are :func:`archmodel.golden.coefficients.quantize_affine` of the two ratios with the
    tile's ``affine_scale_bits`` and :func:`rtl.pool.JOIN_MAX_SHIFT`, exactly as
    :func:`archmodel.accuracy.requantize_sum` computes them. ``skew_beats``: the producers' skew
    (:func:`join_skew_beats`), checked against the join's queue (:func:`check_join_skew`); None: not checked.

    Raises
    ------
    MissingUnitError
        The chip has no residual joins.
    JoinSkewError
        ``skew_beats`` exceeds the join's queue (one line).
    """
    return replace(layer, join=_join_config(spec, layer.name, src_a=src_a, src_b=src_b, scale_a=scale_a,
                                            scale_b=scale_b, out_scale=out_scale, relu=relu, skew_beats=skew_beats))


def _join_config(spec: ChipSpec, name: str, *, src_a: int, src_b: int, scale_a: float, scale_b: float,
                 out_scale: float, relu: bool, skew_beats: int | None) -> JoinConfig:
    """The :class:`JoinConfig` of a tile's join (:func:`residual_join`) or the digital node's input join
    (:func:`with_input_join`): the unit and skew checks (``name`` in the refusals), then ``quantize_affine`` of
    the two ratios with the tile's ``affine_scale_bits`` and :func:`rtl.pool.JOIN_MAX_SHIFT`."""
    from rtl.pool import JOIN_MAX_SHIFT

    require_unit(spec, "add", name)
    if skew_beats is not None:
        check_join_skew(name, skew_beats)
    tp = TileParams.from_spec(spec)
    c = quantize_affine(np.array([scale_a, scale_b], np.float64) / out_scale, 0.0, scale_bits=tp.scale_bits,
                        max_shift=JOIN_MAX_SHIFT(tp))
    return JoinConfig(int(src_a), int(src_b), int(c.scale[0]), int(c.scale[1]), int(c.shift), bool(relu))


def with_digital_patch(spec: ChipSpec, conv, layer: DigitalLayer) -> DigitalLayer:
    """``layer`` (digital conv ``conv``, layer slot 0) with its patches built on chip by the digital node's patch
    buffer (``digital.lb``, :func:`rtl.patchbuf.digital_patch_params`: one int8 per word, so any ``C``): the host
    sends the input map's pixels (raster order, channels contiguous), one ``H·W·C``-element vector per image.

    Raises
    ------
    MissingUnitError
        The chip has no line buffers (``interconnect.line_buffers: false``).
    rtl.patchbuf.PatchConfigError
        One line: not a conv, a geometry beyond the register widths, or a ring that does not fit.
    """
    from rtl.patchbuf import digital_patch_params
    from rtl.regmap import source_tag

    require_unit(spec, "lb", conv.name)
    patch = patch_config(conv, 0, layer.k_rows, digital_patch_params(spec))
    return replace(layer, patch=patch, sources=((source_tag(spec, "host"), patch.in_h * patch.in_w * patch.c_beats),))


def _regmap(spec: ChipSpec, regmap: RegisterMap | None) -> RegisterMap:
    return regmap if regmap is not None else build_regmap(spec)


def compile_layer(spec: ChipSpec, layer: MappedLayer, *, regmap: RegisterMap | None = None) -> list[RegWrite]:
    """The register writes that configure ``layer`` on its tile (nothing is started).

    Order: tile controller (``k_rows``, ``n_cols``, ``n_row_blocks``,
    ``n_col_blocks``, ``mode``), affine unit (``shift``, ``relu``,
    ``chain_in``, ``chain_out``), then per column ``j`` in order
    ``coef_addr = j``, ``coef_scale``, ``coef_offset``, ``ctrl.coef_we = 1``,
    then ``ni.dest`` .. (the unused entries with ``en`` = 0), the patch buffer (``lb.*``, or ``lb.en`` = 0), the
    pool (``pool.*``, or ``pool.en`` = 0), the residual join (``add.*``, or ``add.en`` = 0): nothing of an earlier
    configuration of the tile stays on. Write them in order (the ``coef_we`` pulse stores the
    values written before it).

    Raises
    ------
    ValueError
        A value does not fit its register field (e.g. K larger than the tile holds,
        a destination outside the address range), or the tile does not exist.
    """
    rm = _regmap(spec, regmap)
    a = spec.array
    tile_coords(spec, layer.tile)
    n_rb, n_cb = block_counts(layer.k_rows, layer.n_cols, a.rows, a.cols)
    tc, af, ni = f"tile{layer.tile}.tc", f"tile{layer.tile}.affine", f"tile{layer.tile}.ni"
    out: list[RegWrite] = []

    def w(reg: str, **values: int) -> None:
        addr, word = rm.write(reg, **values)
        out.append(RegWrite(addr, word, reg))

    w(f"{tc}.k_rows", k_rows=layer.k_rows)
    w(f"{tc}.n_cols", n_cols=layer.n_cols)
    w(f"{tc}.n_row_blocks", n_row_blocks=n_rb)
    w(f"{tc}.n_col_blocks", n_col_blocks=n_cb)
    w(f"{tc}.mode", mode=layer.mode)
    c = layer.coefs
    w(f"{af}.shift", shift=int(c.shift))
    w(f"{af}.relu", relu=int(c.relu))
    w(f"{af}.chain_in", chain_in=int(layer.chain_in))
    w(f"{af}.chain_out", chain_out=int(layer.chain_out))
    for j in range(layer.n_cols):
        w(f"{af}.coef_addr", coef_addr=j)
        w(f"{af}.coef_scale", coef_scale=int(c.scale[j]))
        w(f"{af}.coef_offset", coef_offset=int(c.offset[j]))
        w(f"{af}.ctrl", coef_we=1)
    _dest_writes(w, ni, layer, dest_entries(spec)[0])
    for block, cfg in (("lb", layer.patch), ("pool", layer.pool), ("add", layer.join)):
        if cfg is not None:
            require_unit(spec, block, layer.name)
    # what the layer does not use is switched off (a reconfigured tile keeps nothing of an earlier layer); a
    # unit the chip does not have (rtl.regmap.dataflow_units) has nothing to switch off
    units = dataflow_units(spec)
    if layer.patch is not None:
        _patch_writes(w, f"tile{layer.tile}.lb", layer.patch)
    elif units["lb"]:
        w(f"tile{layer.tile}.lb.en", en=0)
    if layer.pool is not None:
        _pool_writes(w, f"tile{layer.tile}.pool", layer.pool)
    elif units["pool"]:
        _pool_off(w, f"tile{layer.tile}.pool")
    add = f"tile{layer.tile}.add"
    if layer.join is not None:
        j = layer.join
        w(f"{add}.q0", q0=j.q0)
        w(f"{add}.q1", q1=j.q1)
        w(f"{add}.shift", shift=j.shift)
        w(f"{add}.en", en=1, relu=int(j.relu), src_a=j.src_a, src_b=j.src_b)
    elif units["add"]:
        w(f"{add}.en", en=0, relu=0, src_a=0, src_b=0)
    return out


def _pool_off(w, block: str) -> None:
    """``{block}.en`` = 0: the pool unit is a wire."""
    w(f"{block}.en", en=0, avg=0)


def _pool_writes(w, block: str, pool: PoolConfig) -> None:
    """``{block}.in`` .. ``{block}.beats`` from ``pool`` (:data:`rtl.regmap.POOL_REGISTERS`), then ``en`` = 1."""
    from rtl.regmap import POOL_REGISTERS

    values = pool.fields()
    for reg, fields in POOL_REGISTERS.items():
        if reg != "en":
            w(f"{block}.{reg}", **{f: values[f] for f, _ in fields})
    w(f"{block}.en", en=1, avg=values["avg"])


def _patch_writes(w, lb: str, patch: PatchConfig) -> None:
    """``{lb}.in`` .. ``{lb}.ring`` from ``patch`` (packing: :data:`rtl.regmap.PATCH_REGISTERS`), then ``en`` = 1."""
    from rtl.regmap import PATCH_REGISTERS

    values = patch.fields()
    for reg, fields in PATCH_REGISTERS.items():
        if reg != "en":
            w(f"{lb}.{reg}", **{f: values[port] for f, port, _ in fields})
    w(f"{lb}.en", en=1)


def _dest_writes(w, ni: str, layer, entries: int) -> None:
    """``{ni}.dest`` .. ``{ni}.dest<e>``: the layer's destination entries (one when ``layer.dests`` is empty), then
    every other entry of the interface with ``en`` = 0."""
    dests = layer.dests or ((layer.dest[0], layer.dest[1], 0, 0, 0),)
    if len(dests) > entries:
        raise ValueError(f"layer {layer.name!r}: {len(dests)} destinations, the network interface has {entries}")
    if tuple(dests[0][:2]) != tuple(layer.dest):
        raise ValueError(f"layer {layer.name!r}: destination entry 0 {dests[0][:2]} is not dest {layer.dest}")
    for e, (x, y, lo, hi, chan) in enumerate(dests):
        extra = {"en": 1} if e else {}
        w(f"{ni}.dest" + (str(e) if e else ""), x=x, y=y, lo=lo, hi=hi, chan=chan, **extra)
    for e in range(len(dests), entries):  # entries the layer does not use: off (none stays on from before)
        w(f"{ni}.dest{e}", x=0, y=0, lo=0, hi=0, chan=0, en=0)


def command_writes(spec: ChipSpec, tiles: Iterable[int], command: str, *,
                   regmap: RegisterMap | None = None) -> list[RegWrite]:
    """``ctrl`` pulses of the tile controllers of ``tiles``: ``command`` is ``"start"`` or ``"stop"``.

    Start the last layer of a pipeline first (give ``tiles`` in reverse layer
    order) so that no tile receives vectors before it runs; a tile that is not
    started does not accept them anyway (back-pressure), so either order works.
    """
    if command not in ("start", "stop"):
        raise ValueError(f"command must be 'start' or 'stop', got {command!r}")
    rm = _regmap(spec, regmap)
    out = []
    for t in tiles:
        tile_coords(spec, t)
        addr, word = rm.write(f"tile{t}.tc.ctrl", **{command: 1})
        out.append(RegWrite(addr, word, f"tile{t}.tc.ctrl"))
    return out


def check_chains(spec: ChipSpec, layers: Sequence[MappedLayer]) -> None:
    """Refuse a partial-sum chain whose row blocks could overflow the home tile's accumulator.

    A chain is a run of consecutive layers with ``chain_out`` set, ending at the
    first layer without it (the home tile). Its row blocks
    (:func:`archmodel.golden.tile_controller.block_counts` of every member) must not exceed
    :attr:`rtl.params.TileParams.max_chained_row_blocks`.

    Raises
    ------
    ValueError
        One line naming the chain's home layer, its row blocks and the limit.
    """
    limit = TileParams.from_spec(spec).max_chained_row_blocks
    a = spec.array
    blocks = 0
    for lyr in layers:
        blocks += block_counts(lyr.k_rows, lyr.n_cols, a.rows, a.cols)[0]
        if not lyr.chain_out:
            if blocks > limit:
                raise ValueError(f"layer {lyr.name!r}: its partial-sum chain adds {blocks} row blocks, more than "
                                 f"the {limit} that fit periphery.accumulator_bits = "
                                 f"{spec.periphery.accumulator_bits} (max_chained_row_blocks)")
            blocks = 0


def compile_network(spec: ChipSpec, layers: Sequence[MappedLayer], *,
                    regmap: RegisterMap | None = None) -> list[RegWrite]:
    """Writes of every layer (in order), then the ``start`` pulses, last layer first.

    ``layers`` may hold one :class:`DigitalLayer` (first or last layer, or
    between tiles); its ``start`` comes after the tiles' (one run of
    ``n_pixels`` vectors).

    Raises
    ------
    ValueError
        Two layers on one tile, a layer's results not sent to the next layer's tile or node, more than
        one digital layer, or a partial-sum chain longer than the accumulator allows (:func:`check_chains`).
    """
    rm = _regmap(spec, regmap)
    analog = [lyr for lyr in layers if not isinstance(lyr, DigitalLayer)]
    digital = [lyr for lyr in layers if isinstance(lyr, DigitalLayer)]
    if len(digital) > 2:
        raise ValueError(f"{len(digital)} digital layers: the digital datapath holds two (layer slots 0, 1)")
    check_chains(spec, analog)
    tiles = [lyr.tile for lyr in analog]
    if len(set(tiles)) != len(tiles):
        raise ValueError(f"two layers share a tile: tiles {tiles}")

    def where(lyr) -> tuple[int, int]:
        return digital_dest(spec) if isinstance(lyr, DigitalLayer) else tile_coords(spec, lyr.tile)

    for i, (a, b) in enumerate(zip(layers[:-1], layers[1:], strict=True)):
        if a.dest != where(b):
            raise ValueError(f"layer {a.name!r} sends its results to {a.dest}, but the next layer {b.name!r} "
                             f"is at {where(b)}")
        if a.chain_out != b.chain_in:
            raise ValueError(f"layer {a.name!r} has chain_out={a.chain_out}, the next layer {b.name!r} "
                             f"chain_in={b.chain_in}: a partial-sum chain must be consecutive")
        if a.chain_out:
            if a.n_cols != b.n_cols:
                raise ValueError(f"chain {a.name!r} -> {b.name!r}: {a.n_cols} != {b.n_cols} columns")
            continue
        k_in = b.k_rows
        j = i + 1
        while layers[j].chain_out and j + 1 < len(layers):  # b starts a chain: its tiles share the inputs
            j += 1
            k_in += layers[j].k_rows
        if getattr(b, "patch", None) is not None:  # a conv: every tile gets the producer's pixel vectors
            k_in = b.patch.c_beats * spec.array.rows_per_dac_beat
        if a.n_cols != k_in:
            raise ValueError(f"layer {a.name!r} has {a.n_cols} outputs, the next layer {b.name!r} "
                             f"{k_in} inputs")
    return _network_writes(spec, layers, rm)


def _network_writes(spec: ChipSpec, layers: Sequence, rm: RegisterMap) -> list[RegWrite]:
    analog = [lyr for lyr in layers if not isinstance(lyr, DigitalLayer)]
    digital = [lyr for lyr in layers if isinstance(lyr, DigitalLayer)]
    out: list[RegWrite] = []
    for lyr in analog:
        out += compile_layer(spec, lyr, regmap=rm)
    if digital:
        out += compile_digital_layers(spec, digital, regmap=rm)
    out += command_writes(spec, reversed([lyr.tile for lyr in analog]), "start", regmap=rm)
    if digital:
        out.append(digital_start(spec, regmap=rm))
    return out


def compile_mapped_network(spec: ChipSpec, layers: Sequence, *, regmap: RegisterMap | None = None) -> list[RegWrite]:
    """Writes of a network whose layers split by columns as well as rows (e.g. a layer on 2 x 2 tiles).

    ``layers``: analog :class:`MappedLayer` (chains consecutive, upstream first) and up to two
    :class:`DigitalLayer` (slot 0 first). Unlike :func:`compile_network` the destinations are not
    checked layer against next layer (a column split sends one layer's results to several tiles and
    merges several home tiles at the digital datapath: the ``dests`` / ``sources`` entries say where);
    the chains are (:func:`check_chains`), and no tile is used twice.

    Raises
    ------
    ValueError
        Two layers on one tile, more than two digital layers, a chain too long, or what
        :func:`compile_layer` / :func:`compile_digital_layers` raise.
    """
    rm = _regmap(spec, regmap)
    analog = [lyr for lyr in layers if not isinstance(lyr, DigitalLayer)]
    if len(layers) - len(analog) > 2:
        raise ValueError(f"{len(layers) - len(analog)} digital layers: the digital datapath holds two")
    check_chains(spec, analog)
    tiles = [lyr.tile for lyr in analog]
    if len(set(tiles)) != len(tiles):
        raise ValueError(f"two layers share a tile: tiles {tiles}")
    return _network_writes(spec, layers, rm)


def dump_writes(spec: ChipSpec, writes: Sequence[RegWrite], *, regmap: RegisterMap | None = None) -> str:
    """A readable listing: one line per write, address, register, word and the decoded fields.

    Consecutive coefficient writes are kept (one line each); the header names
    the chip description, the map digest and the number of writes.
    """
    rm = _regmap(spec, regmap)
    lines = [f"# {len(writes)} AXI4-Lite writes for chip description '{spec.name}' (register map {rm.digest})",
             "#  address  register                        word        fields"]
    for wr in writes:
        fields = rm.decode(wr.name, wr.data)
        text = " ".join(f"{k}={v}" for k, v in fields.items())
        lines.append(f"  {wr.addr:#06x}   {wr.name:<30s}  {wr.data:#010x}  {text}")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the digital node's input join (issue 18)
class JoinSkewError(AimcError, ValueError):
    """A residual join whose producers' skew overflows its queue (a head-of-line deadlock): one line."""


def check_join_skew(name: str, skew_beats: int, depth: int = JOIN_DEPTH) -> None:
    """Refuse a join whose producers' skew (:func:`join_skew_beats`) exceeds its queues' ``depth`` beats
    (:data:`rtl.pool.JOIN_DEPTH`, both the tiles' :class:`rtl.pool.ResidualJoin` and the digital node's
    :class:`rtl.pool.InputJoin`): the leading producer's beats would fill its queue while the other queue
    waits for a beat behind them on the one input link (docs/design.md section 11.2).

    Raises
    ------
    JoinSkewError
        One line naming the join, the skew and the depth.
    """
    if skew_beats > depth:
        raise JoinSkewError(f"residual join {name!r}: its producers' skew is {skew_beats} beats, the join's queue "
                            f"holds {depth} (rtl.pool.JOIN_DEPTH): the leading stream would block the link the other "
                            "one needs")


def _need(layer) -> np.ndarray:
    """For each output pixel (raster order) of ``layer``, the raster index of the last input pixel it reads:
    a conv's or pool's window's bottom-right tap (clipped to the map: padding past the bottom / right is zeros),
    ``H·W − 1`` for a global pool; any other op maps pixel ``p`` to ``p``."""
    c, h, w = (tuple(layer.input_shapes[0]) + (1, 1))[:3]
    if layer.op == "global_avgpool":
        return np.array([h * w - 1], np.int64)
    if layer.op == "conv":
        a = layer.attrs
        (kh, kw), (sh, sw), (dh, dw), (pt, pl) = a["kernel_size"], a["stride"], a["dilation"], a["padding"][:2]
    elif layer.op in ("maxpool", "avgpool"):
        a = layer.attrs
        (kh, kw), (sh, sw), (dh, dw), (pt, pl) = a["kernel"], a["stride"], (1, 1), tuple(a["padding"])[:2]
    else:
        return np.arange(h * w, dtype=np.int64)
    _, ho, wo = layer.output_shape
    y = np.clip(np.arange(ho) * sh - pt + (kh - 1) * dh, 0, h - 1)
    x = np.clip(np.arange(wo) * sw - pl + (kw - 1) * dw, 0, w - 1)
    return (y[:, None] * w + x[None, :]).reshape(-1).astype(np.int64)


def join_skew_beats(spec: ChipSpec, branch_a: Sequence, branch_b: Sequence) -> int:
    """The producers' skew at a residual join, in beats of one of its queues.

    ``branch_a`` / ``branch_b``: the network layers (``archmodel.network.Layer`` with inferred shapes) from the
    two branches' common producer to the join's two inputs, in order (empty: the producer's stream itself; a
    shortcut). Model (data dependencies only, every unit infinitely fast -- what can be in a queue at most
    while the other waits): output pixel ``p`` of a branch needs the common stream up to raster index
    ``need(p)`` (each conv / pool: its window's last pixel, :func:`_need`, composed along the branch); when the
    join waits for pixel ``p`` of both branches the producer has sent ``s = max(need_a(p), need_b(p))``, so
    a branch has made ``count(s) = #{q : need(q) <= s}`` pixels, of which ``count(s) − p`` wait in its queue.
    Skew = ``max_p max(count_a(s), count_b(s)) − p`` pixels × ``ceil(C / rows_per_dac_beat)`` beats per
    pixel (``C``: the join's channels). digits-resnet's b1_add (two 3 x 3 pad-1 convs on an 8-wide map against
    the shortcut): need(0) = 2·8 + 2 = 18, 19 pixels x 2 beats = 38.

    Raises
    ------
    ValueError
        The two branches do not end on maps of the same size, or both are empty (no join).
    """
    def need(branch) -> np.ndarray:
        idx = None
        for layer in reversed(list(branch)):
            n = _need(layer)
            idx = n if idx is None else n[idx]
        return idx

    if not branch_a and not branch_b:
        raise JoinSkewError("a residual add of one stream with itself (both branches empty): the RTL's join "
                            "takes two different producers")
    src = (branch_a or branch_b)[0].input_shapes[0]
    hw = int(np.prod(src[1:])) if len(src) == 3 else 1
    na, nb = need(branch_a), need(branch_b)
    na = np.arange(hw, dtype=np.int64) if na is None else na
    nb = np.arange(hw, dtype=np.int64) if nb is None else nb
    if na.shape != nb.shape:
        raise ValueError(f"the branches end on {na.size} and {nb.size} pixels: not a join of two maps")
    s = np.maximum(na, nb)
    held = np.maximum(np.searchsorted(np.sort(na), s, side="right"), np.searchsorted(np.sort(nb), s, side="right"))
    pixels = int(np.max(held - np.arange(na.size)))
    last = (branch_a or branch_b)[-1]
    c = int(last.output_shape[0])
    return pixels * -(-c // spec.array.rows_per_dac_beat)


def with_input_join(spec: ChipSpec, layer: DigitalLayer, *, src_a: int, src_b: int, scale_a: float, scale_b: float,
                    out_scale: float, relu: bool, out_src: int | None = None, pool=None,
                    skew_beats: int | None = None) -> DigitalLayer:
    """``layer`` (a digital layer) with the digital node's input join in front of its source queue: beats tagged
    ``src_a`` / ``src_b`` (``rtl.regmap.source_tag``) become ``requantize_sum([a, b], [scale_a, scale_b],
    out_scale, relu)`` (coefficients as :func:`residual_join`), pooled by ``pool`` (a pooling layer,
    :func:`rtl.pool.pool_config`; None: no pool), and enter the source queues tagged ``out_src`` (default
    ``src_a``; give ``layer.sources`` an entry ``(out_src, elements)``); beats with other tags pass
    (:class:`rtl.pool.InputJoin`). :func:`compile_digital_layers` writes it (:func:`digital_input_join`'s
    registers). ``skew_beats``: as :func:`residual_join`.

    Raises
    ------
    MissingUnitError
        The chip has no residual joins (``interconnect.residual_joins: false``).
    JoinSkewError
        ``skew_beats`` exceeds the join's queue (one line).
    rtl.pool.PoolConfigError
        One line: a pool the pool unit cannot run.
    """
    return replace(layer, input_join=_input_join_config(
        spec, layer.name or "the digital node's input join", src_a=src_a, src_b=src_b, scale_a=scale_a,
        scale_b=scale_b, out_scale=out_scale, relu=relu, out_src=out_src, pool=pool, skew_beats=skew_beats))


def _input_join_config(spec: ChipSpec, name: str, *, src_a: int, src_b: int, scale_a: float, scale_b: float,
                       out_scale: float, relu: bool, out_src: int | None, pool, skew_beats: int | None
                       ) -> InputJoinConfig:
    """The :class:`InputJoinConfig` of :func:`with_input_join` (``name`` for the refusals)."""
    join = _join_config(spec, name, src_a=src_a, src_b=src_b, scale_a=scale_a, scale_b=scale_b,
                        out_scale=out_scale, relu=relu, skew_beats=skew_beats)
    pc = None if pool is None else pool_config(pool, spec.array.rows_per_dac_beat)
    return InputJoinConfig(join, int(src_a if out_src is None else out_src), pc)


def _input_join_writes(w, j: InputJoinConfig) -> None:
    """``digital.ipool.*`` (or ``ipool.en`` = 0), ``digital.add.q0`` / ``q1`` / ``shift``, then ``digital.add.en``."""
    if j.pool is not None:
        _pool_writes(w, "digital.ipool", j.pool)
    else:
        w("digital.ipool.en", en=0, avg=0)
    a = j.join
    w("digital.add.q0", q0=a.q0)
    w("digital.add.q1", q1=a.q1)
    w("digital.add.shift", shift=a.shift)
    w("digital.add.en", en=1, relu=int(a.relu), src_a=a.src_a, src_b=a.src_b, out_src=j.out_src)


def digital_input_join(spec: ChipSpec, *, src_a: int, src_b: int, scale_a: float, scale_b: float, out_scale: float,
                       relu: bool, out_src: int | None = None, pool=None, skew_beats: int | None = None,
                       regmap: RegisterMap | None = None) -> list[RegWrite]:
    """Register writes of the digital node's input join (``digital.add.*``) and the pool after it
    (``digital.ipool.*``), as :func:`with_input_join` configures it (same arguments). A network compiled with
    :func:`compile_digital_layers` gets them from its layer's :attr:`DigitalLayer.input_join` instead (written
    after these, that function would switch the join off again).

    Raises
    ------
    MissingUnitError, JoinSkewError, rtl.pool.PoolConfigError
        As :func:`with_input_join`.
    ValueError
        A value that does not fit its field.
    """
    rm = _regmap(spec, regmap)
    out: list[RegWrite] = []

    def w(reg: str, **values: int) -> None:
        addr, word = rm.write(reg, **values)
        out.append(RegWrite(addr, word, reg))

    _input_join_writes(w, _input_join_config(spec, "the digital node's input join", src_a=src_a, src_b=src_b,
                                             scale_a=scale_a, scale_b=scale_b, out_scale=out_scale, relu=relu,
                                             out_src=out_src, pool=pool, skew_beats=skew_beats))
    return out


def digital_input_join_off(spec: ChipSpec, *, regmap: RegisterMap | None = None) -> list[RegWrite]:
    """Register writes that turn the digital node's input join and its pool off (a wire); none on a chip
    without residual joins (nothing to turn off)."""
    if not dataflow_units(spec)["add"]:
        return []
    rm = _regmap(spec, regmap)
    return [RegWrite(*rm.write("digital.add.en", en=0, relu=0, src_a=0, src_b=0, out_src=0), "digital.add.en"),
            RegWrite(*rm.write("digital.ipool.en", en=0, avg=0), "digital.ipool.en")]


__all__ += ["InputJoinConfig", "JoinSkewError", "check_join_skew", "digital_input_join", "digital_input_join_off",
            "join_skew_beats", "with_input_join"]
