"""``digits-resnet`` on the co-processor (``proto``), from :mod:`tb.cnn_golden` (issue 18).

:func:`prepare_resnet` turns a :class:`tb.cnn_golden.CnnGolden` of ``digits-resnet`` (archmodel's integer
network forward, per layer and tile, for the mapper's placement) into two :class:`tb.top_env.PreparedNetwork`
phases that :meth:`tb.top_env.TopTestbench.run` plays one after the other on the same simulated chip
(the layout of :mod:`tb.cnn_env`, whose helpers it imports):

Phase 1 (``features``): the stem (digital, the host's im2col rows) on the digital datapath, stem_relu multicast
to 11 tiles (``interconnect.digital_dest_entries`` = 11 on proto): b1_conv1's 5 tiles, b2_conv1's 5 and b2_proj's
1, the last 6 through their residual joins (``tile<t>.add``: b1_add = requantize_sum(b1_conv2_bn, stem_relu),
ReLU); b1_conv1's home tile -> b1_conv2's 5 tiles; b1_conv2's home tile (b1_conv2_bn) -> the 6 joins;
b2_conv1's home -> b2_conv2's 9 tiles; b2_conv2's home tile sends b2_conv2_bn to the host (chan 0, the phase's
output) and b2_proj's tile sends b2_proj_bn to the host on chan 1 (a tap, compared by
:class:`tb.top_checker.TapChecker`). Every analog tile's DAC beats are compared with the golden patch rows:
b2_conv1's and b2_proj's DAC codes are b1_add's output (the tiles' joins) code for code.

Phase 2 (``classifier``): the host sends b2_conv2_bn (as the RTL produced it) tagged with b2_conv2's home tile
and b2_proj_bn tagged with b2_proj's tile to the digital node, pixel by pixel interleaved; the digital node's
input join (``digital.add``: b2_add, ReLU) and pool (``digital.ipool``: the global average pool) make fc's input
vector, which enters the source queue tagged ``out_src``; fc's class scores go to the host. So b2_add and the
global pool run on the RTL at the digital node, only the hop tile -> digital node is replaced by the host.

Shortcuts (named in the report): the stem's input patches are the host's im2col rows (a digital first layer
with C = 1; digits-cnn's conv1 now has its patches built by the digital node's line buffer, not yet wired
here); the two phases, written when the digital datapath alternated its two layer slots one vector at a time
(the stem needs 64 vectors per image, fc 1). Per-slot vector counts now exist (``digital.vectors``, register
map v7, used by digits-cnn's one run) but this testbench does not use them yet; one phase is: stem in slot 0
(``n_pixels`` 64 per image) and fc in slot 1 (1 per image) as one
``compile_mapped_network([stem, fc])``-style digital configuration, b2_conv2's home tile and b2_proj's tile
sending to the digital node (``digital_dest``) instead of the host, :func:`rtl.register_compiler.digital_input_join`
written with phase 1's configuration, ``fc.sources = ((out_src, 32),)`` next to the host's queue for the stem, and
``expected`` = the scores: :func:`prepare_resnet`'s ``one_phase`` branch marks the place (not built: it raises).

The b2_proj tap in phase 1 is compared with the golden; phase 2 feeds b2_proj_bn from the golden, which equals
what the RTL sent when the tap had 0 mismatches (asserted by the test); b2_conv2_bn is fed as the RTL produced it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from archmodel.spec import ChipSpec
from rtl.params import TileParams
from rtl.register_compiler import (
    analog_layer,
    compile_mapped_network,
    conv_layer,
    digital_input_join,
    host_dest,
    residual_join,
    tile_coords,
)
from rtl.regmap import build_regmap, source_tag
from tb.cnn_env import CnnCosimError, TileArray, _analog, _digital, rm_write
from tb.cnn_golden import CnnGolden
from tb.top_env import NetworkJob, PreparedNetwork

__all__ = ["RESNET_SHAPE", "ResnetPhases", "cosim_resnet", "prepare_resnet", "resnet_report_lines"]

#: Stage kinds of digits-resnet (tb.cnn_golden.LayerGolden.kind, in execution order).
RESNET_SHAPE = ["digital", "analog", "analog", "add", "analog", "analog", "analog", "add", "global_avgpool",
                "digital"]


@dataclass
class ResnetPhases:
    """The two phases (module docstring) and what the report needs."""

    features: PreparedNetwork
    classifier: PreparedNetwork
    golden: CnnGolden
    layer_names: list[str]       # matrix layers, in order
    layer_kinds: list[str]
    predicted_cycles: list[int]  # mapper's vector_cycles per matrix layer (per output pixel)
    pixels: list[int]            # output pixels per image of each matrix layer
    tags: dict                   # what -> source tag (b2_conv2's home, b2_proj's tile, the digital node, the host)


def _tiles(lg) -> list[int]:
    return sorted(t.tile for t in lg.tiles)


def _home(lg) -> int:
    """An analog layer's home tile (its last row block; one column block)."""
    return max(lg.tiles, key=lambda t: t.row_block).tile


