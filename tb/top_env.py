"""Top-level co-simulation environment: a small network on the co-processor, over AXI.

Structure (after cocotb's ``examples/matrix_multiplier``)::

    NetworkJob ──prepare_network()──► PreparedNetwork: per layer an AnalogMatrix
        (programmed, drifted), a MappedLayer (rtl.register_compiler: affine
        coefficients, GDC alpha, tile, destination), its int8 inputs and outputs
        (the golden run), and the AXI4-Lite writes that configure the chip
    TopTestbench(dut, prepared)
      ├─ config driver : cocotbext-axi AxiLiteMaster replays the compiler's writes
      │                  (every response checked), reads back status registers; between
      │                  the configuration and the starts, the digital layers' weights as
      │                  one packet on s_axis, tdest = {chan 1, 0, cols + 1} (send_weights)
      ├─ input driver  : cocotbext-axi AxiStreamSource -> s_axis: one packet per
      │                  ``act`` beat of the first layer, tdest = {chan 0, y, x} of its tile
      ├─ bridges       : tb.bridge.PCMArrayBridge on the array port of every used tile
      │                  (same AnalogMatrix as the golden run); each also checks the
      │                  DAC codes it receives against the golden layer input
      │                  (so intermediate results routed over the mesh are compared too)
      ├─ monitor       : cocotbext-axi AxiStreamSink on m_axis (random pauses =
      │                  back-pressure into the mesh); packets -> act beats -> int8
      └─ checker       : in-order compare of the last layer's int8 outputs with the
                         golden run; counts compared items and mismatches

Golden run (:func:`prepare_network`, the same seed): layer ``l`` programs its
matrix with ``default_rng([seed, 1, l])`` (GDC reference, drift to ``t_inf_s``,
GDC alpha with :mod:`archmodel.calibration`), its partial sums are
``AnalogMatrix.mvm_partial_sums(golden.tile_controller.dac_codes(x_l))`` (output-noise key =
vector index, as the bridge uses), its output scale maps the 99th percentile
of ``|y|`` to 100 (some outputs saturate), its coefficients come from
:func:`rtl.register_compiler.analog_layer`, and
``x_{l+1} = coefs.apply(psums)`` (:func:`archmodel.golden.affine.affine_requantize`).
The next layer's input scale is this layer's output scale.

The host's share of the work: it cuts each input vector into ``act`` beats
(``rows_per_dac_beat`` int8 lanes, ``last`` on the final one) and each beat
into ``ceil(beat bits / link_width_bits)`` flits (one AXI4-Stream packet,
least significant chunk first, :class:`rtl.axis.BeatToFlits` order); results
come back the same way (packed by :class:`rtl.axis.ResultPacker`, zero lanes
beyond N), so reordering is only concatenating lanes.

Randomness: weights, inputs and biases from ``default_rng([seed, 0])``;
programming noise and drift from ``default_rng([seed, 1, l])``; the per-MVM
output-noise seed of layer ``l`` from ``SeedSequence([seed, l])``; the stalls of
the testbench (AXI pause generators, bridges) from ``default_rng([seed, 2])``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from archmodel import calibration
from archmodel.accuracy import _pool_int, mvm_rows, requantize_sum, tap_major_order
from archmodel.analog_matrix import AnalogMatrix
from archmodel.golden.coefficients import analog_affine_multiplier
from archmodel.golden.tile_controller import dac_codes
from archmodel.spec import ChipSpec
from rtl.axis import tagged_layout
from rtl.params import DigitalParams, TileParams
from rtl.pool import JOIN_MAX_SHIFT
from rtl.register_compiler import (
    DigitalLayer,
    MappedLayer,
    RegWrite,
    WeightStream,
    analog_layer,
    chained_layer,
    compile_digital_weights,
    compile_network,
    conv_layer,
    digital_dest,
    digital_layer,
    host_dest,
    residual_join,
    tile_coords,
    with_pool,
)
from rtl.regmap import RegisterMap, build_regmap, source_bits, source_tag
from rtl.tile_controller import act_beat_layout
from tb.packing import pack, width_of
from tb.tile_env import resolve_spec
from tb.top_bridge import checking_bridge_class
from tb.top_checker import NetResult, OutputChecker, TapChecker, stage_cycles

__all__ = ["ORDERS", "NetworkJob", "PreparedNetwork", "TopTestbench", "conv_job", "host_order", "mlp_job", "prepare_network",
           "run_top_scenarios"]

TOP_NAME = "aimc_top"


# ======================================================================== job and golden run


@dataclass
class NetworkJob:
    """A chain of analog (linear) layers, one per tile, to run through the co-processor.

    Attributes
    ----------
    name : str
    arch : str
        Chip description (preset name or YAML path).
    changes : dict
        Dotted-path changes (``ChipSpec.replace``).
    seed : int
    t_inf_s : float or None
        Drift time after programming, s (None: as programmed, no read noise).
    weights : list of ndarray (K_l, N_l)
        Real weights; ``N_l == K_{l+1}``.
    biases : list of ndarray (N_l,)
        Biases in real output units.
    tiles : list of int or list of int
        Tile of each layer (all distinct); a list = a partial-sum chain (upstream
        tiles first, home tile last, :func:`rtl.register_compiler.chained_layer`).
        Only the first layer may be chained (a tile's results go to one tile).
    chain_rows : dict of int -> list of int
        Rows of each tile of a chained layer (default: full tiles, the rest on the home tile).
    x : ndarray (B, K_0), int64
        int8 input vectors.
    relu : list of bool
    in_scale : float
        Real value of one input int8 step of the first layer.
    """

    name: str
    arch: str
    changes: dict[str, Any]
    seed: int
    t_inf_s: float | None
    weights: list[np.ndarray]
    biases: list[np.ndarray]
    tiles: list[int]
    x: np.ndarray
    relu: list[bool]
    in_scale: float = 1.0 / 64
    chain_rows: dict[int, list[int]] | None = None
    digital: list[bool] | None = None  # layer l on the digital datapath (tiles[l] ignored)
    convs: list | None = None  # layer l: an archmodel conv Layer (weights[l] in tap-major row order), or None
    pools: list | None = None  # layer l's results pooled on its home tile: a pooling Layer, or None
    residual: tuple[int, int] | None = None  # (l, j): layer l's input = ReLU(layer l-1's map + layer j's map)


def mlp_job(arch: str, sizes: Sequence[int], tiles: Sequence[int], n_vectors: int, seed: int, *,
            changes: dict[str, Any] | None = None, t_inf_s: float | None = 0.0, name: str | None = None) -> NetworkJob:
    """An MLP ``sizes[0] -> sizes[1] -> ...`` with layer ``l`` on ``tiles[l]``; ReLU after every layer but the last.

    Weights are standard normal, biases normal(0, 0.5), inputs uniform int8
    (vector 0 alternates +127 / -128, the extremes).
    """
    if len(sizes) < 2 or len(tiles) != len(sizes) - 1:
        raise ValueError(f"need len(tiles) = len(sizes) - 1 >= 1, got sizes {list(sizes)}, tiles {list(tiles)}")
    rng = np.random.default_rng([seed, 0])
    ws = [rng.standard_normal((k, n)) for k, n in zip(sizes[:-1], sizes[1:], strict=True)]
    bs = [rng.normal(0.0, 0.5, n) for n in sizes[1:]]
    x = rng.integers(-128, 128, (n_vectors, sizes[0]))
    x[0, ::2], x[0, 1::2] = 127, -128
    relu = [True] * (len(ws) - 1) + [False]
    label = name or "mlp " + "-".join(str(s) for s in sizes)
    return NetworkJob(label, arch, dict(changes or {}), int(seed), t_inf_s, ws, bs,
                      [list(t) if isinstance(t, (list, tuple)) else int(t) for t in tiles], x, relu)


def conv_job(arch: str, input_shape: Sequence[int], convs: Sequence[dict], tiles: Sequence, n_images: int, seed: int,
             *, changes: dict[str, Any] | None = None, t_inf_s: float | None = 0.0, name: str | None = None,
             chain_rows: dict[int, list[int]] | None = None, pools: Sequence | None = None,
             residual: tuple[int, int] | None = None) -> NetworkJob:
    """A chain of conv layers (issue 18): ``convs[l]`` = ``NetworkBuilder.conv`` keywords (``out_channels``,
    ``kernel_size``, ``stride``, ``padding``, ``dilation``) of layer ``l``, on ``tiles[l]`` (a list: a
    partial-sum chain whose tiles all receive the producer's pixels). ReLU after every layer but the last.
    ``pools[l]``: None, ``("maxpool", k)``, ``("avgpool", k)`` or ``("global_avgpool",)`` after layer ``l``
    (on its home tile's output stream). ``residual = (l, j)``: layer ``l``'s input is
    ``requantize_sum([map_{l-1}, map_j], relu=True)``, added by the residual join of layer ``l``'s tile.

    Weights standard normal, drawn in im2col row order ``(c·kh + i)·kw + j`` and permuted to the chip's
    tap-major order (:func:`archmodel.accuracy.tap_major_order`); biases normal(0, 0.5); images uniform int8
    ``(n_images, C, H, W)``.
    """
    from archmodel.network.builder import NetworkBuilder

    b = NetworkBuilder("convs", tuple(input_shape))
    prev = b.input
    pools = list(pools or [None] * len(convs))
    for i, kw in enumerate(convs):
        prev = b.conv(f"conv{i + 1}", prev, **kw)
        if pools[i] is not None:
            prev = getattr(b, pools[i][0])(f"pool{i + 1}", prev, *pools[i][1:])
    net = b.build()
    layers = [net.layer(f"conv{i + 1}") for i in range(len(convs))]
    pool_layers = [net.layer(f"pool{i + 1}") if pools[i] is not None else None for i in range(len(convs))]
    rng = np.random.default_rng([seed, 0])
    ws, bs = [], []
    for lyr in layers:
        k, n = lyr.matrix_shape
        ws.append(rng.standard_normal((k, n))[tap_major_order(lyr)])
        bs.append(rng.normal(0.0, 0.5, n))
    x = rng.integers(-128, 128, (n_images, *input_shape))
    relu = [True] * (len(ws) - 1) + [False]
    label = name or "convs " + " -> ".join(f"{lyr.name} {lyr.matrix_shape}" for lyr in layers)
    return NetworkJob(label, arch, dict(changes or {}), int(seed), t_inf_s, ws, bs,
                      [list(t) if isinstance(t, (list, tuple)) else int(t) for t in tiles], x, relu,
                      chain_rows=chain_rows, convs=layers, pools=pool_layers if any(pools) else None,
                      residual=residual)


@dataclass
class PreparedNetwork:
    """The golden run of a :class:`NetworkJob` and its configuration."""

    job: NetworkJob
    spec: ChipSpec
    params: TileParams
    regmap: RegisterMap
    matrices: list[AnalogMatrix | None]  # per mapped layer (None: digital; a chain's tiles hold row slices)
    layers: list[MappedLayer]     # per tile, in compile order (a chain: upstream tiles, then home)
    inputs: list[np.ndarray]     # int8 input vectors of each mapped layer's rows, (B, K_t) (a conv: B·P patch rows)
    expected: np.ndarray         # int8 outputs of the last layer, (B, N_last)
    writes: list[RegWrite]       # configuration, then the start pulses
    entry: list[int] = None      # mapped layers the host feeds (the first layer's tiles)  # type: ignore[assignment]
    layer_outputs: list[np.ndarray] = None  # int8 outputs of every network layer  # type: ignore[assignment]
    taps: dict | None = None     # source tag -> expected int8 outputs a tile mirrors to the host (chan 1)
    weights: WeightStream | None = None  # digital weights over s_axis (None: compile_digital_weights(layers))
    feeds: dict | None = None    # mapped layer -> what the host sends it when not inputs[l] (a conv: pixel vectors)
    host_streams: list | None = None  # [(mapped layer, source tag, vectors)]: the host's streams instead of `entry`

    @property
    def n_vectors(self) -> int:
        """Output vectors of the last layer (images; B·P for a conv)."""
        return int(self.expected.shape[0])

    @property
    def n_outputs(self) -> int:
        return int(self.expected.size)


def prepare_network(job: NetworkJob) -> PreparedNetwork:
    """Program every layer, run the golden model, compile the configuration (module docstring).

    Raises
    ------
    ValueError
        A layer does not fit its tile, or the chain is inconsistent.
    """
    spec = resolve_spec(job.arch, job.changes)
    p = TileParams.from_spec(spec)
    rm = build_regmap(spec)
    a = spec.array
    dp = DigitalParams.from_spec(spec)
    x = np.asarray(job.x, dtype=np.int64)
    in_scale = float(job.in_scale)
    matrices, layers, inputs = [], [], []
    entry: list[int] = []
    outs: list[np.ndarray] = []
    feeds: dict[int, np.ndarray] = {}
    maps: list = []     # each layer's output map (conv) for a residual join
    scales: list = []   # each layer's output scale
    homes: list = []    # each layer's home tile
    join: dict = {}
    for li, (w, bias, tile) in enumerate(zip(job.weights, job.biases, job.tiles, strict=True)):
        w = np.asarray(w, dtype=np.float64)
        k, n = w.shape
        conv = job.convs[li] if job.convs else None
        pixels = None
        if job.residual and li == job.residual[0]:  # the residual join at this layer's tile (rtl.pool.ResidualJoin)
            j = job.residual[1]
            real = np.maximum(x * in_scale + maps[j] * scales[j], 0.0)
            s_z = float(np.percentile(np.abs(real), 99)) / 100.0 or 1.0
            x = requantize_sum([x, maps[j]], [in_scale, scales[j]], s_z, relu=True, scale_bits=p.scale_bits,
                               max_shift=JOIN_MAX_SHIFT(p)).astype(np.int64)
            join = dict(src_a=source_tag(spec, homes[li - 1]), src_b=source_tag(spec, homes[j]), scale_a=in_scale,
                        scale_b=scales[j], out_scale=s_z, relu=True)
            in_scale = s_z
        if conv is not None:  # x is the (B, C, H, W) map: the MVM rows are its tap-major patches (contract s. 1)
            pixels = x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])  # what the producer sends: pixel vectors
            x = mvm_rows(conv, x, tap_major=True)[0].astype(np.int64)
        if x.shape[1] != k:
            raise ValueError(f"layer {li}: {k} inputs, but the previous layer gives {x.shape[1]}")
        is_digital = bool(job.digital and job.digital[li])
        chain = list(tile) if isinstance(tile, list) else [int(tile)]
        last = li == len(job.weights) - 1
        if is_digital:
            dest = host_dest(spec) if last else _layer_coords(spec, job, li + 1)
            probe = digital_layer(spec, w, dest=dest, in_scale=in_scale, out_scale=1.0, relu=bool(job.relu[li]))
            sums = probe.sums(x, dp.acc_bits)
            y = sums * (in_scale * probe.w_scale) + np.asarray(bias, dtype=np.float64)
            out_scale = float(np.percentile(np.abs(y), 99)) / 100.0
            if not math.isfinite(out_scale) or out_scale <= 0:
                out_scale = 1.0
            dl = digital_layer(spec, w, dest=dest, in_scale=in_scale, out_scale=out_scale, bias=bias,
                               relu=bool(job.relu[li]), n_pixels=x.shape[0], name=f"layer{li}")
            if not last:
                dl = replace(dl, dests=_split_dests(spec, job, li + 1))
            if li > 0:  # the previous layer's home tile gives the whole vector
                dl = replace(dl, sources=((source_tag(spec, layers[-1].tile), k),))
            if li == 0:
                entry.append(len(layers))
            matrices.append(None)
            layers.append(dl)
            inputs.append(x)
            x = dl.coefs.apply(sums, acc_bits=dp.acc_bits, scale_bits=dp.scale_bits, offset_bits=dp.offset_bits)
            outs.append(x)
            maps.append(None)
            scales.append(out_scale)
            homes.append(None)
            in_scale = out_scale
            continue
        noise_seed = int(np.random.SeedSequence([job.seed, li]).generate_state(1)[0])
        rng = np.random.default_rng([job.seed, 1, li])
        matrix = AnalogMatrix(spec, noise_seed=noise_seed).program(w, rng)
        alpha = 1.0
        if job.t_inf_s is not None:
            cal = calibration.gdc_calibration_inputs(spec.calibration.gdc_input, spec.calibration.gdc_vectors, k,
                                                     seed=job.seed)
            ref = calibration.gdc_reference(matrix, cal)
            matrix.drift(float(job.t_inf_s), rng)
            alpha = float(calibration.gdc_alpha(matrix, cal, ref))
        if len(chain) > 1:
            rows = _chain_rows(spec, job, li)
            parts, r0 = [], 0
            for ci, r in enumerate(rows):
                parts.append((slice(r0, r0 + r), matrix.row_slice(r0, r0 + r, noise_seed + 1 + ci)))
                r0 += r
            psums = sum(mt.mvm_partial_sums(dac_codes(x[:, sl], a.dac_bits), 0) for sl, mt in parts)
        else:
            parts = [(slice(0, k), matrix)]
            psums = matrix.mvm_partial_sums(dac_codes(x, a.dac_bits), 0)
        # output scale: the 99th percentile of |y| (real, before quantization) maps to 100
        m1 = analog_affine_multiplier(
            in_scale=in_scale, out_scale=1.0, w_abs_max=float(np.max(np.abs(w))), g_max_us=spec.device.g_max_us,
            v_read_v=a.v_read_v, array_rows=a.rows, adc_bits=a.adc_bits, dac_bits=a.dac_bits,
            adc_full_scale_fraction=a.adc_full_scale_fraction, gdc_alpha=alpha)
        y = psums * m1 + np.asarray(bias, dtype=np.float64)
        out_scale = float(np.percentile(np.abs(y), 99)) / 100.0
        if not math.isfinite(out_scale) or out_scale <= 0:
            out_scale = 1.0
        dest = host_dest(spec) if last else _layer_coords(spec, job, li + 1)
        common = dict(in_scale=in_scale, out_scale=out_scale, bias=bias, gdc_alpha=alpha, relu=bool(job.relu[li]),
                      mode=1)
        if len(chain) > 1:
            mapped = chained_layer(spec, w, tiles=chain, rows=[sl.stop - sl.start for sl, _ in parts], dest=dest,
                                   name=f"layer{li}", **common)
        else:
            mapped = [analog_layer(spec, w, tile=chain[0], dest=dest, name=f"layer{li}", **common)]
        if not last:
            mapped[-1] = replace(mapped[-1], dests=_split_dests(spec, job, li + 1))
        if conv is not None:
            mapped = conv_layer(spec, conv, mapped)
        if job.residual and li == job.residual[0]:
            if len(mapped) != 1:
                raise ValueError(f"layer {li}: a residual join needs the layer on one tile")
            mapped = [residual_join(spec, mapped[0], **join)]
        for lyr, (sl, mt) in zip(mapped, parts, strict=True):
            if li == 0:
                entry.append(len(layers))
                if pixels is not None:
                    feeds[len(layers)] = pixels
            matrices.append(mt)
            layers.append(lyr)
            inputs.append(x[:, sl])
        x = mapped[-1].coefs.apply(psums, acc_bits=p.acc_bits, scale_bits=p.scale_bits, offset_bits=p.offset_bits)
        pool = job.pools[li] if job.pools else None
        fmap = None
        if conv is not None:  # the output map (B, N, H_out, W_out); the stream is its pixels
            _, ho, wo = conv.output_shape
            fmap = x.reshape(-1, ho, wo, n).transpose(0, 3, 1, 2)
        if pool is not None:  # pooled on the home tile's output stream (archmodel.accuracy's integer forward)
            mapped[-1] = with_pool(spec, pool, mapped[-1])
            layers[-1] = mapped[-1]
            if pool.op == "global_avgpool":
                hw = fmap.shape[2] * fmap.shape[3]
                fmap = ((2 * fmap.sum(axis=(2, 3)) + hw) // (2 * hw))[:, :, None, None]
            else:
                fmap = _pool_int(fmap, pool, pool.op).astype(np.int64)
            x = fmap.transpose(0, 2, 3, 1).reshape(-1, n)
        outs.append(x)
        maps.append(fmap)
        scales.append(out_scale)
        homes.append(mapped[-1].tile)
        nxt = job.convs[li + 1] if job.convs and not last else None
        if nxt is not None:
            x = fmap
        in_scale = out_scale
    if job.residual:  # the skip source also sends its pixels to the join's tile (a second destination entry)
        li, j = job.residual
        k = next(i for i, lyr in enumerate(layers) if lyr.tile == homes[j])
        src = layers[k]
        entries = src.dests or ((src.dest[0], src.dest[1], 0, 0, 0),)
        layers[k] = replace(src, dests=(*entries, (*tile_coords(spec, homes[li]), 0, 0, 0)))
    writes = compile_network(spec, layers, regmap=rm)
    return PreparedNetwork(job=job, spec=spec, params=p, regmap=rm, matrices=matrices, layers=layers,
                           inputs=inputs, expected=outs[-1], writes=writes, entry=entry, layer_outputs=outs,
                           feeds=feeds or None)


def _chain_rows(spec: ChipSpec, job: NetworkJob, li: int) -> list[int]:
    """Rows of each tile of layer ``li``'s chain (module docstring of :class:`NetworkJob`)."""
    chain = job.tiles[li] if isinstance(job.tiles[li], list) else [job.tiles[li]]
    k = np.asarray(job.weights[li]).shape[0]
    per_tile = spec.array.rows * spec.array.arrays_per_tile
    if len(chain) == 1:
        return [k]
    return list((job.chain_rows or {}).get(li) or [per_tile] * (len(chain) - 1) + [k - per_tile * (len(chain) - 1)])


def _split_dests(spec: ChipSpec, job: NetworkJob, li: int) -> tuple[tuple[int, int, int, int, int], ...]:
    """Destination entries of the layer feeding layer ``li``: one per tile of its chain, by beat range.

    Empty (a single destination) unless layer ``li`` is chained. Raises ValueError when a tile's
    rows do not start on an ``act`` beat boundary (``rows_per_dac_beat``).
    """
    if not isinstance(job.tiles[li], list) or (job.digital and job.digital[li]):
        return ()
    if job.convs and job.convs[li] is not None:  # a conv chain: every tile gets every pixel (multicast)
        return tuple((*tile_coords(spec, t), 0, 0, 0) for t in job.tiles[li])
    rpb = TileParams.from_spec(spec).rows_per_dac_beat
    rows = _chain_rows(spec, job, li)
    out, r0 = [], 0
    for i, (t, r) in enumerate(zip(job.tiles[li], rows, strict=True)):
        if r0 % rpb:
            raise ValueError(f"layer {li}: tile {t} starts at row {r0}, not a multiple of {rpb} rows per beat")
        x, y = tile_coords(spec, t)
        out.append((x, y, r0 // rpb, 0 if i == len(rows) - 1 else (r0 + r) // rpb, 0))
        r0 += r
    return tuple(out)


def _layer_coords(spec: ChipSpec, job: NetworkJob, li: int) -> tuple[int, int]:
    """Where layer ``li``'s inputs go: its (first) tile, or the digital datapath."""
    if job.digital and job.digital[li]:
        return digital_dest(spec)
    t = job.tiles[li]
    return tile_coords(spec, t[0] if isinstance(t, list) else t)


def node_coords(spec: ChipSpec, layer) -> tuple[int, int]:
    """Mesh address of a mapped layer: its tile, or the digital datapath (``layer.tile`` None)."""
    return digital_dest(spec) if layer.tile is None else tile_coords(spec, layer.tile)


# ======================================================================== packets


def beat_words(beat_raw: int, beat_bits: int, link_bits: int) -> list[int]:
    """Flit payloads of one beat (least significant chunk first, :class:`rtl.axis.BeatToFlits`)."""
    n = -(-beat_bits // link_bits)
    mask = (1 << link_bits) - 1
    return [(beat_raw >> (k * link_bits)) & mask for k in range(n)]


def host_tdest(spec: ChipSpec, x: int, y: int, chan: int) -> int:
    """``s_axis.tdest`` = ``{chan, y, x}``, x in the LSBs (:class:`rtl.top.Coprocessor`)."""
    from rtl.router import grid_coord_bits

    xb, yb = grid_coord_bits(spec.tile_grid.rows, spec.tile_grid.cols)
    return x | (y << xb) | (chan << (xb + yb))


# ======================================================================== host send order


#: Send orders of :func:`host_order`.
ORDERS = ("vector", "home_first", "tiles", "random")


def host_order(queue: list[tuple[int, int, list]], n_tiles: int, order: str, rng: np.random.Generator, *,
               window: int | None = None) -> list:
    """The host's frames in wire order.

    ``queue`` holds ``(tile, vector, frames)`` per tile of the first layer and
    input vector. ``order`` is the order the host *enqueues* them: ``vector``
    (vector by vector, upstream tile first), ``home_first`` (vector by vector,
    home tile first), ``tiles`` (all vectors of the first tile, then the next:
    "all upstream halves first"), ``random`` (a seeded shuffle that keeps each
    tile's vectors in order). With ``window`` = W the host is a DMA engine with
    one queue per destination tile that sends vector ``v`` of a tile only after
    every tile of the chain has been sent vectors ``0 .. v - W`` (end-to-end
    skew bound, docs/design.md "Deadlock-free transport"): it takes the first
    enqueued frame group allowed. ``window`` None sends in enqueue order.
    """
    if order == "vector":
        items = sorted(queue, key=lambda q: (q[1], q[0]))
    elif order == "home_first":
        items = sorted(queue, key=lambda q: (q[1], -q[0]))
    elif order == "tiles":
        items = sorted(queue, key=lambda q: (q[0], q[1]))
    elif order == "random":
        per = [sorted([q for q in queue if q[0] == t], key=lambda q: q[1]) for t in range(n_tiles)]
        items = []
        while any(per):
            t = int(rng.choice([i for i in range(n_tiles) if per[i]]))
            items.append(per[t].pop(0))
    else:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    if window is None:
        return [f for _, _, fr in items for f in fr]
    sent = [0] * n_tiles  # vectors sent per tile
    out = []
    while items:
        for i, (t, v, fr) in enumerate(items):
            if v - window < min(sent):
                out += fr
                sent[t] += 1
                del items[i]
                break
        else:  # pragma: no cover - the tile with fewest sends always has an allowed head
            raise RuntimeError("host_order: no frame allowed")
    return out


# ======================================================================== testbench


def _pauses(rng: np.random.Generator, p_go: float) -> Iterator[bool]:
    """Pause generator for cocotbext-axi: True (pause) with probability ``1 - p_go`` per cycle."""
    while True:
        yield bool(rng.random() >= p_go)


class TopTestbench:
    """Config driver, input driver, array bridges, monitor and checker of the co-processor top level.

    Parameters
    ----------
    dut : cocotb handle
        The ``aimc_top`` module (:class:`rtl.top.Coprocessor`).
    clock : tb.streams.CycleClock
        Its clock (already started).
    spec : ChipSpec
    seed : int
        Seed of the stalls.
    p_in, p_out : float
        Probability per cycle that the host offers an input flit / accepts an
        output flit (1.0: never pauses).
    p_dac_ready, p_adc_valid : float
        Stall probabilities of the array bridges (1.0: none).
    p_axil : float
        Probability per cycle that the AXI4-Lite master accepts a write / read response
        (``bready`` / ``rready``; cocotbext-axi's B and R channel sinks' pause generators).
    sep : str
        Separator of the bus port names: ``"__"`` for ``aimc_top`` (``s_axil__awaddr``), ``"_"`` for the
        FPGA prototype ``aimc_prototype`` (``s_axil_awaddr``; no array ports: :mod:`tb.proto_env`).
    """

    def __init__(self, dut: Any, clock: Any, spec: ChipSpec, *, seed: int = 0, p_in: float = 1.0,
                 p_out: float = 1.0, p_dac_ready: float = 1.0, p_adc_valid: float = 1.0, p_axil: float = 1.0,
                 sep: str = "__"):
        from cocotbext.axi import AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamSink, AxiStreamSource

        self.dut, self.clock, self.spec = dut, clock, spec
        self.params = TileParams.from_spec(spec)
        self.regmap = build_regmap(spec)
        self.rng = np.random.default_rng([seed, 2])
        self.p_dac_ready, self.p_adc_valid = p_dac_ready, p_adc_valid
        self.p_in, self.p_out = p_in, p_out
        self.tiles = spec.tile_grid.rows * spec.tile_grid.cols
        self.link_bits = spec.interconnect.link_width_bits
        self.act_layout = act_beat_layout(self.params)
        self.beat_bits = width_of(self.act_layout)
        self.tag_layout = tagged_layout(self.act_layout, source_bits(spec))
        self.tag_bits = width_of(self.tag_layout)
        self.host_tag = source_tag(spec, "host")
        self.sep = sep
        self.array_ports = sep == "__"
        self.idle_array_ports()
        pre = sep[:-1]  # cocotbext-axi joins prefix and signal name with "_"
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil" + pre), dut.clk, dut.rst)
        self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis" + pre), dut.clk, dut.rst,
                                      byte_size=self.link_bits)
        self.sink = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis" + pre), dut.clk, dut.rst,
                                  byte_size=self.link_bits)
        if p_in < 1.0:
            self.source.set_pause_generator(_pauses(self.rng, p_in))
        if p_out < 1.0:
            self.sink.set_pause_generator(_pauses(self.rng, p_out))
        if p_axil < 1.0:  # ready low on the response channels: the CSR bank must hold its response
            self.axil.write_if.b_channel.set_pause_generator(_pauses(self.rng, p_axil))
            self.axil.read_if.r_channel.set_pause_generator(_pauses(self.rng, p_axil))
        self.tasks: list = []

    def idle_array_ports(self) -> None:
        if not self.array_ports:
            return
        for t in range(self.tiles):
            getattr(self.dut, f"adc__{t}__valid").value = 0
            getattr(self.dut, f"adc__{t}__payload").value = 0
            getattr(self.dut, f"dac__{t}__ready").value = 0

    async def reset(self, cycles: int = 4) -> None:
        from cocotb.triggers import ClockCycles

        for t in self.tasks:
            t.cancel()
        self.tasks = []
        self.idle_array_ports()
        self.dut.rst.value = 1
        await ClockCycles(self.clock.clk, cycles)
        self.dut.rst.value = 0
        await self.clock.edge

    # ------------------------------------------------------------------ AXI4-Lite
    async def write(self, wr: RegWrite, res: NetResult | None = None) -> None:
        from cocotbext.axi.constants import AxiResp

        resp = await self.axil.write(wr.addr, int(wr.data).to_bytes(4, "little"))
        if resp.resp != AxiResp.OKAY and res is not None:
            res.axil_errors += 1
            if len(res.first_mismatches) < 10:
                res.first_mismatches.append(f"write {wr.name} @ {wr.addr:#x}: response {resp.resp!r}")

    async def read(self, name: str, res: NetResult | None = None) -> dict[str, int]:
        from cocotbext.axi.constants import AxiResp

        resp = await self.axil.read(self.regmap.address_of(name), 4)
        if resp.resp != AxiResp.OKAY and res is not None:
            res.axil_errors += 1
        return self.regmap.decode(name, int.from_bytes(resp.data, "little"))

    async def configure(self, pn: PreparedNetwork, res: NetResult, *, readback: bool = False) -> None:
        """Replay the compiler's writes (starts last); optionally read back every RW register written."""
        from rtl.csr import Access

        start = self.clock.cycle()
        def is_start(w: RegWrite) -> bool:
            return w.name.endswith(".tc.ctrl") or (w.name == "digital.ctrl" and
                                                   self.regmap.decode(w.name, w.data)["start"] == 1)
        config = [w for w in pn.writes if not is_start(w)]
        starts = [w for w in pn.writes if is_start(w)]
        for wr in config:
            await self.write(wr, res)
        if readback:
            last: dict[str, int] = {}
            for wr in config:
                if all(f.access == Access.RW for f in self.regmap.register(wr.name).fields):
                    last[wr.name] = wr.data
            for name, word in last.items():
                got = await self.read(name, res)
                res.readback_checked += 1
                if got != self.regmap.decode(name, word):
                    res.readback_mismatches += 1
                    if len(res.first_mismatches) < 10:
                        res.first_mismatches.append(f"read back {name}: {got}, wrote {self.regmap.decode(name, word)}")
        await self.send_weights(pn, res)
        for wr in starts:
            await self.write(wr, res)
        res.writes = len(pn.writes)
        res.config_cycles = self.clock.cycle() - start

    async def send_weights(self, pn: PreparedNetwork, res: NetResult) -> None:
        """Stream the digital layers' weights over s_axis (one packet to the digital node, chan 1), after the
        writes that set the weight pointer and before the starts; images sent later reach the node after them
        (one path, in order). The source's seeded pause generator gaps ``tvalid`` as for the images."""
        from cocotbext.axi import AxiStreamFrame

        if not any(isinstance(lyr, DigitalLayer) for lyr in pn.layers):
            return
        ws = pn.weights if pn.weights is not None else compile_digital_weights(self.spec, pn.layers)
        if not ws.flits:
            return
        t0 = self.clock.cycle()
        await self.source.send(AxiStreamFrame(list(ws.flits), tdest=host_tdest(self.spec, ws.x, ws.y, ws.chan)))
        await self.source.wait()
        res.weight_flits, res.weight_cycles = len(ws.flits), self.clock.cycle() - t0

    # ------------------------------------------------------------------ one run
    async def run(self, pn: PreparedNetwork, *, timeout_cycles: int | None = None, readback: bool = False,
                  log: Any = None, order: str = "vector", window: int | None = None,
                  credit: int | None = None) -> NetResult:
        """Configure, feed every input vector, check every output, stop the tiles, check the status.

        ``order`` and ``window``: the host's send order over the first layer's
        tiles (:func:`host_order`). ``credit`` = W: the host enqueues input
        vector ``v`` only once the outputs of vector ``v - W`` are back (at most
        W vectors in flight: the end-to-end credit the digital datapath's source
        queues need, docs/design.md "Deadlock-free transport").
        """
        import time

        import cocotb
        from cocotb.triggers import ClockCycles, Event, SimTimeoutError, with_timeout
        from cocotbext.axi import AxiStreamFrame

        wall0 = time.perf_counter()
        spec, p, L = self.spec, self.params, pn.layers
        res = NetResult(pn.job.name, pn.job.seed, pn.job.t_inf_s, pn.n_outputs,
                        gdc_alpha=[lyr.gdc_alpha for lyr in L])
        res.stage_cycles = [stage_cycles(spec, lyr) for lyr in L]
        res.bound_cycles = max(len(pn.inputs[li]) * c for li, c in enumerate(res.stage_cycles))
        chip_id = await self.read("chip.id", res)
        if chip_id["magic"] != 0xA1C0:
            res.flags["bad_chip_id"] = 1
        await self.configure(pn, res, readback=readback)
        res.config_wall_s = time.perf_counter() - wall0

        # ---- array bridges (they also check each layer's DAC codes against the golden input)
        bridges = []
        for li, (lyr, matrix) in enumerate(zip(L, pn.matrices, strict=True)):
            if matrix is None or not self.array_ports:  # digital layer, or emulated arrays (no array port)
                continue
            bridge = checking_bridge_class()(self.dut, self.clock, spec, matrix, pn.inputs[li], res, layer=li,
                                    rng=self.rng, p_dac_ready=self.p_dac_ready, p_adc_valid=self.p_adc_valid,
                                    dac_prefix=f"dac__{lyr.tile}", adc_prefix=f"adc__{lyr.tile}")
            bridges.append(bridge)
        await self.clock.edge
        self.tasks = [cocotb.start_soon(b.run()) for b in bridges]

        # ---- inputs: one packet per act beat, to each tile of the first layer (chan 0), in the host's order
        rpb = p.rows_per_dac_beat
        queue: list[tuple[int, int, list]] = []  # (entry index, vector, frames of that vector's rows)
        streams = pn.host_streams or [(li, self.host_tag, (pn.feeds or {}).get(li, pn.inputs[li]))
                                      for li in pn.entry]  # a conv's tiles get pixel vectors (patch buffer)
        for ei, (li, tag, src) in enumerate(streams):
            xt, yt = node_coords(spec, L[li])
            tdest = host_tdest(spec, xt, yt, 0)
            nb = -(-src.shape[1] // rpb)
            for v, xv in enumerate(src):
                fr = []
                for i in range(nb):
                    lanes = [int(c) for c in xv[i * rpb:(i + 1) * rpb]]
                    lanes += [int(c) for c in self.rng.integers(-128, 128, rpb - len(lanes))]  # ignored by the RTL
                    raw = pack(self.tag_layout, {"data": lanes, "last": int(i == nb - 1), "src": tag})
                    fr.append(AxiStreamFrame(beat_words(raw, self.tag_bits, self.link_bits), tdest=tdest))
                queue.append((ei, v, fr))
        frames = host_order(queue, len(streams), order, self.rng, window=window)

        got_vector = Event()
        per_vector = max(1, len(frames) // max(1, pn.n_vectors))

        async def feed() -> None:
            for i, f in enumerate(frames):
                while credit is not None and i // per_vector - credit >= len(vec_done):
                    got_vector.clear()
                    await got_vector.wait()
                await self.source.send(f)

        # ---- outputs
        checker = self.checker = OutputChecker(res, pn.expected, pn.n_vectors, L[-1].n_cols, rpb, self.act_layout,
                                               self.beat_bits, self.link_bits)
        last_out = [0]
        vec_done: list[int] = []
        tap = (TapChecker(res, pn.taps, rpb, self.tag_layout, self.tag_bits, self.link_bits, self.clock.cycle)
               if pn.taps else None)

        def is_tap(frame) -> bool:
            chan = frame.tdest[0] if isinstance(frame.tdest, list) else frame.tdest
            return tap is not None and chan == 1

        self._is_tap, self._tap = is_tap, tap

        async def collect() -> None:
            fi = 0
            while fi < checker.n_frames:
                frame = await self.sink.recv()
                if is_tap(frame):
                    tap.check(frame)
                    continue
                last_out[0] = self.clock.cycle()
                fi += 1
                if checker.check(fi - 1, frame):
                    vec_done.append(last_out[0])
                    got_vector.set()

        async def count_stalls() -> None:
            from cocotb.triggers import ReadOnly
            d, sep = self.dut, self.sep
            iv, ir = getattr(d, f"s_axis{sep}tvalid"), getattr(d, f"s_axis{sep}tready")
            ov, orr = getattr(d, f"m_axis{sep}tvalid"), getattr(d, f"m_axis{sep}tready")
            while True:
                await ReadOnly()
                res.in_stall_cycles += int(iv.value == 1 and ir.value == 0)
                res.out_stall_cycles += int(ov.value == 1 and orr.value == 0)
                await self.clock.edge

        start_cycle = self.clock.cycle()
        self.tasks.append(cocotb.start_soon(count_stalls()))
        self.tasks.append(cocotb.start_soon(feed()))
        if timeout_cycles is None:
            timeout_cycles = 20 * res.bound_cycles + 4000
            if min(self.p_dac_ready, self.p_adc_valid, self.p_in, self.p_out) < 1:
                timeout_cycles *= 6
        try:
            await with_timeout(cocotb.start_soon(collect()), timeout_cycles * self.clock.period_ns, "ns")
        except SimTimeoutError as exc:
            raise AssertionError(f"seed {pn.job.seed}: timeout after {timeout_cycles} cycles: {res.compared}/"
                                 f"{res.expected_outputs} outputs, MVMs per tile "
                                 f"{[b.stats.mvms for b in bridges]}") from exc
        res.cycles = last_out[0] + 1 - start_cycle
        self.last_out_cycle = last_out[0]
        res.run_wall_s = time.perf_counter() - wall0
        if len(vec_done) > 1:
            res.interval_cycles = (vec_done[-1] - vec_done[0]) / (len(vec_done) - 1)

        # ---- nothing more comes out; stop the tiles; check the status registers
        await ClockCycles(self.clock.clk, 200)
        while not self.sink.empty():
            frame = self.sink.recv_nowait()
            if is_tap(frame):
                tap.check(frame)
            else:
                res.extra_outputs += 1
        for wr in self._commands(pn, "stop"):
            await self.write(wr, res)
        await ClockCycles(self.clock.clk, 20)
        if any(lyr.tile is None for lyr in L):
            st = await self.read("digital.status", res)
            for flag in ("err_config", "err_x_last", "busy"):
                res.flags[f"digital.{flag}"] = st[flag]
            res.flags["digital.not_done"] = int(not st["done"])
        for li, lyr in enumerate(L):
            if lyr.tile is None:
                continue
            st = await self.read(f"tile{lyr.tile}.tc.status", res)
            af = await self.read(f"tile{lyr.tile}.affine.status", res)
            for flag in ("err_config", "err_act_last", "err_adc_last", "busy"):
                res.flags[f"tile{lyr.tile}.{flag}"] = st[flag]
            res.flags[f"tile{lyr.tile}.not_done"] = int(not st["done"])
            res.flags[f"tile{lyr.tile}.vector_count"] = int(st["vector_count"] != len(pn.inputs[li]) % 65536)
            res.flags[f"tile{lyr.tile}.err_chain"] = af["err_chain"]
            res.flags[f"tile{lyr.tile}.affine_busy"] = af["busy"]
        res.flags["misrouted"] = (await self.read("chip.status", res))["misrouted"]
        res.mvms = [b.stats.mvms for b in bridges]
        res.mvm_start_cycles = [list(b.stats.mvm_start_cycles) for b in bridges]
        res.protocol_errors += sum(b.stats.protocol_errors for b in bridges)
        for t in self.tasks:
            t.cancel()
        self.tasks = []
        self.idle_array_ports()
        if log is not None:
            log.info("%s", res.summary())
            for line in res.first_mismatches + [e for b in bridges for e in b.stats.errors]:
                log.error("%s", line)
        return res

    def _commands(self, pn: PreparedNetwork, command: str) -> list[RegWrite]:
        from rtl.register_compiler import command_writes
        return command_writes(self.spec, [lyr.tile for lyr in pn.layers if lyr.tile is not None], command,
                              regmap=self.regmap)


# ======================================================================== Verilog and runner


def run_top_scenarios(sim: str, tests: list[str], *, arch: str = "tiny", changes: dict[str, Any] | None = None,
                      seed: int = 1, build_dir: str | os.PathLike, waves: bool = False,
                      extra_env: dict[str, str] | None = None) -> dict[str, Any]:
    """Build the co-processor with ``sim`` once and run ``tests`` of :mod:`tb.test_top_cosim` in one process.

    Returns
    -------
    dict of test name -> tb.cosim.ScenarioOutcome
        A test missing from the results (the simulator died) is reported failed.
    """
    from rtl.export import write_verilog
    from rtl.top import Coprocessor
    from tb.cosim import run_cocotb_tests

    build_dir = Path(build_dir)
    spec = resolve_spec(arch, changes)
    src = write_verilog(Coprocessor(spec), TOP_NAME, build_dir / "rtl" / sim, spec, icarus=(sim == "icarus"))
    return run_cocotb_tests(sim, src, TOP_NAME, "tb.test_top_cosim", build_dir, tests, arch=arch, changes=changes,
                            seed=seed, waves=waves, extra_env=extra_env)
