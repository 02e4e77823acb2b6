"""A whole CNN (``digits-cnn``, ``digits-resnet`` on ``proto``) on the co-processor, from :mod:`tb.cnn_golden`
(issue 18).

:func:`prepare_cnn` turns a :class:`tb.cnn_golden.CnnGolden` (archmodel's integer network forward, per
layer and tile, for the mapper's placement) into ONE :class:`tb.top_env.PreparedNetwork` that
:meth:`tb.top_env.TopTestbench.run` plays in one run of the simulated chip, the host sending the first layer's
raw input pixels and receiving the class scores, nothing relayed by the host in between. Both networks share
the assembly (:func:`_one_run`: a digital first conv on layer slot 0 with its patches from the digital node's
line buffer, analog chains, a digital last layer on slot 1), the cocotb driver (``tb.test_top_cosim._cnn``), the
build-and-run (:func:`cosim_cnn`) and the report (:func:`cnn_report_lines`); a residual network's topology (joins,
the digital node's input join) is :mod:`tb.resnet_env`'s. digits-cnn:

conv1 (C = 1) on the digital datapath's layer slot 0 (64 vectors per image: ``digital.vectors``), its results
pooled on the digital node's pool unit (``digital.pool``, maxpool 2 x 2; slot 0's results only) and multicast to
every tile of conv2 (one destination entry per tile: ``interconnect.digital_dest_entries``); conv2 on a
partial-sum chain of tiles with patch buffers, its home tile multicasting relu2's pixels to every tile of conv3
(one entry per tile: ``interconnect.tile_dest_entries``); conv3's chain, its home tile sending relu3's pixel
vectors over the mesh to the digital node (source queue 1, 512 elements = 16 pixels x 32 channels per image,
layer slot 1, one vector per image) and mirroring them to the host (``chan`` 1, compared as a tap); fc on slot 1
(its weight rows permuted to the stream order, :func:`tb.cnn_golden.stream_order`), the class scores to the host
(``digital.out1``). Every analog tile's DAC beats are compared with the golden patch rows (:class:`tb.top_bridge`
checking bridges): that checks the pooled conv1 output (conv2's tiles) and relu2 (conv3's tiles) code for code;
relu3 is the tap; the scores the output.

The host keeps one image in flight (``credit`` = 1 of :meth:`TopTestbench.run`: image ``i + 1``'s conv1 input is
sent once image ``i``'s scores are back), and the digital node's source queues hold one round of either slot
(conv1: one image's 64 pixels = 8 beats, relu3: 64 beats, ``rtl.regmap.DIGITAL_QUEUE_BEATS`` = 128): no packet ever finds its
queue full, so the host's packets cannot block relu3's on the shared input link (the argument: rtl/digital.py).

conv1's patches are built on chip: the host sends each image's 64 raw pixels (8 beats; C = 1), and the digital
node's patch buffer (``digital.lb``, :class:`rtl.patchbuf.PatchBuffer` with one int8 lane per word, in front of the
datapath for layer slot 0 only) makes the 64 tap-major 3 x 3 pad-1 patches of 9 elements.

The configuration uses the golden's own coefficients (``LayerGolden.affine``: archmodel's quantized affine
map) and int8 weights (``LayerGolden.weights_int8``); the arrays are the golden's one
:class:`~archmodel.analog_matrix.AnalogMatrix` per analog layer, each tile answering with
``array_adc_codes`` of its row block (:class:`TileArray`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from archmodel.errors import AimcError
from archmodel.spec import ChipSpec
from rtl.params import TileParams
from rtl.register_compiler import (
    DigitalLayer,
    chained_layer,
    compile_mapped_network,
    conv_layer,
    digital_dest,
    host_dest,
    tile_coords,
    with_digital_patch,
    with_pool,
)
from rtl.regmap import build_regmap, source_tag
from tb.cnn_golden import CnnGolden, LayerGolden, stream_order
from tb.top_env import NetworkJob, PreparedNetwork

__all__ = ["CnnCosimError", "CnnNetwork", "TileArray", "cnn_report_lines", "cosim_cnn", "prepare_cnn",
           "proto_cnn_report_lines"]


class CnnCosimError(AimcError, ValueError):
    """A network this co-simulation cannot play (one line)."""


class TileArray:
    """One tile's array for the checking bridge: row block ``r``, column block ``c`` of the layer's matrix.

    ``shape`` is the tile's block; ``array_adc_codes(0, 0, dac, mvm_index)`` is the parent matrix's
    ``array_adc_codes(r, c, dac, mvm_index)`` (the same object the golden read).
    """

    def __init__(self, matrix, r: int, c: int, rows: int, cols: int):
        self.matrix, self.r, self.c, self.shape = matrix, r, c, (rows, cols)

    def array_adc_codes(self, row_block: int, col_block: int, dac_codes, mvm_index: int = 0) -> np.ndarray:
        if (row_block, col_block) != (0, 0):
            raise ValueError(f"a tile's array is block (0, 0), got ({row_block}, {col_block})")
        return self.matrix.array_adc_codes(self.r, self.c, dac_codes, mvm_index)


@dataclass
class CnnNetwork:
    """The whole network as one run (module docstring; digits-resnet: :mod:`tb.resnet_env`) and what the report
    needs."""

    network: PreparedNetwork
    golden: CnnGolden
    layer_names: list[str]       # matrix layers, in order
    layer_kinds: list[str]
    predicted_cycles: list[int]  # mapper's vector_cycles per matrix layer (per output pixel)
    pixels: list[int]            # output pixels per image of each matrix layer
    first_reader: str = ""       # the first layer reading the first digital layer's results (a fault there shows)
    pace_notes: list[str] = field(default_factory=list)  # per matrix layer: why first-layer pixels per its pixel
    residual: bool = False       # digits-resnet (tb.resnet_env)


def _digital(spec: ChipSpec, lg: LayerGolden, *, dest, n_pixels: int, n_vectors: int = 1, perm=None,
             sources=()) -> DigitalLayer:
    w = np.asarray(lg.weights_int8, dtype=np.int64)  # (K, N), tap-major rows
    if perm is not None:
        w = w[perm]
    return DigitalLayer(w_int8=w.T.copy(), coefs=lg.affine, dest=dest, n_pixels=int(n_pixels),
                        n_vectors=int(n_vectors), name=lg.name, sources=tuple(sources))


def _analog(spec: ChipSpec, golden: CnnGolden, lg: LayerGolden, *, dests) -> tuple[list, list, list]:
    """The chain of ``lg``'s tiles (one column block): MappedLayers with the golden's coefficients, the tiles'
    arrays, the tiles' golden DAC inputs (patch rows)."""
    lp = lg.placement
    if lp.col_blocks != 1:
        raise CnnCosimError(f"layer {lg.name}: {lp.col_blocks} column blocks; the CNN co-simulation plays one")
    feeds = sorted(lg.tiles, key=lambda t: t.row_block)
    tiles = [f.tile for f in feeds]
    rows = [f.rows[1] - f.rows[0] for f in feeds]
    if len(set(tiles)) < 2:  # rtl.register_compiler.chained_layer's rule, as one user-facing line
        raise CnnCosimError(f"layer '{lg.name}': {sum(rows)} rows fit one tile; the CNN co-simulation plays this "
                            "layer as a partial-sum chain of >= 2 tiles (as on proto's 32-row arrays)")
    m = lg.matrix
    conv = golden.network[lg.name]
    chain = chained_layer(spec, m.weights, tiles=tiles, rows=rows, dest=dests[0][:2], name=lg.name, in_scale=1.0,
                          out_scale=1.0, gdc_alpha=lg.gdc_alpha, relu=True, mode=1)
    chain[-1] = replace(chain[-1], coefs=lg.affine, dests=tuple(dests))
    if conv.op == "conv":
        chain = conv_layer(spec, conv, chain)
    arrays = [TileArray(m, f.row_block, 0, rows[i], f.cols[1] - f.cols[0]) for i, f in enumerate(feeds)]
    inputs = [lg.rows[:, f.rows[0]:f.rows[1]] for f in feeds]
    return chain, arrays, inputs


