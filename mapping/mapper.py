"""The architectural mapper: flatten, tile, place, route and schedule a network on a chip.

:func:`map_network` is a pure function of (chip description, network, options):
it returns a :class:`MappingResult` and touches no global state (docs/design.md,
"Evaluations are pure tasks"). Costs come from :mod:`mapping.costs`; the MVM
cycle count from :func:`archmodel.timing.mvm_cycles`, the figure the RTL
co-simulation is checked against.

Stages of the mapping
---------------------
1. **Flatten.** Each conv / linear layer is a matrix (the chip's tap-major im2col order
   ``r = (i·kw + j)·C + c``, docs/design.md §4.8; shape :attr:`archmodel.network.ir.Layer.matrix_shape`):
   ``K = kh·kw·C_in/groups`` rows × ``N = C_out/groups`` columns per group.
   Every other IR layer is costed on the unit :func:`mapping.costs.ir_op_place`
   names (docs/design.md section 13.1; :func:`mapping.operators.op_cost`): batch-norm and ``scale``
   not merged into a matrix layer's affine coefficients
   (:func:`mapping.operators.merged_into_affine`), ReLU-like activations, add
   and concat on the tiles' affine units (energy,
   time reported, pipelined with the producer); pools, Softmax and the other
   activations, and ``digital`` layers (every other ONNX operator), on the
   global digital unit; ops and bytes from :func:`mapping.costs.digital_op_counts`
   (section 13.2). They are listed in ``MappingResult.digital_ops``. Layers named in ``digital.digital_layers`` ('first' =
   first matrix layer, 'last' = last matrix layer, or names) run on the
   digital datapath.
2. **Tile.** Each group's matrix is cut into ``ceil(K/array.rows)`` row blocks
   × ``ceil(N/array.cols)`` column blocks, each on its own array; groups that
   fit one array are packed block-diagonally, :func:`groups_per_array` per
   array (``ceil(groups / m)`` arrays, ``m·K`` rows × ``m·N`` columns used). A layer's arrays are packed into tiles of
   ``array.arrays_per_tile`` arrays in the order group, column block, row block
   (:func:`archmodel.golden.tile_controller.tile_schedule`); arrays of one tile run one after
   another through its tile controller; tiles run in parallel. A tile holds
   arrays of one layer only. PCM devices = weights × ``array.devices_per_weight``.
3. **Chips.** Tiles needed (without replication) over ``tile_grid`` tiles per
   chip gives the number of identical chips, joined in a daisy chain by the
   chip-to-chip link; ``max_chips`` caps it (:class:`MappingError` otherwise).
   With ``schedule="reprogram"`` the layers instead run in rounds on
   ``max_chips`` chips (default 1), the PCM arrays reprogrammed between rounds
   every inference (:func:`mapping.tiling.program_rounds`, ``costs.array_program_time_ns``,
   docs/design.md section 12 step 4); ``"auto"`` spreads when the network fits
   ``max_chips`` chips, else reprograms.
4. **Replicate** (optional, default on). While spare tiles remain on those
   chips, the slowest analog layer gets one more copy of its arrays (each copy
   takes ``ceil(pixels / r)`` of the output pixels); it stops when the
   slowest stage cannot be copied (too few spare tiles, every pixel already
   on its own copy, or the digital unit is the bottleneck).
5. **Place.** Tiles are placed in layer order on a serpentine path over the
   grid (row 0 left to right, row 1 right to left, ...), chip after chip. The
   global digital unit, the global buffer (network input and output) and the
   chip-link port sit at the router of tile (0, 0) of chip 0 (assumed; each
   chip's link port at its tile (0, 0)).
6. **Route.** XY routing on the 2-D mesh: hops = Manhattan distance; between
   chips a transfer goes to the source chip's port, over
   ``|chip_a − chip_b|`` links, and from the destination chip's port.
   Activations (``periphery.activation_bits`` = 8 bits each): every producer
   of a layer (the nearest upstream matrix layers, or the input buffer) sends
   a tensor of the consumer's input size; each destination tile receives the
   slice its row blocks use (fraction ``rows_used / (K·groups)`` per row block
   held, times ``1/r`` per copy). Partial sums
   (``periphery.accumulator_bits`` each): per output pixel every tile other
   than the copy's home tile (its first tile) sends ``cols_used`` partial sums
   per column block it holds to the home tile, where the affine unit adds them.
7. **Schedule.** One array MVM takes ``mvm_cycles(spec, rows_used,
   cols_used)`` cycles. Per output pixel a layer needs ``t_pixel`` = the
   largest, over its tiles, of the summed MVM cycles of the tile's arrays, or
   of the cycles the tile's affine unit streams its columns out per pixel
   (``periphery.affine_lanes`` columns, results or partial sums, per cycle:
   ``timing.affine_cycles``, the RTL affine unit's throughput, rtl/affine.py) when that is longer: a wide layer
   (many columns, few rows) is limited by its affine unit, not its arrays. An
   analog layer's stage time per inference is ``T = ceil(pixels / r) ·
   t_pixel``; a digital layer's is ``ceil(MACs / digital.mac_lanes)`` and all
   digital layers share one digital unit. Layers run as a pipeline: the
   interval between inferences is the slowest stage (an analog layer, the
   digital unit, or a chip-to-chip link: bits / bandwidth).

Latency of one inference (pipeline fill)
----------------------------------------
An empty pipeline, one input, layers streaming through line buffers. With
``transfer`` = the longest path producer → destination tile → home tile, in
hops · ``interconnect.hop_latency_ns`` + link crossings · ``chip_link.latency_ns``,
plus ``timing.AFFINE_LATENCY_CYCLES`` (= ``periphery.affine_latency_cycles``); ``T`` the stage time, or the layer's
chip-link serialization ``bits / chip_link.bandwidth_gbps`` when longer; and
for a conv consumer the fraction ``f = rows_needed / H_in`` of its input rows
its first window needs (``rows_needed = dilation·(kh − 1) + 1 − pad_top``, at
least 1); ``f = 1`` for a linear layer:

- ``start_L = max_p(start_p + max(f_L · T_p, t_pixel_p)) + transfer_L`` — a
  layer starts when its producers have produced the rows its first window needs;
- ``end_L = max(start_L + T_L, max_p end_p + transfer_L + tail_L)`` with
  ``tail_L = t_pixel_L · ceil(W_out / r)`` (the last output row) for a conv,
  ``t_pixel_L`` for a linear layer;
- latency = ``end`` of the last layer + the transfer of its output to the
  global buffer.

Energy per inference is the sum over layers of the component energies
(:mod:`mapping.costs`) plus leakage of all tiles of all chips over one
pipeline interval.
"""