def _analog_layer(spec: ChipSpec, golden: CnnGolden, lg, *, dests) -> tuple[list, list, list]:
    """:func:`tb.cnn_env._analog` for a layer on ONE tile (no chain): its MappedLayer with the golden's
    coefficients, the tile's array, its golden DAC input (patch rows)."""
    if len(lg.tiles) != 1:
        return _analog(spec, golden, lg, dests=dests)
    f = lg.tiles[0]
    m = lg.matrix
    lyr = analog_layer(spec, m.weights, tile=f.tile, dest=dests[0][:2], name=lg.name, in_scale=1.0, out_scale=1.0,
                       gdc_alpha=lg.gdc_alpha, relu=True, mode=1)
    lyr = replace(lyr, coefs=lg.affine, dests=tuple(dests))
    conv = golden.network[lg.name]
    chain = conv_layer(spec, conv, [lyr]) if conv.op == "conv" else [lyr]
    return chain, [TileArray(m, f.row_block, 0, f.rows[1] - f.rows[0], f.cols[1] - f.cols[0])], [lg.rows]


def prepare_resnet(golden: CnnGolden, *, one_phase: bool = False) -> ResnetPhases:
    """The two phases of ``golden``'s network (module docstring).

    Raises
    ------
    CnnCosimError
        The network is not digits-resnet's shape (:data:`RESNET_SHAPE`), ``one_phase`` (needs per-slot vector
        counts in the digital datapath), or the register compiler refuses a layer (one line).
    """
    spec: ChipSpec = golden.spec
    kinds = [lg.kind for lg in golden.layers]
    if kinds != RESNET_SHAPE:
        raise CnnCosimError(f"network '{golden.network.name}': the residual co-simulation plays digits-resnet's "
                            f"stages {RESNET_SHAPE}; this one is {kinds}")
    if one_phase:
        raise CnnCosimError("digits-resnet in one phase is not built yet (the digital datapath's per-slot vector "
                            "counts exist: stem 64 vectors per image, fc 1; see tb/resnet_env.py)")
    stem, b1c1, b1c2, b1add, b2c1, b2c2, b2p, b2add, gpool, fc = golden.layers
    scales = golden.prep.scales
    relu = {st.layer.name: st.relu for st in golden.prep.stages}
    n_img = golden.x_int8.shape[0]
    rm = build_regmap(spec)
    tp = TileParams.from_spec(spec)

    def entries(tiles, chan=0):
        return [(*tile_coords(spec, t), 0, 0, chan) for t in tiles]

    # ---- phase 1: stem (digital, host im2col) -> 11 tiles ... -> b2_conv2_bn (chan 0), b2_proj_bn (chan 1, tap)
    stem_dests = entries(_tiles(b1c1) + _tiles(b2c1) + _tiles(b2p))
    d_stem = _digital(spec, stem, dest=stem_dests[0][:2], n_pixels=stem.rows.shape[0])
    d_stem = replace(d_stem, dests=tuple(stem_dests))
    c11, a11, i11 = _analog(spec, golden, b1c1, dests=entries(_tiles(b1c2)))
    c12, a12, i12 = _analog(spec, golden, b1c2, dests=entries(_tiles(b2c1) + _tiles(b2p)))
    c21, a21, i21 = _analog(spec, golden, b2c1, dests=entries(_tiles(b2c2)))
    c22, a22, i22 = _analog(spec, golden, b2c2, dests=[(*host_dest(spec), 0, 0, 0)])
    cp, ap, ip = _analog_layer(spec, golden, b2p, dests=[(*host_dest(spec), 0, 0, 1)])
    # b1_add at the input of every tile reading b1_relu: a = b1_conv2_bn (its home tile), b = stem_relu (digital)
    a_in, b_in = b1add.inputs
    join1 = dict(src_a=source_tag(spec, _home(b1c2)), src_b=source_tag(spec, "digital"), scale_a=scales[a_in],
                 scale_b=scales[b_in], out_scale=scales[b1add.out_name], relu=True)
    if (a_in, b_in) != (b1c2.out_name, stem.out_name) or not relu[b1add.name]:
        raise CnnCosimError(f"b1_add adds {b1add.inputs}; expected ({b1c2.out_name}, {stem.out_name}) with ReLU")
    c21 = [residual_join(spec, lyr, **join1) for lyr in c21]
    cp = [residual_join(spec, lyr, **join1) for lyr in cp]
    layers = [d_stem, *c11, *c12, *c21, *cp, *c22]
    try:
        writes = compile_mapped_network(spec, layers, regmap=rm)
    except ValueError as exc:
        raise CnnCosimError(str(exc)) from None
    tags = {"b2_conv2": source_tag(spec, _home(b2c2)), "b2_proj": source_tag(spec, _home(b2p)),
            "digital": source_tag(spec, "digital"), "host": source_tag(spec, "host")}
    job = NetworkJob(f"{golden.network.name} on {spec.name} (features)", spec.name, {}, 0, None, [], [], [],
                     stem.rows, [True] * 5)
    feats = PreparedNetwork(job=job, spec=spec, params=tp, regmap=rm, matrices=[None, *a11, *a12, *a21, *ap, *a22],
                            layers=layers, inputs=[stem.rows, *i11, *i12, *i21, *ip, *i22], expected=b2c2.pixels,
                            writes=writes, entry=[0], taps={tags["b2_proj"]: b2p.pixels},
                            layer_outputs=[stem.pixels, b1c1.pixels, b1c2.pixels, b2c1.pixels, b2p.pixels,
                                           b2c2.pixels])

    # ---- phase 2: the host sends b2_conv2_bn (tag of b2_conv2's home) and b2_proj_bn (tag of b2_proj's tile) to
    # the digital node: b2_add + global average pool at its input join, fc, scores to the host
    if tuple(b2add.inputs) != (b2c2.out_name, b2p.out_name) or not relu[b2add.name]:
        raise CnnCosimError(f"b2_add adds {b2add.inputs}; expected ({b2c2.out_name}, {b2p.out_name}) with ReLU")
    c_fc = golden.network[fc.name].matrix_shape[0]
    d_fc = replace(_digital(spec, fc, dest=host_dest(spec), n_pixels=n_img), sources=((tags["b2_conv2"], c_fc),))
    try:
        stale = [rm_write(rm, f"digital.dest{e}", x=0, y=0, lo=0, hi=0, chan=0, en=0) for e in range(1, len(stem_dests))]
        writes2 = [rm_write(rm, "digital.pool.en", en=0, avg=0), *stale,
                   *digital_input_join(spec, src_a=tags["b2_conv2"], src_b=tags["b2_proj"],
                                       scale_a=scales[b2c2.out_name], scale_b=scales[b2p.out_name],
                                       out_scale=scales[b2add.out_name], relu=True,
                                       pool=golden.network[gpool.name], regmap=rm),
                   *compile_mapped_network(spec, [d_fc], regmap=rm)]
    except ValueError as exc:
        raise CnnCosimError(str(exc)) from None
    x_fc = np.asarray(gpool.output, dtype=np.int64)  # (B, 32): what the join + pool must hand fc
    job2 = NetworkJob(f"{golden.network.name} on {spec.name} (classifier)", spec.name, {}, 0, None, [], [], [],
                      x_fc, [False])
    cls = PreparedNetwork(job=job2, spec=spec, params=tp, regmap=rm, matrices=[None], layers=[d_fc], inputs=[x_fc],
                          expected=golden.scores, writes=writes2, entry=[0], layer_outputs=[golden.scores],
                          host_streams=[(0, tags["b2_conv2"], b2c2.pixels), (0, tags["b2_proj"], b2p.pixels)])
    mats = [lg for lg in golden.layers if lg.kind in ("digital", "analog")]
    return ResnetPhases(features=feats, classifier=cls, golden=golden, layer_names=[lg.name for lg in mats],
                        layer_kinds=[lg.kind for lg in mats],
                        predicted_cycles=[lg.placement.vector_cycles for lg in mats],
                        pixels=[lg.pixels.shape[0] // n_img for lg in mats], tags=tags)


def cosim_resnet(arch: str, placement, *, images: int, seed: int = 1, sim: str = "icarus", build_dir,
                 weights: str = "seeded", fault_test: bool = False, waves: bool = False) -> dict:
    """Build the co-processor for ``arch`` and run ``tb.test_resnet_cosim.test_resnet_network`` on ``placement``
    (the mapper's, without replication); with ``fault_test`` also ``test_resnet_fault`` in the same simulator
    process (its JSON under ``fault_test``). ``weights``: ``seeded`` or ``trained`` (as :func:`tb.cnn_env.cosim_cnn`).

    Returns the test's JSON plus ``passed``, ``message`` and ``wall_s``. Raises :class:`CnnCosimError` when the
    simulator produced no result.
    """
    import dataclasses
    import json
    from pathlib import Path

    from rtl.export import write_verilog
    from rtl.top import Coprocessor
    from tb.cosim import run_cocotb_tests
    from tb.tile_env import resolve_spec
    from tb.top_env import TOP_NAME

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    pl_file = build_dir / "placement.json"
    pl_file.write_text(json.dumps(dataclasses.asdict(placement)))
    spec = resolve_spec(arch, {})
    src = write_verilog(Coprocessor(spec), TOP_NAME, build_dir / "rtl" / sim, spec, icarus=(sim == "icarus"))
    env = {"AIMC_PLACEMENT": str(pl_file), "AIMC_CNN_IMAGES": str(int(images)), "AIMC_CNN_WEIGHTS": weights}
    tests = ["test_resnet_network"] + (["test_resnet_fault"] if fault_test else [])
    outs = run_cocotb_tests(sim, src, TOP_NAME, "tb.test_resnet_cosim", build_dir, tests, arch=arch,
                            changes={}, seed=seed, waves=waves, extra_env=env)
    out = outs["test_resnet_network"]
    if not out.data:
        raise CnnCosimError(f"co-simulation of '{placement.network_name}' gave no result: {out.message}")
    d = dict(out.data) | {"passed": out.passed, "message": out.message, "wall_s": out.wall_s}
    if fault_test:
        fo = outs["test_resnet_fault"]
        d["fault_test"] = dict(fo.data or {}) | {"passed": fo.passed, "message": fo.message, "wall_s": fo.wall_s}
    return d


def resnet_report_lines(d: dict) -> tuple[bool, list[str]]:
    """``(ok, lines)``: the ``aimc cosim --network digits-resnet --images N`` report of one :func:`cosim_resnet`.

    ``ok``: the test passed; b2_conv2_bn, the b2_proj tap and the class scores all compared with 0 mismatches;
    every analog tile's DAC beats compared with 0 mismatches; the RTL's top-1 equal to the model's.
    """
    if "features" not in d:
        return False, [f"FAILED: {d.get('message', '')}"]
    f, c, n = d["features"], d["classifier"], d["images"]
    labels = np.asarray(d["labels"])
    t_rtl, t_model = np.asarray(d["top1_rtl"]), np.asarray(d["top1_model"])
    ok = (d["passed"] and f["mismatches"] == 0 and f["compared"] == f["expected_outputs"] and f["dac_mismatches"] == 0
          and f["dac_compared"] > 0 and f["tap_mismatches"] == 0 and f["tap_compared"] > 0
          and c["mismatches"] == 0 and c["compared"] == c["expected_outputs"] and bool((t_rtl == t_model).all()))
    lines = [
        f"{d['network']}: {n} images, seed {d['seed']}, weights {d.get('weights', 'seeded')}, golden = "
        "archmodel's integer network forward (tb.cnn_golden)",
        f"{'MATCH' if ok else 'MISMATCH'}: every analog tile's DAC codes (= stem_relu, b1_conv1_relu, b1_add at "
        f"b2_conv1's and b2_proj's joins, b2_conv1_relu) {f['dac_compared']} compared, {f['dac_mismatches']} "
        f"mismatches; b2_conv2_bn (tile -> host) {f['compared']}/{f['expected_outputs']} compared, "
        f"{f['mismatches']} mismatches; b2_proj_bn (tap, chan 1) {f['tap_compared']} compared, "
        f"{f['tap_mismatches']} mismatches; class scores after b2_add + global pool (digital node's input join) "
        f"+ fc {c['compared']}/{c['expected_outputs']} compared, {c['mismatches']} mismatches",
        f"top-1: RTL {t_rtl.tolist()} model {t_model.tolist()} (equal on {int((t_rtl == t_model).sum())}/{n}); "
        f"accuracy RTL {float(np.mean(t_rtl == labels)):.4f}, model {float(np.mean(t_model == labels)):.4f}",
        "cycles per output pixel (simulated vs mapper's vector_cycles):",
    ]
    starts = d.get("mvm_start_cycles") or []
    tiles = d.get("tiles") or []
    stem_pix = d["stem_cycles"] / (n * d["pixels"][0])
    for name, kind, pred, pix in zip(d["layer_names"], d["layer_kinds"], d["predicted_cycles"], d["pixels"],
                                     strict=True):
        if kind == "digital":
            cyc = d["stem_cycles"] if name == d["layer_names"][0] else d["fc_cycles"]
            sim_c = cyc / (n * pix)
            if abs(sim_c - pred) <= 0.05 * pred:
                why = "within 5 %"
            elif name == d["layer_names"][0]:
                why = (f"differs: the digital node's output link paces the stem: every stem_relu pixel goes to 11 "
                       f"tiles, {d['stem_flits_per_pixel']} flits per pixel on one link at one flit per cycle "
                       f"(>= {d['stem_flits_per_pixel']} cycles per pixel) > {pred} MAC cycles; the rest: "
                       "back-pressure of the tiles' array ports and the host's input")
            else:
                why = (f"differs: {pred} MAC cycles per vector + the run's pipeline (join, pool, drain: "
                       f"{cyc - n * pix * pred} cycles over {n * pix} vectors)")
            lines.append(f"  {name:9s} digital {sim_c:9.2f} vs {pred:5d}  ({(sim_c - pred) / pred:+.1%}; {why})")
        else:
            idx = [i for i, t in enumerate(tiles) if t is not None]
            mine = [starts[k] for k, i in enumerate(idx) if d["tile_layers"][i] == name]
            iv = [(s[-1] - s[0]) / (len(s) - 1) for s in mine if len(s) > 1]
            if iv:
                sim_c = max(iv)
                ratio = d["pixels"][0] / pix
                note = ("within 5 %" if abs(sim_c - pred) <= 0.05 * pred else
                        f"differs: mean interval between a tile's MVM starts, set by the producer, not the tile's "
                        f"stage time the mapper predicts: the stem paces the pipeline, one pixel per "
                        f"{stem_pix:.1f} cycles, {ratio:g} stem pixel(s) per {name} pixel on average "
                        f"({stem_pix * ratio:.0f}; first to last MVM of one image, so the fill and the row-pair "
                        f"bunching of a stride-2 layer move it)")
                lines.append(f"  {name:9s} analog  {sim_c:9.2f} vs {pred:5d}  ({(sim_c - pred) / pred:+.1%}; {note})")
            else:
                lines.append(f"  {name:9s} analog  {'n/a':>9s} vs {pred:5d}")
    lines.append(f"total: features {f['cycles']} cycles, classifier {c['cycles']} cycles ({n} images); back-pressure: "
                 f"input refused {f['in_stall_cycles'] + c['in_stall_cycles']} cycles, output refused "
                 f"{f['out_stall_cycles'] + c['out_stall_cycles']} cycles (ready low ~30 % of cycles, seeded, at "
                 f"m_axis, the AXI4-Lite responses and every array port); wall {d.get('wall_s', 0.0):.1f} s")
    lines.append("limitations: the stem's patches are the host's im2col rows; two phases (the host carries "
                 "b2_conv2_bn and b2_proj_bn from the tiles to the digital node, b2_add + global pool + fc on the "
                 "chip): one phase with the digital datapath's per-slot vector counts is not built yet (tb/resnet_env.py)")
    ft = d.get("fault_test")
    if ft:
        fok = bool(ft.get("passed"))
        ok = ok and fok
        lines.append(f"fault: {ft.get('fault_what')}: DAC mismatches {ft.get('features', {}).get('dac_mismatches')} "
                     f"at layers {ft.get('dac_mismatch_layers')} -> "
                     + (f"located at {ft.get('expected_layer')}" if fok else f"NOT located: {ft.get('message')}"))
    if not d["passed"]:
        lines.append(f"FAILED: {d['message']}")
    return ok, lines
