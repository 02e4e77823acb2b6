"""``digits-resnet`` on the co-processor (``proto``) in ONE run of the chip, from :mod:`tb.cnn_golden` (issue 18).

:func:`prepare_resnet` turns a :class:`tb.cnn_golden.CnnGolden` of ``digits-resnet`` (archmodel's integer
network forward, per layer and tile, for the mapper's placement) into one :class:`tb.cnn_env.CnnNetwork`
(the assembly of :mod:`tb.cnn_env`, shared with digits-cnn: :func:`tb.cnn_env._one_run`) that
:meth:`tb.top_env.TopTestbench.run` plays in one run, the host sending each image's 64 raw pixels and receiving
the class scores, nothing relayed by the host in between:

- the stem (digital conv, C = 1) on the digital datapath's layer slot 0, 64 vectors per image
  (``digital.vectors``), its patches built on chip by the digital node's line buffer (``digital.lb``,
  :func:`rtl.register_compiler.with_digital_patch`, as digits-cnn's conv1); stem_relu multicast to 11 tiles
  (``interconnect.digital_dest_entries`` = 11 on proto): b1_conv1's 5 tiles, b2_conv1's 5 and b2_proj's 1;
- b1_conv1's home tile -> b1_conv2's 5 tiles; b1_conv2's home tile (b1_conv2_bn) -> the 6 tiles of b2_conv1
  and b2_proj, whose residual joins (``tile<t>.add``) make b1_add = requantize_sum(b1_conv2_bn, stem_relu), ReLU;
  b2_conv1's home -> b2_conv2's 9 tiles;
- b2_conv2's home tile (b2_conv2_bn, tag 23) and b2_proj's tile (b2_proj_bn, tag 24) send over the mesh to the
  digital node, whose input join (``digital.add``: b2_add, ReLU) and pool (``digital.ipool``: the global average
  pool) make fc's 32-element input vector, queued tagged 23 (:func:`rtl.register_compiler.with_input_join`);
  both tiles also mirror their outputs to the host (``chan`` 1, compared as taps);
- fc on layer slot 1 (one vector per image), the class scores to the host (``digital.out1``).

Every analog tile's DAC beats are compared with the golden patch rows: b2_conv1's and b2_proj's DAC codes are
b1_add's output (the tiles' joins) code for code. The host keeps one image in flight (``credit`` = 1); the
digital node's queues hold one round of either slot (the stem: 8 beats of raw pixels, fc: 4 beats), so no packet
finds its source queue full (docs/design.md section 11.2, "Deadlock-free transport"); both joins' skews are
checked against their queues by the compiler (:func:`rtl.register_compiler.join_skew_beats`: b1_add 38 beats,
b2_add 28 beats, ``rtl.pool.JOIN_DEPTH`` = 64).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from archmodel.spec import ChipSpec
from rtl.register_compiler import (
    analog_layer,
    conv_layer,
    digital_dest,
    host_dest,
    join_skew_beats,
    residual_join,
    tile_coords,
    with_input_join,
)
from rtl.regmap import source_tag
from tb.cnn_env import CnnCosimError, CnnNetwork, TileArray, _analog, _digital, _first_digital, _one_run
from tb.cnn_golden import CnnGolden

__all__ = ["RESNET_SHAPE", "join_branches", "prepare_resnet"]

#: Stage kinds of digits-resnet (tb.cnn_golden.LayerGolden.kind, in execution order).
RESNET_SHAPE = ["digital", "analog", "analog", "add", "analog", "analog", "analog", "add", "global_avgpool",
                "digital"]


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


def join_branches(network, a: str, b: str) -> tuple[list, list]:
    """The layers from the last common producer of values ``a`` and ``b`` (layer names of ``network``) to each
    of them, in order (empty: that value IS the common producer), following each layer's first input; the
    input of :func:`rtl.register_compiler.join_skew_beats`.

    Raises
    ------
    CnnCosimError
        ``a`` and ``b`` have no common producer.
    """
    def ancestors(name: str) -> list[str]:
        out = [name]
        while network[out[-1]].inputs:
            out.append(network[out[-1]].inputs[0])
        return out

    up_a, up_b = ancestors(a), ancestors(b)
    common = next((x for x in up_a if x in up_b), None)
    if common is None:
        raise CnnCosimError(f"{a!r} and {b!r} have no common producer")
    return ([network[x] for x in reversed(up_a[:up_a.index(common)])],
            [network[x] for x in reversed(up_b[:up_b.index(common)])])


def prepare_resnet(golden: CnnGolden) -> CnnNetwork:
    """digits-resnet of ``golden`` as one run of the chip (module docstring).

    Raises
    ------
    CnnCosimError
        The network is not digits-resnet's shape (:data:`RESNET_SHAPE`), an add is not the one expected, or the
        register compiler refuses a layer (one line: e.g. a join whose skew overflows its queue).
    """
    spec: ChipSpec = golden.spec
    kinds = [lg.kind for lg in golden.layers]
    if kinds != RESNET_SHAPE:
        raise CnnCosimError(f"network '{golden.network.name}': the residual co-simulation plays digits-resnet's "
                            f"stages {RESNET_SHAPE}; this one is {kinds}")
    stem, b1c1, b1c2, b1add, b2c1, b2c2, b2p, b2add, gpool, fc = golden.layers
    net = golden.network
    scales = golden.prep.scales
    relu = {st.layer.name: st.relu for st in golden.prep.stages}
    n_img = golden.x_int8.shape[0]

    def entries(tiles, chan=0):
        return [(*tile_coords(spec, t), 0, 0, chan) for t in tiles]

    # b1_add at the input of every tile reading b1_relu: a = b1_conv2_bn (its home tile), b = stem_relu (digital)
    a_in, b_in = b1add.inputs
    if (a_in, b_in) != (b1c2.out_name, stem.out_name) or not relu[b1add.name]:
        raise CnnCosimError(f"b1_add adds {b1add.inputs}; expected ({b1c2.out_name}, {stem.out_name}) with ReLU")
    if tuple(b2add.inputs) != (b2c2.out_name, b2p.out_name) or not relu[b2add.name]:
        raise CnnCosimError(f"b2_add adds {b2add.inputs}; expected ({b2c2.out_name}, {b2p.out_name}) with ReLU")
    tag23, tag24 = source_tag(spec, _home(b2c2)), source_tag(spec, _home(b2p))
    try:
        d_stem = _first_digital(spec, golden, stem, dests=entries(_tiles(b1c1) + _tiles(b2c1) + _tiles(b2p)))
        c11 = _analog(spec, golden, b1c1, dests=entries(_tiles(b1c2)))
        c12 = _analog(spec, golden, b1c2, dests=entries(_tiles(b2c1) + _tiles(b2p)))
        c21 = _analog(spec, golden, b2c1, dests=entries(_tiles(b2c2)))
        # b2_conv2's home and b2_proj's tile: to the digital node's input join, mirrored to the host (chan 1)
        to_join = [(*digital_dest(spec), 0, 0, 0), (*host_dest(spec), 0, 0, 1)]
        c22 = _analog(spec, golden, b2c2, dests=to_join)
        cp = _analog_layer(spec, golden, b2p, dests=to_join)
        join1 = dict(src_a=source_tag(spec, _home(b1c2)), src_b=source_tag(spec, "digital"), scale_a=scales[a_in],
                     scale_b=scales[b_in], out_scale=scales[b1add.out_name], relu=True,
                     skew_beats=join_skew_beats(spec, *join_branches(net, a_in, b_in)))
        c21 = ([residual_join(spec, lyr, **join1) for lyr in c21[0]], *c21[1:])
        cp = ([residual_join(spec, lyr, **join1) for lyr in cp[0]], *cp[1:])
        # fc on slot 1: its input = b2_add (tags 23 + 24) -> global average pool at the digital node's input join
        c_fc = net[fc.name].matrix_shape[0]
        d_fc = _digital(spec, fc, dest=host_dest(spec), n_pixels=n_img, sources=((tag23, c_fc),))
        d_fc = with_input_join(spec, d_fc, src_a=tag23, src_b=tag24, scale_a=scales[b2c2.out_name],
                               scale_b=scales[b2p.out_name], out_scale=scales[b2add.out_name], relu=True,
                               pool=net[gpool.name],
                               skew_beats=join_skew_beats(spec, *join_branches(net, b2c2.out_name, b2p.out_name)))
    except ValueError as exc:  # the register compiler's one-line refusals
        raise CnnCosimError(str(exc)) from None
    x_fc = np.asarray(gpool.output, dtype=np.int64).reshape(n_img, -1)  # (B, 32): what the join + pool hand fc
    rn = _one_run(golden, d_stem, [c11, c12, c21, cp, c22], d_fc, x_last=x_fc,
                  taps={tag23: b2c2.pixels, tag24: b2p.pixels},
                  layer_outputs=[stem.pixels, b1c1.pixels, b1c2.pixels, b2c1.pixels, b2p.pixels, b2c2.pixels,
                                 x_fc, golden.scores],
                  first_reader=b1c1.name, residual=True,
                  pace_notes=["", "", "", "b2_conv1's stride 2", "b2_conv1's stride 2", "b2_proj's stride 2", ""])
    return rn