from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence

from archmodel import timing
from archmodel.network.ir import Layer, Network, resolve_digital_layers
from archmodel.network.schema import NetworkError
from archmodel.spec import ChipSpec
from mapping import costs
from mapping.operators import merged_into_affine, op_cost
from mapping.result import (
    MAX_SPILL_BYTES,
    SCHEDULES,
    DigitalOpMapping,
    LayerMapping,
    MapOptions,
    MappingError,
    MappingResult,
)
from mapping.tiling import Plan, groups_per_array, program_rounds

__all__ = ["MAX_SPILL_BYTES", "SCHEDULES", "DigitalOpMapping", "LayerMapping", "MapOptions", "MappingError",
           "MappingResult", "groups_per_array", "map_network"]


def _resolve_digital(spec: ChipSpec, mats: Sequence[Layer], network_name: str) -> set[str]:
    names = [m.name for m in mats]
    try:
        return {names[k] for k in resolve_digital_layers(spec.digital.digital_layers, mats)}
    except NetworkError as exc:
        raise MappingError(
            f"chip '{spec.name}': digital.digital_layers names {exc.layer!r}, which is not a conv/linear "
            f"layer of network {network_name!r}; expected 'first', 'last' or one of: {', '.join(names[:12])}"
            + (", ..." if len(names) > 12 else "")) from None