def _first_digital(spec: ChipSpec, golden: CnnGolden, lg: LayerGolden, *, dests, pool=None) -> DigitalLayer:
    """The network's first layer, a digital conv, in layer slot 0: one round per image of its output pixels
    (``digital.vectors``), its results (pooled by ``pool`` on the digital node's pool unit) multicast to
    ``dests``, its patches built on chip from the host's raw pixels (``digital.lb``)."""
    n_img = golden.x_int8.shape[0]
    d = _digital(spec, lg, dest=dests[0][:2], n_pixels=lg.rows.shape[0], n_vectors=lg.rows.shape[0] // n_img)
    d = replace(d, dests=tuple(dests))
    if pool is not None:
        d = with_pool(spec, pool, d)
    return with_digital_patch(spec, golden.network[lg.name], d)


def _one_run(golden: CnnGolden, first: DigitalLayer, chains: list, last: DigitalLayer, *, x_last: np.ndarray,
             taps: dict, layer_outputs: list, first_reader: str, pace_notes: list[str],
             residual: bool = False) -> CnnNetwork:
    """One :class:`PreparedNetwork` of a CNN whose first layer is a digital conv on slot 0 (``first``), whose
    analog layers are ``chains`` (each ``(MappedLayers, arrays, golden DAC inputs)`` of :func:`_analog`, in
    order) and whose last layer is digital on slot 1 (``last``, input ``x_last``): the host sends each image's
    raw pixels (raster order, channels contiguous) to the digital node and receives the class scores; ``taps``:
    tiles' outputs mirrored to the host (chan 1). The configuration is ONE compile of every layer.

    Raises
    ------
    CnnCosimError
        The register compiler refuses the configuration (one line).
    """
    spec = golden.spec
    n_img = golden.x_int8.shape[0]
    rm = build_regmap(spec)
    layers = [first, *(lyr for c in chains for lyr in c[0]), last]
    try:
        writes = compile_mapped_network(spec, layers, regmap=rm)
    except ValueError as exc:
        raise CnnCosimError(str(exc)) from None
    mats = [lg for lg in golden.layers if lg.kind in ("digital", "analog")]
    first_g = mats[0]
    x = np.asarray(golden.x_int8)
    x_pix = x.transpose(0, 2, 3, 1).reshape(n_img, -1)  # what the host sends: each image's pixels, raster order
    job = NetworkJob(f"{golden.network.name} on {spec.name}", spec.name, {}, 0, None, [], [], [], first_g.rows,
                     [True] * (len(mats) - 1) + [False])
    net = PreparedNetwork(job=job, spec=spec, params=TileParams.from_spec(spec), regmap=rm,
                          matrices=[None, *(a for c in chains for a in c[1]), None], layers=layers,
                          inputs=[first_g.rows, *(i for c in chains for i in c[2]), x_last], expected=golden.scores,
                          writes=writes, entry=[0], taps=taps, feeds={0: x_pix}, layer_outputs=layer_outputs)
    return CnnNetwork(network=net, golden=golden, layer_names=[lg.name for lg in mats],
                      layer_kinds=[lg.kind for lg in mats],
                      predicted_cycles=[lg.placement.vector_cycles for lg in mats],
                      pixels=[lg.pixels.shape[0] // n_img for lg in mats], first_reader=first_reader,
                      pace_notes=pace_notes, residual=residual)


def prepare_cnn(golden: CnnGolden) -> CnnNetwork:
    """The whole network of ``golden`` as one run (module docstring); a residual network (an ``add`` stage) is
    :func:`tb.resnet_env.prepare_resnet`'s.

    Raises
    ------
    CnnCosimError
        The network is not digital conv -> pool -> analog conv -> analog conv -> flatten -> digital linear
        (``digits-cnn``'s shape) nor digits-resnet's, or the register compiler refuses a layer (one line).
    """
    if any(lg.kind == "add" for lg in golden.layers):
        from tb.resnet_env import prepare_resnet

        return prepare_resnet(golden)
    spec = golden.spec
    kinds = " -> ".join(f"{lg.name} ({lg.kind})" for lg in golden.layers)
    shape = [lg.kind for lg in golden.layers]
    if shape != ["digital", "maxpool", "analog", "analog", "flatten", "digital"]:
        raise CnnCosimError(f"network '{golden.network.name}': the CNN co-simulation plays digits-cnn's shape "
                            f"(digital conv -> maxpool -> analog conv -> analog conv -> flatten -> digital linear) "
                            f"or digits-resnet's; this one is {kinds}")
    conv1, pool, conv2, conv3, _, fc = golden.layers
    n_img = golden.x_int8.shape[0]

    c2_tiles = sorted(t.tile for t in conv2.tiles)
    c3_tiles = sorted(t.tile for t in conv3.tiles)
    d1 = _first_digital(spec, golden, conv1, dests=[(*tile_coords(spec, t), 0, 0, 0) for t in c2_tiles],
                        pool=golden.network[pool.name])  # conv1 -> maxpool -> conv2's tiles
    chain2 = _analog(spec, golden, conv2, dests=[(*tile_coords(spec, t), 0, 0, 0) for t in c3_tiles])
    # conv3's home tile: relu3 to the digital node (fc's input) and mirrored to the host on chan 1 (the tap)
    chain3 = _analog(spec, golden, conv3, dests=[(*digital_dest(spec), 0, 0, 0), (*host_dest(spec), 0, 0, 1)])
    home3 = chain3[0][-1].tile
    _, c, h, w = conv3.output.shape
    perm = stream_order(c, h, w)
    relu3 = conv3.pixels
    x_fc = relu3.reshape(n_img, -1)  # the stream: pixel-major, channels contiguous = flatten(CHW)[perm]
    np.testing.assert_array_equal(x_fc, golden.trace[fc.inputs[0]][:, perm])
    d2 = _digital(spec, fc, dest=host_dest(spec), n_pixels=n_img, perm=perm,
                  sources=[(source_tag(spec, home3), x_fc.shape[1])])
    return _one_run(golden, d1, [chain2, chain3], d2, x_last=x_fc, taps={source_tag(spec, home3): relu3},
                    layer_outputs=[conv1.pixels, pool.pixels, conv2.pixels, relu3, golden.scores],
                    first_reader=conv2.name, pace_notes=["", "the 2 x 2 pool window", "the 2 x 2 pool window", ""])


#: Default drift time of the CNN co-simulation after programming, s (1 h; the golden's GDC alpha per analog
#: layer): every documented CNN run used it (docs/design.md §17). Assumed, not from a paper.
CNN_T_INF_S = 3600.0


def cosim_cnn(arch: str, placement, *, images: int, seed: int = 1, sim: str = "verilator", build_dir,
              fault: str = "none", fault_test: bool = False, weights: str = "seeded", waves: bool = False,
              network: str | None = None, t_inf_s: float = CNN_T_INF_S) -> dict:
    """Build the co-processor for ``arch`` and run ``tb.test_top_cosim.test_cnn_network`` on ``placement``
    (the mapper's, without replication: :class:`archmodel.placement.Placement`); with ``fault_test`` also
    ``test_cnn_fault`` in the same simulator process (its JSON under ``fault_test``). A residual network
    (digits-resnet) runs ``tb.test_resnet_cosim``'s ``test_resnet_network`` / ``test_resnet_fault`` (the same
    driver). ``weights``: ``seeded`` (:func:`tb.cnn_golden.seeded_params`) or ``trained`` (30 epochs on the
    digits split of ``seed``). ``network``: the zoo name or ONNX / YAML path the placement was made from
    (default ``placement.network_name``, a zoo name). ``t_inf_s``: drift time after programming, s (default 1 h;
    the golden's GDC alpha per analog layer).

    Returns the test's JSON plus ``passed``, ``message`` and ``wall_s``. Raises :class:`CnnCosimError` when the
    simulator produced no result.
    """
    from archmodel.zoo import load_network
    from tb.network_env import network_ref, outcome_json, run_top_tests

    network = str(network or placement.network_name)
    residual = any(layer.op == "add" for layer in load_network(network).layers)
    module, names = (("tb.test_resnet_cosim", ("test_resnet_network", "test_resnet_fault")) if residual else
                     ("tb.test_top_cosim", ("test_cnn_network", "test_cnn_fault")))
    env = {"AIMC_CNN_IMAGES": str(int(images)), "AIMC_FAULT": fault, "AIMC_CNN_WEIGHTS": weights,
           "AIMC_NETWORK": network_ref(network), "AIMC_CNN_T_INF": repr(float(t_inf_s))}
    tests = [names[0]] + ([names[1]] if fault_test else [])
    outs = run_top_tests(arch, placement, build_dir=build_dir, sim=sim, module=module, tests=tests, seed=seed,
                         waves=waves, env=env)
    d = outcome_json(outs[names[0]], placement.network_name, CnnCosimError)
    if fault_test:
        fo = outs[names[1]]
        d["fault_test"] = dict(fo.data or {}) | {"passed": fo.passed, "message": fo.message, "wall_s": fo.wall_s}
    return d


def cnn_report_lines(d: dict) -> tuple[bool, list[str]]:
    """``(ok, lines)``: the ``aimc cosim --images N`` report of one :func:`cosim_cnn` result (digits-cnn or
    digits-resnet: ``d["residual"]``).

    ``ok``: the test passed, every class score and mirrored value (taps) compared with 0 mismatches, every analog
    tile's DAC beats compared with 0 mismatches, the RTL's top-1 equal to the model's.
    """
    if "run" not in d:
        return False, [f"FAILED: {d.get('message', '')}"]
    r, n = d["run"], d["images"]
    labels = np.asarray(d["labels"])
    t_rtl, t_model = np.asarray(d["top1_rtl"]), np.asarray(d["top1_model"])
    ok = (d["passed"] and r["mismatches"] == 0 and r["compared"] == r["expected_outputs"] and r["dac_mismatches"] == 0
          and r["dac_compared"] > 0 and r["tap_mismatches"] == 0 and r["tap_compared"] > 0
          and bool((t_rtl == t_model).all()))
    names = d["layer_names"]
    first = names[0]
    if d.get("residual"):
        match = (f"every analog tile's DAC codes (= stem_relu, b1_conv1_relu, b1_add at b2_conv1's and b2_proj's "
                 f"joins, b2_conv1_relu) {r['dac_compared']} compared, {r['dac_mismatches']} mismatches; b2_conv2_bn "
                 f"and b2_proj_bn (tiles -> the digital node's input join, mirrored to the host) {r['tap_compared']} "
                 f"compared, {r['tap_mismatches']} mismatches; class scores after b2_add + global pool (digital "
                 f"node's input join) + fc {r['compared']}/{r['expected_outputs']} compared, {r['mismatches']} "
                 "mismatches")
    else:
        match = (f"conv1 -> maxpool (digital node) outputs = conv2's DAC codes and relu2 = conv3's DAC codes: "
                 f"{r['dac_compared']} compared, {r['dac_mismatches']} mismatches; relu3 (conv3's home tile -> "
                 f"digital node, mirrored to the host) {r['tap_compared']} compared, {r['tap_mismatches']} "
                 f"mismatches; class scores {r['compared']}/{r['expected_outputs']} compared, {r['mismatches']} "
                 "mismatches")
    lines = [
        f"{d['network']}: {n} images, seed {d['seed']}, weights {d.get('weights', 'seeded')}, drift t = "
        f"{d.get('t_inf_s', CNN_T_INF_S):g} s after programming (GDC), golden = archmodel's integer network forward "
        "(tb.cnn_golden); one run of the chip, no host relay",
        f"{'MATCH' if ok else 'MISMATCH'}: {match}",
        f"top-1: RTL {t_rtl.tolist()} model {t_model.tolist()} (equal on {int((t_rtl == t_model).sum())}/{n}); "
        f"accuracy RTL {float(np.mean(t_rtl == labels)):.4f}, model {float(np.mean(t_model == labels)):.4f}",
        "cycles per output pixel (simulated vs mapper's vector_cycles):",
    ]
    starts = d.get("mvm_start_cycles") or []
    tiles = d.get("tiles") or []
    width = max(6, max(len(x) for x in names))
    notes = d.get("pace_notes") or [""] * len(names)
    pix_all = d["pixels"]
    first_pix = d["conv1_cycles"] / (n * pix_all[0])  # slot 0's busy cycles per first-layer pixel
    for li, (name, kind, pred, pix) in enumerate(zip(names, d["layer_kinds"], d["predicted_cycles"], pix_all,
                                                     strict=True)):
        if kind == "digital":
            cyc = d["conv1_cycles"] if li == 0 else d["fc_cycles"]
            sim_c = cyc / (n * pix)
            fl = d.get("first_flits_per_pixel", 0)
            if abs(sim_c - pred) <= 0.05 * pred:
                why = "within 5 %"
            elif li == 0 and fl > pred:
                why = (f"differs: the digital node's output link paces {name}: every pixel goes to "
                       f"{d['first_dests']} tiles, {fl} flits per pixel on one link at one flit per cycle "
                       f"(>= {fl} cycles per pixel) > {pred} MAC cycles; the rest: back-pressure of the tiles' "
                       "array ports and joins")
            else:
                why = (f"differs: {pred} MAC cycles per pixel + the pipeline drain at the end of every round of "
                       f"the slot ({cyc - n * pix * pred} cycles over {n * pix} pixels; "
                       "archmodel.timing.digital_slot_cycles)")
            lines.append(f"  {name:{width}s} digital {sim_c:9.2f} vs {pred:5d}  ({(sim_c - pred) / pred:+.1%}; {why})")
        else:
            # the layer's tiles' MVM start cycles: the steady interval between MVMs of a tile
            idx = [i for i, t in enumerate(tiles) if t is not None]
            mine = [starts[k] for k, i in enumerate(idx) if d["tile_layers"][i] == name] if "tile_layers" in d else []
            # within each image (one image in flight: the tiles idle between images while fc runs)
            iv = [np.mean([(s[(i + 1) * pix - 1] - s[i * pix]) / (pix - 1) for i in range(len(s) // pix)])
                  for s in mine if pix > 1 and len(s) >= pix]
            if iv:
                sim_c = max(iv)  # mean interval between MVM starts within an image, of the layer's slowest tile
                ratio = pix_all[0] // pix
                pace = first_pix * pix_all[0] / pix
                note = ("within 5 %" if abs(sim_c - pred) <= 0.05 * pred else
                        f"differs: mean interval between a tile's MVM starts, set by the producer, not the tile's "
                        f"stage time the mapper predicts: digital {first} paces the pipeline, "
                        f"{first_pix:.1f} cycles per {first} pixel x {ratio}"
                        + (f" ({notes[li]})" if notes[li] else "")
                        + f" = {pace:.0f} cycles per {name} output pixel over {first}'s whole image (an upper "
                        "bound: the interval is measured from a tile's first MVM of an image, which waits for its "
                        f"first window, to its last, which follows {first}'s last pixel)")
                lines.append(f"  {name:{width}s} analog  {sim_c:9.2f} vs {pred:5d}  ({(sim_c - pred) / pred:+.1%}; "
                             f"{note})")
            else:
                lines.append(f"  {name:{width}s} analog  {'n/a':>9s} vs {pred:5d}")
    lines.append(f"total: {r['cycles']} cycles first input to last score ({n} images, one in flight); "
                 f"back-pressure: input refused {r['in_stall_cycles']} cycles, output refused "
                 f"{r['out_stall_cycles']} cycles (ready low ~30 % of cycles, seeded, at m_axis, the AXI4-Lite "
                 f"responses and every array port); wall {d.get('wall_s', 0.0):.1f} s")
    lines.append(f"{first}'s patches built on chip (digital.lb) from the host's raw pixels; no host relay")
    ft = d.get("fault_test")
    if ft:
        reader = d.get("first_reader", "conv2")
        fok = ft.get("passed") and (ft.get("dac_mismatch_layers") or [None])[0] == reader
        ok = ok and bool(fok)
        lines.append(f"fault: {first}'s weight flit {(ft.get('fault_at') or {}).get('flit')} negated on its way to "
                     f"the chip (golden untouched): DAC mismatches {ft.get('run', {}).get('dac_mismatches')} at "
                     f"layers {ft.get('dac_mismatch_layers')} -> " + (f"located at {reader}'s input = {first}'s "
                                                                       "output" if fok else
                                                                       f"NOT located: {ft.get('message')}"))
    if not d["passed"]:
        lines.append(f"FAILED: {d['message']}")
    return ok, lines


def _proto_phase_ok(o: dict) -> bool:
    r = o["run"]
    return (r["mismatches"] == 0 and r["compared"] == r["expected_outputs"] and r["tap_mismatches"] == 0
            and r["tap_compared"] == o["taps"] > 0 and r["extra_outputs"] == 0 and r["format_errors"] == 0
            and r["axil_errors"] == 0 and not any(r["flags"].values()) and o["top1_rtl"] == o["top1_model"])


def proto_cnn_report_lines(outs: dict) -> tuple[bool, list[str]]:
    """``(ok, lines)``: the ``aimc cosim --images N --emulate-arrays`` report of a CNN on the FPGA prototype
    (:func:`tb.network_env.cosim_prototype` with ``cnn``; ``tb.test_proto_cosim.test_proto_cnn_network``).

    ``ok``: the test passed; the noise-off run (and the noise-on run) bit-exact against the golden with the
    emulator model's ADC codes (every class score and every mirrored value compared, RTL top-1 = the golden's);
    the done interrupt seen; with the fault phase, the tap mismatching in the faulted column only.
    """
    from archmodel.golden.emulator import noise_variance

    d = outs["test_proto_cnn_network"]
    from tb.network_env import proto_accuracy_line

    n, off = d["images"], d.get("off")
    if off is None:
        return False, [f"FAILED: {d['message']}"]
    ok = bool(d["passed"]) and _proto_phase_ok(off) and off["irq_rise_after_last_score"] is not None
    tiles = d["analog_tiles"]
    last = d["layer_names"][-2]
    lines = [
        f"{d['network']}, FPGA prototype (aimc_prototype: the co-processor + one PCM array emulator per array port) "
        f"in one run of the chip: {n} images, seed {d['seed']}, weights {d['weights']}",
        "emulators: conductance codes of each analog layer's programmed matrix at t = "
        f"{d['t_inf_s']:g} s (8-bit codes; " + "; ".join(
            f"{name} on tiles {ts[0]}..{ts[-1]}, ADC shift {d['shifts'][str(ts[0])]}" for name, ts in tiles.items())
        + f"), written over AXI4-Lite: {d['emulator_writes']} writes, {d['emulator_program_cycles']} cycles "
        f"({d['emulator_program_wall_s']:.1f} s wall)",
    ]

    def phase(o: dict) -> str:
        r = o["run"]
        return (f"{'MATCH' if _proto_phase_ok(o) else 'MISMATCH'} against the golden (archmodel's integer forward, "
                f"the emulator model's ADC codes): class scores {r['compared']}/{r['expected_outputs']} compared, "
                f"{r['mismatches']} mismatches; {last}'s outputs (mirrored to the host) {r['tap_compared']} "
                f"compared, {r['tap_mismatches']} mismatches; top-1 RTL = golden on "
                f"{int((np.asarray(o['top1_rtl']) == np.asarray(o['top1_model'])).sum())}/{len(o['top1_rtl'])}")

    lines.append(f"noise off: {phase(off)}")
    if "on" in d:
        ok = ok and _proto_phase_ok(d["on"])
        lines.append(f"noise on (sigma {d['sigma']}, std {math.sqrt(noise_variance(d['sigma'])):.2f} ADC LSB, seed "
                     f"{d['emu_seed']} + tile): {phase(d['on'])}")
    lines.append(proto_accuracy_line(d))
    names, pix = d["layer_names"], d["pixels"]
    lines.append(f"cycles: {off['run']['cycles']} from the first input to the last score ({off['run']['cycles'] / n:.1f} "
                 f"per image, one image in flight); {names[0]} {off['conv1_cycles'] / (n * pix[0]):.2f} per pixel vs "
                 f"{d['predicted_cycles'][0]}, {names[-1]} {off['fc_cycles'] / n:.2f} per image vs "
                 f"{d['predicted_cycles'][-1]}; configuration {off['run']['writes']} AXI4-Lite writes + the weight "
                 f"stream, {off['run']['config_cycles']} cycles")
    lines.append(f"interrupt: irq rose {off['irq_rise_after_last_score']} cycles after the last score was taken "
                 f"(IRQ_STATUS {off['irq_status']:#x})")
    lines.append("not compared on the prototype: the analog tiles' DAC codes (no array port at its boundary; the "
                 "Python-array run of aimc cosim --images compares them)")
    if "fault" in d:
        f = d["fault"]
        r = f["run"]
        located = f["tap_mismatch_at"] == [[f["tap_tag"], f["col"]]]
        ok = ok and located
        lines.append(f"fault: code ({f['row']}, {f['col']}) of tile {f['tile']}'s emulator ({f['layer']}, row block 0) "
                     f"changed over the bus {f['code'][0]} -> {f['code'][1]} after programming (golden untouched), "
                     f"{f['images']} image(s): {f['layer']}'s outputs {r['tap_mismatches']} mismatches at (tile tag, "
                     f"column) {f['tap_mismatch_at']}; class scores {r['mismatches']} mismatches -> "
                     + (f"located at {f['layer']}, column {f['col']}" if located else "NOT located"))
    if not d["passed"]:
        lines.append(f"FAILED: {d['message']}")
    lines.append(f"wall {d['wall_s']:.1f} s (simulation of all phases, with the golden runs and training)")
    return ok, lines