def _producers(net: Network, layer: Layer) -> list[str]:
    """Nearest matrix layers upstream of ``layer`` (or the input layer's name)."""
    out: list[str] = []
    seen: set[str] = set()
    stack = list(layer.inputs)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        lyr = net[name]
        if lyr.is_matrix_layer or lyr.op == "input":
            out.append(name)
        else:
            stack.extend(lyr.inputs)
    return sorted(set(out), key=net.index)


def _shape_str(layer: Layer) -> str:
    a = layer.attrs
    in_s = "x".join(str(v) for v in layer.input_shapes[0])
    out_s = "x".join(str(v) for v in (layer.output_shape or ()))
    if layer.op == "conv":
        kh, kw = a["kernel_size"]
        sh, sw = a["stride"]
        g = f" g{a['groups']}" if a["groups"] > 1 else ""
        return f"{kh}x{kw}/{sh}{g} {in_s}->{out_s}"
    return f"{in_s}->{out_s}"


def map_network(spec: ChipSpec, network: Network, options: MapOptions | None = None, *,
                progress: Callable[[int, int], None] | None = None) -> MappingResult:
    """Map ``network`` onto chips described by ``spec``; see the module docstring.

    Parameters
    ----------
    spec : ChipSpec
    network : Network
    options : MapOptions, optional
    progress : callable (layers costed, layers in all), optional
        Called after each layer's routing and costing (the long step of a
        network spread over thousands of chips); the result does not depend on it.

    Returns
    -------
    MappingResult

    Raises
    ------
    MappingError
        No conv/linear layer, a bad ``digital.digital_layers`` name, or more
        tiles than ``max_chips`` chips hold (tiles needed and available named).
    """
    opts = options or MapOptions()
    a = spec.array
    R, C, apt = a.rows, a.cols, a.arrays_per_tile
    tpc = spec.tile_grid.tiles
    mats = network.matrix_layers()
    if not mats:
        raise MappingError(f"network {network.name!r} has no conv or linear layer to map")
    digital = _resolve_digital(spec, mats, network.name)

    # ---- 1-2. flatten and tile
    plans: list[Plan] = []
    for idx, layer in enumerate(mats):
        k, n = layer.matrix_shape
        g = layer.groups
        nrb, ncb = -(-k // R), -(-n // C)
        is_dig = layer.name in digital
        arrays = []
        gpa = groups_per_array(k, n, g, R, C)
        if not is_dig and gpa > 1:
            # block-diagonal packing: groups j*gpa .. j*gpa+m-1 on array j (m = gpa, fewer on the last)
            for first in range(0, g, gpa):
                m = min(gpa, g - first)
                arrays.append((first, 0, 0, m * k, m * n))
        elif not is_dig:
            for grp in range(g):
                for cb in range(ncb):
                    for rb in range(nrb):
                        arrays.append((grp, cb, rb, min(R, k - rb * R), min(C, n - cb * C)))
        tiles_per_copy = -(-len(arrays) // apt) if arrays else 0
        t_pixel = 0
        if is_dig:
            t_pixel = timing.digital_matrix_cycles(spec, k, n, groups=g)
        else:
            # affine throughput: timing.tile_vector_cycles streams periphery.affine_lanes columns per cycle
            for t in range(tiles_per_copy):
                t_pixel = max(t_pixel, timing.tile_vector_cycles(
                    spec, [((grp, cb), ru, cu) for (grp, cb, _, ru, cu) in arrays[t * apt:(t + 1) * apt]]))
        plans.append(Plan(layer, idx, is_dig, k, n, g, nrb, ncb, layer.mvm_count, arrays,
                           tiles_per_copy, t_pixel, gpa=gpa if not is_dig else 1))

    # ---- 1b. digital-unit operators (mapping.costs.digital_op_counts)
    dig_rows: list[DigitalOpMapping] = []
    dig_ns: dict[str, float] = {}  # digital time on the path since the nearest matrix layer
    for layer in network.layers:
        if layer.is_matrix_layer or layer.op == "input":
            continue
        upstream = max((dig_ns.get(i, 0.0) for i in layer.inputs), default=0.0)
        dig_ns[layer.name] = upstream
        if merged_into_affine(network, layer):
            continue  # its multiply-add is the producer's requantizer pass (affine_per_output_pj)
        row = op_cost(spec, layer)
        if row is None:  # a view (flatten, reshape, identity)
            continue
        if row.unit == "digital":  # the shared digital unit delays its consumers (no streaming)
            dig_ns[layer.name] = upstream + row.latency_ns
        dig_rows.append(row)
    dig_op_cycles = sum(r.cycles for r in dig_rows if r.unit == "digital")

    # ---- 2b. buffers: the global buffer holds the network input and output, the digital-unit constants and
    # the digital layers' weights; weights that do not fit are streamed from off-chip memory over the chip
    # link every inference (spill); beyond MAX_SPILL_BYTES the mapper refuses.
    act_b = spec.periphery.activation_bits
    gb_bits = spec.buffers.global_buffer_kib * 8192
    extra_inputs = sum(math.prod(lyr.output_shape or ()) for lyr in network.layers
                       if lyr.op == "digital" and lyr.attrs["kind"] == "GraphInput")  # further graph inputs
    io_bits = (math.prod(network.input_shape) + extra_inputs + math.prod(network.output_shape or ())) * act_b
    const_bits = network.sram_param_count * act_b
    if io_bits + const_bits > gb_bits:
        raise MappingError(
            f"network {network.name!r}: its input and output ({io_bits / 8192:,.1f} KiB) and digital-unit constants "
            f"({const_bits / 8192:,.1f} KiB) do not fit the global buffer (buffers.global_buffer_kib = "
            f"{spec.buffers.global_buffer_kib:g} KiB of chip '{spec.name}')")
    room = gb_bits - io_bits - const_bits
    spill: dict[str, float] = {}
    for p in plans:
        if p.digital:
            w_bits = p.layer.weight_count * spec.digital.precision_bits
            spill[p.layer.name] = max(0.0, w_bits - room)
            room = max(0.0, room - w_bits)
            if spill[p.layer.name] > MAX_SPILL_BYTES * 8:
                raise MappingError(
                    f"digital layer {p.layer.name!r} ({p.k}x{p.n}): {w_bits / 8e9:,.3g} GB of weights exceed the "
                    f"global buffer ({spec.buffers.global_buffer_kib:g} KiB) and the {MAX_SPILL_BYTES / 2**40:g} TiB "
                    f"off-chip memory the mapper assumes; map it on PCM or split it")

    # ---- 3. chips
    tiles_needed = sum(p.tiles_per_copy for p in plans)
    chips = max(1, -(-tiles_needed // tpc))
    schedule = opts.schedule
    if schedule == "auto":
        schedule = "reprogram" if opts.max_chips is not None and chips > opts.max_chips else "spread"
    if schedule == "spread" and opts.max_chips is not None and chips > opts.max_chips:
        raise MappingError(
            f"network {network.name!r} needs {tiles_needed} tiles ({sum(len(p.arrays) for p in plans)} arrays of "
            f"{R}x{C}) but --max-chips {opts.max_chips} gives {opts.max_chips} x {tpc} = "
            f"{opts.max_chips * tpc} tiles on chip '{spec.name}'; it needs {chips} chips "
            "(or use --schedule reprogram)")
    reprogram = schedule == "reprogram"
    rounds: list[list[tuple[Plan, list[tuple[int, int, int, int, int]]]]] = []
    if reprogram:
        chips = min(chips, opts.max_chips or 1)
        rounds = program_rounds(plans, chips * tpc, apt)

    # ---- 4. replicate
    digital_cycles = sum(p.stage_cycles(spec) for p in plans if p.digital) + dig_op_cycles
    if opts.replicate and not reprogram:
        spare = chips * tpc - tiles_needed
        analog = [p for p in plans if not p.digital]
        while analog and spare > 0:
            slow = max(analog, key=lambda p: (p.stage_cycles(spec), -p.index))
            t_slow = slow.stage_cycles(spec)
            if t_slow <= digital_cycles or slow.r >= slow.pixels or slow.tiles_per_copy > spare:
                break
            slow.r += 1
            spare -= slow.tiles_per_copy

    # ---- 5. place (serpentine, layer order, copies after their layer)
    gcols = spec.tile_grid.cols

    def pos(tile: int) -> tuple[int, int, int]:
        if reprogram:  # rounds reuse the physical tiles
            tile %= chips * tpc
        chip, local = divmod(tile, tpc)
        row, col = divmod(local, gcols)
        return chip, row, (col if row % 2 == 0 else gcols - 1 - col)

    DIGITAL_POS = (0, 0, 0)
    nxt = 0
    for p in plans:
        for _ in range(p.r if not p.digital else 0):
            p.tiles.append(list(range(nxt, nxt + p.tiles_per_copy)))
            nxt += p.tiles_per_copy
    tiles_used = min(nxt, chips * tpc) if reprogram else nxt

    seg_bits = [0.0] * max(0, chips - 1)

    def route(src: tuple[int, int, int], dst: tuple[int, int, int]) -> tuple[int, int, int, int]:
        """(hops, link crossings, low chip, high chip)."""
        if src[0] == dst[0]:
            return abs(src[1] - dst[1]) + abs(src[2] - dst[2]), 0, src[0], src[0]
        lo, hi = sorted((src[0], dst[0]))
        return src[1] + src[2] + dst[1] + dst[2], hi - lo, lo, hi

    def home(p: Plan | None) -> tuple[int, int, int]:
        if p is None or p.digital:
            return DIGITAL_POS
        return pos(p.tiles[0][0])

    by_name = {p.layer.name: p for p in plans}
    act_bits = spec.periphery.activation_bits
    acc_bits = spec.periphery.accumulator_bits
    hop_ns = spec.interconnect.hop_latency_ns
    link_ns = spec.chip_link.latency_ns
    affine_ns = timing.cycles_to_ns(spec, timing.AFFINE_LATENCY_CYCLES)

    rows_out: list[LayerMapping] = []
    start: dict[str, float] = {network.input_name: 0.0}
    end: dict[str, float] = {network.input_name: 0.0}
    stage_ns: dict[str, float] = {network.input_name: 0.0}
    tpix_ns: dict[str, float] = {network.input_name: 0.0}
    for n_done, p in enumerate(plans, start=1):
        if progress is not None and n_done > 1:
            progress(n_done - 1, len(plans))
        layer = p.layer
        e = dict.fromkeys(costs.ENERGY_COMPONENTS, 0.0)
        in_elems = math.prod(layer.input_shapes[0])
        out_elems = math.prod(layer.output_shape or ())
        prods = _producers(network, layer)
        link_bits = 0.0
        act_hops = 0.0
        transfer_ns = 0.0
        # destinations: (position, fraction of the input tensor)
        if p.digital:
            dests = [(DIGITAL_POS, 1.0)]
        else:
            dests = []
            for copy in p.tiles:
                for t_i, tile in enumerate(copy):
                    held = {(grp, rb, ru) for (grp, _, rb, ru, _) in p.arrays[t_i * apt:(t_i + 1) * apt]}
                    frac = sum(ru for (_, _, ru) in held) / (p.k * p.g) / p.r
                    dests.append((pos(tile), frac))
        in_bits = in_elems * act_bits
        # tile SRAM: each destination tile holds the input rows its first window needs (a conv's line
        # buffer: dilation·(kh−1)+1 rows of the input) of its share of the input channels
        if not p.digital:
            if layer.op == "conv":
                kh_, dh_ = layer.attrs["kernel_size"][0], layer.attrs["dilation"][0]
                h_in_ = layer.input_shapes[0][1]
                line_bits = in_bits * min(h_in_, dh_ * (kh_ - 1) + 1) / h_in_
            else:
                line_bits = in_bits
            need = max(frac for _, frac in dests) * p.r * line_bits
            if need > spec.buffers.sram_kib_per_tile * 8192:
                raise MappingError(
                    f"layer {layer.name!r}: a tile's input line buffer needs {need / 8192:,.3g} KiB but "
                    f"buffers.sram_kib_per_tile = {spec.buffers.sram_kib_per_tile:g} KiB on chip '{spec.name}'")
        # mesh: the busiest destination's input crosses one link of interconnect.link_width_bits per cycle
        mesh_ns = max(costs.mesh_serialization_ns(spec, in_bits * frac) for _, frac in dests) * len(prods)
        delivered = 0.0
        dst_home = home(p)
        for prod_name in prods:
            src = home(by_name.get(prod_name))
            for dst, frac in dests:
                hops, cross, lo, hi = route(src, dst)
                bits = in_bits * frac
                delivered += bits
                act_hops += bits * hops
                if cross:
                    link_bits += bits * cross
                    for s in range(lo, hi):
                        seg_bits[s] += bits
                back_hops, back_cross, _, _ = route(dst, dst_home)
                transfer_ns = max(transfer_ns, (hops + back_hops) * hop_ns + (cross + back_cross) * link_ns)
        transfer_ns += affine_ns
        # serialization of the first input vector (one row block) over a mesh link
        transfer_ns += costs.mesh_serialization_ns(spec, min(p.k * p.gpa, R) * act_bits)
        # digital-unit operators between the producers and this layer run first (no streaming)
        transfer_ns += max((dig_ns.get(i, 0.0) for i in layer.inputs), default=0.0)
        # partial sums to the home tile of each copy
        ps_hops = 0.0
        if not p.digital:
            for copy in p.tiles:
                h = pos(copy[0])
                for t_i, tile in enumerate(copy[1:], start=1):
                    cols = {(grp, cb): cu for (grp, cb, _, _, cu) in p.arrays[t_i * apt:(t_i + 1) * apt]}
                    bits = sum(cols.values()) * acc_bits * p.pixels / p.r
                    hops, cross, lo, hi = route(pos(tile), h)
                    ps_hops += bits * hops
                    if cross:
                        link_bits += bits * cross
                        for s in range(lo, hi):
                            seg_bits[s] += bits
        # the network output back to the global buffer
        if p is plans[-1]:
            hops, cross, lo, hi = route(home(p), DIGITAL_POS)
            bits = out_elems * act_bits
            act_hops += bits * hops
            if cross:
                link_bits += bits * cross
                for s in range(lo, hi):
                    seg_bits[s] += bits
        # energy
        if p.digital:
            e["digital"] = costs.digital_mac_energy_pj(spec, layer.mac_count)
            reads = p.k * p.g * p.pixels * act_bits + layer.weight_count * act_bits
            mvms = 0
        else:
            per_pixel = dict.fromkeys(costs.ENERGY_COMPONENTS, 0.0)
            for (_, _, _, ru, cu) in p.arrays:
                for comp, val in costs.analog_mvm_energy_pj(spec, ru, cu).items():
                    per_pixel[comp] += val
            for comp, val in per_pixel.items():
                e[comp] += val * p.pixels
            reads = sum(ru for (_, _, _, ru, _) in p.arrays) * p.pixels * act_bits
            mvms = len(p.arrays) * p.pixels
            if reprogram:
                blocks = Counter((ru, cu) for (_, _, _, ru, cu) in p.arrays)
                e["programming"] = sum(n_ * costs.array_program_energy_pj(spec, ru, cu)
                                       for (ru, cu), n_ in blocks.items())
        e["affine"] += costs.affine_energy_pj(spec, out_elems)
        e["sram"] = costs.sram_energy_pj(spec, reads, delivered)
        e["interconnect"] = costs.hop_energy_pj(spec, act_hops + ps_hops)
        spill_bits = spill.get(layer.name, 0.0)
        e["chip_link"] = costs.chip_link_energy_pj(spec, link_bits + spill_bits)
        # timing
        cycles = p.stage_cycles(spec)
        t_ns = timing.cycles_to_ns(spec, cycles)
        t_fill_ns = max(t_ns, costs.chip_link_time_ns(spec, link_bits), mesh_ns,
                        costs.chip_link_time_ns(spec, spill_bits))
        tp_ns = timing.cycles_to_ns(spec, p.t_pixel)
        if layer.op == "conv":
            kh = layer.attrs["kernel_size"][0]
            dh = layer.attrs["dilation"][0]
            h_in = layer.input_shapes[0][1]
            rows_needed = min(h_in, max(1, dh * (kh - 1) + 1 - layer.attrs["padding"][0]))
            f = rows_needed / h_in
            tail = tp_ns * -(-(layer.output_shape or (0, 0, 1))[2] // p.r)
        else:
            f = 1.0
            tail = tp_ns
        s_l = max(start[q] + max(f * stage_ns[q], tpix_ns[q]) for q in prods) + transfer_ns
        end_l = max(s_l + t_fill_ns, max(end[q] for q in prods) + transfer_ns + tail)
        start[layer.name], end[layer.name] = s_l, end_l
        stage_ns[layer.name], tpix_ns[layer.name] = t_fill_ns, tp_ns
        chips_spanned = tuple(sorted({pos(t)[0] for c in p.tiles for t in c})) if not p.digital else (0,)
        n_arrays = len(p.arrays)
        rows_out.append(LayerMapping(
            index=p.index, name=layer.name, op=layer.op, kind="digital" if p.digital else "analog",
            shape=_shape_str(layer), matrix_rows=p.k, matrix_cols=p.n, groups=p.g, groups_per_array=p.gpa,
            weights=layer.weight_count, macs=layer.mac_count, row_blocks=p.nrb, col_blocks=p.ncb,
            arrays=n_arrays, replication=p.r if not p.digital else 0, tiles=p.tiles_per_copy * len(p.tiles),
            array_utilization=(layer.weight_count / (n_arrays * R * C)) if n_arrays else 0.0,
            mvms=mvms, mvm_cycles=p.t_pixel, cycles=cycles, latency_ns=t_ns,
            devices=0 if p.digital else layer.weight_count * a.devices_per_weight * p.r,
            activation_bit_hops=act_hops, partial_sum_bit_hops=ps_hops, chip_link_bits=link_bits,
            first_tile=p.tiles[0][0] if p.tiles else -1, chips_spanned=chips_spanned, energy_pj=e,
            stage_time_ns=t_fill_ns, done_ns=end_l, spill_bits=spill_bits))
    if progress is not None:
        progress(len(plans), len(plans))

    # ---- totals
    last = plans[-1]
    h_out, c_out, _, _ = route(home(last), DIGITAL_POS)
    latency_ns = end[last.layer.name] + h_out * hop_ns + c_out * link_ns
    latency_ns += dig_ns.get(network.layers[-1].name, 0.0)  # digital operators after the last matrix layer
    stages: list[tuple[float, str]] = [
        (r.stage_time_ns, r.name) for r in rows_out if r.kind == "analog"]
    stages += [(costs.chip_link_time_ns(spec, r.spill_bits), f"weight spill of {r.name}")
               for r in rows_out if r.spill_bits]
    if digital_cycles:
        stages.append((timing.cycles_to_ns(spec, digital_cycles), "digital unit"))
    for s, bits in enumerate(seg_bits):
        stages.append((costs.chip_link_time_ns(spec, bits), f"chip link {s}-{s + 1}"))
    interval_ns, bottleneck = max(stages, key=lambda x: x[0])
    interval_ns = max(interval_ns, 1e-9)
    program_ns = 0.0
    if reprogram:
        # rounds run one after the other, every inference: program the round's arrays (in parallel), then
        # run its layers; no pipelining across rounds or inferences (batch 1)
        by_plan: dict[str, float] = {}
        memo: dict[tuple[int, int], float] = {}

        def prog_ns(ru: int, cu: int) -> float:
            if (ru, cu) not in memo:
                memo[ru, cu] = costs.array_program_time_ns(spec, ru, cu)
            return memo[ru, cu]

        for rnd in rounds:
            t_round = 0.0
            for p, chunk in rnd:
                t = max(prog_ns(ru, cu) for (ru, cu) in {(ru, cu) for (_, _, _, ru, cu) in chunk})
                by_plan[p.layer.name] = by_plan.get(p.layer.name, 0.0) + t
                t_round = max(t_round, t)
            program_ns += t_round
        compute_ns = sum(r.stage_time_ns for r in rows_out if r.kind == "analog") \
            + timing.cycles_to_ns(spec, digital_cycles)
        for r in rows_out:
            r.program_ns = by_plan.get(r.name, 0.0)
        latency_ns = max(latency_ns, compute_ns) + program_ns
        interval_ns = latency_ns
        bottleneck = (f"PCM reprogramming ({len(rounds)} rounds)" if program_ns >= compute_ns
                      else f"compute between {len(rounds)} reprogramming rounds")
    energy = dict.fromkeys(costs.ENERGY_COMPONENTS, 0.0)
    for r in rows_out:
        for comp, val in r.energy_pj.items():
            energy[comp] += val
    for dr in dig_rows:
        for comp, val in dr.energy_pj.items():
            energy[comp] += val
    energy["leakage"] = costs.leakage_power_mw(spec, chips) * interval_ns  # mW · ns = pJ
    energy_total = sum(energy.values())
    macs = sum(r.macs for r in rows_out)
    attention_macs = sum(dr.macs for dr in dig_rows)
    ops = 2 * (macs + attention_macs)
    dig_time = timing.cycles_to_ns(spec, digital_cycles)
    busy = dig_time + sum(r.latency_ns for r in rows_out if r.kind == "analog")
    dig_energy = (sum(r.energy_total_pj for r in rows_out if r.kind == "digital")
                  + sum(dr.energy_total_pj for dr in dig_rows if dr.unit == "digital"))
    inf_s = 1e9 / interval_ns
    tops = ops * inf_s / 1e12
    area = costs.chip_area_um2(spec, chips)
    area_mm2 = sum(area.values()) / 1e6
    return MappingResult(
        schedule=schedule, program_rounds=len(rounds), program_time_ns=program_ns,
        spec_name=spec.name, spec_hash=spec.spec_hash, network_name=network.name,
        replicate=opts.replicate, max_chips=opts.max_chips, layers=rows_out, chips=chips,
        tiles_per_chip=tpc, tiles_used=tiles_used,
        arrays_used=sum(r.arrays * r.replication for r in rows_out),
        devices_used=sum(r.devices for r in rows_out), weights=sum(r.weights for r in rows_out),
        macs=macs, ops=ops, interval_ns=interval_ns, bottleneck=bottleneck, latency_ns=latency_ns,
        inferences_per_s=inf_s, tops=tops, energy_pj=energy, energy_total_pj=energy_total,
        tops_per_w=ops / energy_total if energy_total else 0.0, area_um2=area, area_total_mm2=area_mm2,
        tops_per_mm2=tops / area_mm2 if area_mm2 else 0.0,
        chip_link_bits=sum(r.chip_link_bits for r in rows_out), clock_mhz=spec.technology.clock_mhz,
        digital_ops=dig_rows, parameters=network.parameter_count,
        sram_parameters=network.sram_param_count,
        analog_macs=sum(r.macs for r in rows_out if r.kind == "analog"),
        digital_macs=sum(r.macs for r in rows_out if r.kind == "digital") + attention_macs,
        digital_op_count=sum(dr.ops for dr in dig_rows if dr.unit == "digital"), digital_time_ns=dig_time,
        affine_op_count=sum(dr.ops for dr in dig_rows if dr.unit == "affine"),
        digital_time_share=dig_time / busy if busy else 0.0, digital_energy_pj=dig_energy,
        digital_energy_share=dig_energy / energy_total if energy_total else 0.0,
        sources=costs.constant_sources(spec))
