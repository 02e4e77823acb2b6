"""Golden of a whole CNN on the co-processor: what every tile and layer must produce, bit for bit (issue 18).

The whole-network counterpart of :mod:`tb.network_env` (which plays ``digits-mlp``
with its own small integer pipeline) for conv networks, built on archmodel's
integer network forward instead of a re-implementation: every int8 code here is
what :meth:`archmodel.accuracy.NetworkInstance.run` computes (its ``trace``), so
the RTL that matches this golden matches the accuracy model.

Pipeline of :func:`cnn_golden`:

1. :func:`archmodel.accuracy.prepare` on the digits training images: fused
   stages, int8 activation scales, calibration rows (ADC range, GDC vectors).
2. Per analog layer (the placement's ``kind == "analog"``, which must equal the
   chip's ``digital.digital_layers`` split), ONE
   :class:`~archmodel.analog_matrix.AnalogMatrix` programmed exactly as an
   accuracy draw does (:func:`archmodel.accuracy_experiment.program_layer`: the
   tap-major matrix of docs/design.md §4.8, the per-layer ADC range), its GDC
   reference measured at t = 0, drifted to ``t_inf_s`` with the read-noise key
   ``(seed, draw, layer, 3, 0)``, and its global GDC alpha (or 1 without
   compensation). Its row blocks are the layer's tiles: the RTL's array bridge
   of tile (row block ``r``, column block ``c``) answers with
   ``matrix.array_adc_codes(r, c, dac, mvm_index)`` of this same object.
3. :meth:`NetworkInstance.run` of the int8 images with a ``trace``: every
   stage's int8 output, every matrix layer's accumulator values and affine
   coefficients.

Tile convention (that of :mod:`tb.network_env`): an analog layer of ``rb`` row
blocks x ``cb`` column blocks, one array per tile, sits on tiles
``first_tile + c·rb + r``; tile ``(r, c)`` holds rows ``[r·R, min((r+1)·R, K))``
(``R = array.rows``) of the layer's tap-major matrix and columns
``[c·C, min((c+1)·C, N))``. Its DAC beat stream (contract §3) is, for every
output pixel in raster order, image after image, the pixel's patch rows
``[r0, r1)`` packed by :func:`archmodel.golden.tile_controller.dac_beats`
(``ceil((r1 − r0) / L)`` beats of ``L = array.rows_per_dac_beat`` lanes); MVM
``b·P + q`` (image ``b``, output pixel ``q``, ``P`` pixels per image) carries
output-noise key ``b·P + q``.

Feature maps travel as one int8 vector per pixel, raster order (contract §2):
:attr:`LayerGolden.pixels` is a layer's output in that order, ``(B·H·W, C)``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from archmodel import calibration
from archmodel.accuracy import AccuracyOptions, NetworkInstance, PreparedNetwork, mvm_rows, predict_labels, prepare
from archmodel.accuracy_experiment import gdc_vectors, program_layer
from archmodel.analog_matrix import AnalogMatrix
from archmodel.errors import AimcError
from archmodel.golden.affine import AffineCoefficients
from archmodel.golden.tile_controller import dac_beats, dac_codes
from archmodel.network.ir import Network
from archmodel.placement import LayerPlacement, Placement
from archmodel.spec import ChipSpec

__all__ = ["CnnGolden", "CnnGoldenError", "EmulatedLayer", "LayerGolden", "Route", "TileFeed", "cnn_golden",
           "dataflow_plan",
           "model_top1", "pixel_vectors", "plan_lines", "seeded_params", "stream_order", "tile_beats"]


class CnnGoldenError(AimcError, ValueError):
    """A network, placement or chip the whole-CNN golden cannot describe (one line)."""


@dataclass
class TileFeed:
    """One tile of an analog layer: its block of the matrix and the stream it receives.

    Members
    -------
    tile : int
        Global tile index ``first_tile + col_block·row_blocks + row_block``.
    row_block, col_block : int
        The AnalogMatrix block this tile's array holds.
    rows, cols : (int, int)
        Half-open ranges ``[r0, r1)`` of the tap-major matrix rows and ``[c0, c1)`` of its columns.
    beats : ndarray of int64, (B·P, ceil((r1 − r0)/L), L)
        The DAC beats of every MVM (output pixel, raster order, image after image).
    adc_codes : ndarray of int64, (B·P, c1 − c0)
        What the array answers: ``matrix.array_adc_codes(row_block, col_block, dac, 0)``.
    """

    tile: int
    row_block: int
    col_block: int
    rows: tuple[int, int]
    cols: tuple[int, int]
    beats: np.ndarray
    adc_codes: np.ndarray


@dataclass
class LayerGolden:
    """One stage of the network: its int8 input(s) and output, and for a matrix layer how it runs.

    Members
    -------
    name : str
        The stage's IR layer (a matrix layer, pool, add, flatten ...).
    kind : str
        ``"analog"``, ``"digital"`` (matrix layers) or the stage kind (``"maxpool"``, ``"add"``,
        ``"global_avgpool"``, ``"flatten"`` ...).
    inputs : tuple of str
        Trace keys of the stage's inputs (producers' ``out_name``; the network input's name).
    out_name : str
        Trace key of its output (the last IR layer fused into it).
    output : ndarray of int8
        ``(B, C, H, W)`` map or ``(B, N)`` vectors.
    rows : ndarray of int64 or None
        Matrix layers: the MVM input rows ``(B·P, K)`` (tap-major patches, :func:`archmodel.accuracy.mvm_rows`).
    acc : ndarray of int64 or None
        Matrix layers: accumulator values ``(B·P, N)`` (partial sums summed over the row blocks, or
        exact int8 sums).
    affine : AffineCoefficients or None
        Matrix layers: the affine unit's coefficients that turn ``acc`` into ``output``.
    weights_int8 : ndarray of int64 or None
        Digital layers: the (K, N) int8 weight matrix (tap-major rows).
    matrix : AnalogMatrix or None
        Analog layers: the programmed, drifted matrix (the array bridges' object).
    gdc_alpha : float
        Analog layers: the GDC alpha folded into ``affine`` (1 without compensation).
    placement : LayerPlacement or None
    tiles : list of TileFeed
        Analog layers: one per tile.
    stream_order : ndarray of int64 or None
        A linear layer fed by a flattened map ``(C, H, W)``: the stream carries the map pixel by pixel
        (contract §2), i.e. the flatten in ``(H, W, C)`` order, while the IR flattens ``(C, H, W)``; the
        stream's element ``(y·W + x)·C + c`` is row ``stream_order[...] = c·H·W + y·W + x`` of ``rows`` and of
        the weight matrix (:func:`stream_order`). None otherwise (conv layers; vectors from a global pool).
    """

    name: str
    kind: str
    inputs: tuple[str, ...]
    out_name: str
    output: np.ndarray
    rows: np.ndarray | None = None
    acc: np.ndarray | None = None
    affine: AffineCoefficients | None = None
    weights_int8: np.ndarray | None = None
    matrix: AnalogMatrix | None = None
    gdc_alpha: float = 1.0
    placement: LayerPlacement | None = None
    tiles: list[TileFeed] = field(default_factory=list)
    stream_order: np.ndarray | None = None

    @property
    def pixels(self) -> np.ndarray:
        """The output as the stream carries it: one int8 vector per pixel, raster order (:func:`pixel_vectors`)."""
        return pixel_vectors(self.output)


@dataclass
class CnnGolden:
    """The golden of a network on a chip for a batch of images.

    Members
    -------
    spec, network, placement
    prep : PreparedNetwork
    instance : NetworkInstance
        The network on the programmed, drifted matrices (run it again for more images).
    x_int8 : ndarray of int8, (B, C, H, W)
        The input images as int8 codes (what the host sends).
    layers : list of LayerGolden
        Every stage in execution order.
    trace : dict
        :meth:`NetworkInstance.run`'s trace (every stage output by ``out_name``).
    scores : ndarray of int8, (B, classes)
        The last layer's int8 outputs (the class scores on the output stream).
    top1 : ndarray of int64, (B,)
        ``argmax`` of the scores (first maximum).
    """

    spec: ChipSpec
    network: Network
    placement: Placement
    prep: PreparedNetwork
    instance: NetworkInstance
    x_int8: np.ndarray
    layers: list[LayerGolden]
    trace: dict
    scores: np.ndarray
    top1: np.ndarray

    def layer(self, name: str) -> LayerGolden:
        """The stage named ``name`` (KeyError if none)."""
        for lg in self.layers:
            if lg.name == name:
                return lg
        raise KeyError(name)


def pixel_vectors(x: np.ndarray) -> np.ndarray:
    """A batch of maps ``(B, C, H, W)`` as the stream's pixel vectors ``(B·H·W, C)`` (raster order, images in turn);
    vectors ``(B, N)`` unchanged."""
    x = np.asarray(x)
    if x.ndim == 2:
        return x
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)).reshape(-1, x.shape[1])


def stream_order(c: int, h: int, w: int) -> np.ndarray:
    """Permutation ``perm`` with ``perm[(y·W + x)·C + c] = c·H·W + y·W + x``: a ``(C, H, W)`` map flattened in
    stream (pixel-major, channels contiguous) order is ``flat_chw[perm]``."""
    return np.arange(c * h * w).reshape(c, h * w).T.reshape(-1)


def tile_beats(rows: np.ndarray, r0: int, r1: int, dac_bits: int, lanes: int) -> np.ndarray:
    """The DAC beats ``(M, ceil((r1 − r0)/lanes), lanes)`` of a tile holding rows ``[r0, r1)`` for MVM rows ``(M, K)``.

    ``dac_codes`` of the int8 rows (identity for an 8-bit DAC), packed per MVM by
    :func:`archmodel.golden.tile_controller.dac_beats` (contract §3).
    """
    d = dac_codes(np.asarray(rows)[:, r0:r1], dac_bits)
    return np.stack([dac_beats(v, lanes) for v in d]) if len(d) else np.zeros((0, -(-(r1 - r0) // lanes), lanes),
                                                                               np.int64)


def seeded_params(network: Network, seed: int) -> dict[str, dict[str, np.ndarray]]:
    """He-normal weights (:func:`archmodel.training.init_params`) and non-trivial batch-norm statistics from ``seed``.

    γ ~ U(0.5, 1.5), β ~ N(0, 0.2²), mean ~ N(0, 0.2²), var ~ U(0.5, 2) (assumed, so the folded affine map is
    exercised; tests/test_accuracy_golden.py pins its digests on these parameters).
    """
    from archmodel.training import init_params

    rng = np.random.default_rng(seed)
    params = init_params(network, rng)
    for layer in network.layers:
        if layer.op == "batchnorm":
            p = params[layer.name]
            n = p["gamma"].shape[0]
            p["gamma"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
            p["beta"] = rng.normal(0, 0.2, n).astype(np.float32)
            p["mean"] = rng.normal(0, 0.2, n).astype(np.float32)
            p["var"] = rng.uniform(0.5, 2.0, n).astype(np.float32)
    return params


class EmulatedLayer:
    """An analog layer's programmed, drifted :class:`AnalogMatrix` with every tile's array replaced by the FPGA
    prototype's PCM array emulator (``rtl/emulator.py``; issue 19).

    The conductances of the whole matrix are quantized ONCE by
    :func:`archmodel.golden.emulator.conductance_codes` (one ADC shift for the layer: its full scale is per
    layer); tile ``first_tile + c·rb + r`` holds array ``c·rb + r`` of those codes, and its answers come from
    :meth:`tb.network_env.EmulatedArrays.model` (the same codes, shift, ``sigma``, seed ``seed + tile``), its
    MVMs in the tile's vector order: MVM ``m`` of a call with ``mvm_index = i`` is the tile's MVM ``i + m`` since
    its ``SEED`` write (image ``b``, output pixel ``q``: ``b·P + q``, as the RTL tile sends them). Stateless: every
    call starts a fresh model and steps it over the ``mvm_index`` earlier MVMs, so the forward
    (:meth:`mvm_partial_sums_trusted`) and the per-tile feeds (:meth:`array_adc_codes`) agree code for code.

    Everything else (``w_abs_max``, the ADC full scale, blocks, weights: what the affine coefficients are made
    of) is the analog matrix's: only the arrays differ from the Python-bridge golden (the MLP's rule,
    :class:`tb.network_env.EmulatedArrays`).

    Parameters
    ----------
    matrix : AnalogMatrix
        Programmed and drifted (``t_inf``) layer matrix, ``(K, N)``.
    emulate : tb.network_env.EmulatedArrays
        Noise scale and seed; filled in with each tile's codes, shift and ADC beats.
    first_tile : int
        The layer's first tile (placement).
    codes_of : AnalogMatrix, optional
        The matrix whose conductances (``g_pos_us − g_neg_us``) the emulators hold (default ``matrix``): the same
        programmed matrix drifted to ``t_inf`` with one read-noise draw (:func:`cnn_golden`), since a keyed drift
        (``read_noise_key``) leaves ``matrix``'s conductances at the programmed state.
    """

    def __init__(self, matrix: AnalogMatrix, emulate, first_tile: int, codes_of: AnalogMatrix | None = None):
        from archmodel.golden.emulator import conductance_codes

        self.matrix, self.emulate, self.first_tile = matrix, emulate, int(first_tile)
        self.codes, self.shift = conductance_codes(matrix if codes_of is None else codes_of, g_bits=emulate.g_bits)
        spec = matrix.spec
        n_rb, n_cb = matrix.n_row_blocks, matrix.n_col_blocks
        self._cols = [min(spec.array.cols, matrix.shape[1] - c * spec.array.cols) for c in range(n_cb)]
        for c in range(n_cb):
            for r in range(n_rb):
                self.model(r, c)  # records every tile's codes, shift and ADC beats in ``emulate``

    def __getattr__(self, name: str):
        if name == "matrix":  # not yet set (copy, pickle): no recursion
            raise AttributeError(name)
        return getattr(self.matrix, name)

    def tile(self, row_block: int, col_block: int) -> int:
        """Global tile index of block ``(row_block, col_block)``."""
        return self.first_tile + col_block * self.matrix.n_row_blocks + row_block

    def model(self, row_block: int, col_block: int):
        """A fresh :class:`archmodel.golden.emulator.EmulatorModel` of block ``(row_block, col_block)``'s tile."""
        a = col_block * self.matrix.n_row_blocks + row_block
        return self.emulate.model(self.matrix.spec, self.tile(row_block, col_block), self.codes[a:a + 1],
                                  self.shift, cols=self._cols[col_block])

    def array_adc_codes(self, row_block: int, col_block: int, dac_codes, mvm_index: int = 0) -> np.ndarray:
        """The emulator's ADC codes ``(B, C)`` of block ``(row_block, col_block)`` for the block's DAC codes
        ``(B, R)`` (or ``(R,)``), MVMs ``mvm_index ..`` of its tile (class docstring)."""
        d = np.atleast_2d(np.asarray(dac_codes)).astype(np.int64)
        model = self.model(row_block, col_block)
        zero = np.zeros(1, np.int64)
        for _ in range(int(mvm_index)):  # the generators step per emitted beat: replay the earlier MVMs' beats
            model.mvm(0, zero)
        n = self._cols[col_block]
        return np.stack([model.mvm(0, v)[:n] for v in d]) if len(d) else np.zeros((0, n), np.int64)

    def mvm_partial_sums(self, dac_codes, mvm_index: int = 0) -> np.ndarray:
        """Every column block's emulator ADC codes summed over its row blocks (``accumulate_partial_sums``, the
        chain's integer sum), ``(B, N)`` int64, for DAC codes ``(B, K)``."""
        from archmodel.golden.affine import accumulate_partial_sums

        m, spec = self.matrix, self.matrix.spec
        d = np.atleast_2d(np.asarray(dac_codes)).astype(np.int64)
        out = []
        for c in range(m.n_col_blocks):
            codes = np.stack([self.array_adc_codes(r, c, d[:, sl], mvm_index)
                              for r, sl in enumerate(m.row_block_slices())])
            out.append(accumulate_partial_sums(codes, adc_bits=spec.array.adc_bits,
                                               acc_bits=spec.periphery.accumulator_bits))
        return np.concatenate(out, axis=1)

    def mvm_partial_sums_trusted(self, dac_codes_f64: np.ndarray, mvm_index: int = 0,
                                 row_order: np.ndarray | None = None) -> np.ndarray:
        """:meth:`mvm_partial_sums` (the accuracy forward's entry point; ``row_order`` is not supported)."""
        if row_order is not None:
            raise ValueError("EmulatedLayer: row_order is not supported")
        return self.mvm_partial_sums(dac_codes_f64, mvm_index)


def _check_placement(spec: ChipSpec, placement: Placement, prep: PreparedNetwork) -> None:
    mats = prep.matrix_layers
    if [lp.name for lp in placement.layers] != [l.name for l in mats]:
        raise CnnGoldenError(f"placement of '{placement.network_name}' names layers "
                             f"{[lp.name for lp in placement.layers]}, the network has {[l.name for l in mats]}")
    if spec.array.arrays_per_tile != 1:
        raise CnnGoldenError(f"'{spec.name}' has {spec.array.arrays_per_tile} arrays per tile; the golden maps one "
                             "array per tile")
    n_tiles = spec.tile_grid.rows * spec.tile_grid.cols
    for k, lp in enumerate(placement.layers):
        if (lp.kind == "digital") != (k in prep.digital):
            raise CnnGoldenError(f"layer {lp.name!r} is {lp.kind} in the placement but "
                                 f"{'digital' if k in prep.digital else 'analog'} in the chip's digital.digital_layers")
        if lp.kind == "analog":
            if lp.groups != 1 or lp.groups_per_array != 1:
                raise CnnGoldenError(f"layer {lp.name!r}: grouped convolutions are not placed tile by tile here")
            if lp.first_tile + lp.arrays > n_tiles:
                raise CnnGoldenError(f"layer {lp.name!r}: tiles {lp.first_tile}..{lp.first_tile + lp.arrays - 1} "
                                     f"exceed the {n_tiles} tiles of one '{spec.name}' chip")


def cnn_golden(spec: ChipSpec, network: Network, placement: Placement, params: dict, images: np.ndarray,
               x_train: np.ndarray, *, seed: int = 0, draw: int = 0, t_inf_s: float = 0.0,
               compensation: str = "gdc", options: AccuracyOptions | None = None, emulate=None) -> CnnGolden:
    """The golden of ``network`` placed by ``placement`` on ``spec`` for float ``images`` (module docstring).

    Parameters
    ----------
    spec : ChipSpec
    network : Network
    placement : Placement
        The mapper's placement without replication (``map_network(..., MapOptions(replicate=False)).placement()``).
    params : dict
        Trained (or :func:`seeded_params`) parameters ``{layer: {param: array}}``.
    images : ndarray, (B, C, H, W)
        Real images (digits: pixel / 16 in [0, 1]); quantized to int8 by the network's input scale.
    x_train : ndarray, (N, C, H, W)
        Training images: activation scales and calibration (:func:`archmodel.accuracy.prepare`).
    seed, draw : int
        Programming noise, read noise and GDC keys (those of an accuracy draw).
    t_inf_s : float
        Drift time after programming, s (>= 0).
    compensation : {"gdc", "none"}
        Global GDC alpha per analog layer, or none.
    options : AccuracyOptions, optional
        Passed to :func:`prepare` (default: one draw, the chip's ADC range).
    emulate : tb.network_env.EmulatedArrays, optional
        The FPGA prototype: every analog layer's arrays are its tiles' PCM array emulators
        (:class:`EmulatedLayer`: the forward, the tiles' ADC codes and everything downstream take the
        emulator model's codes; the configuration stays the analog model's); filled in with each tile's
        conductance codes, ADC shift and ADC beats.

    Raises
    ------
    CnnGoldenError
        A placement that does not match the network or the chip's digital layers, grouped convs, tiles beyond the
        chip, or an unknown compensation (one line each).
    """
    if compensation not in ("gdc", "none"):
        raise CnnGoldenError(f"compensation must be 'gdc' or 'none', got {compensation!r}")
    prep = prepare(spec, network, params, x_train, options or AccuracyOptions(draws=1))
    _check_placement(spec, placement, prep)
    if emulate is not None:
        emulate.codes, emulate.shifts, emulate.adc_beats = {}, {}, {}
    n_mat = len(prep.matrices)
    modes = ["int8" if k in prep.digital else "analog" for k in range(n_mat)]
    mats: list[AnalogMatrix | None] = [None] * n_mat
    alphas: list[np.ndarray | float] = [1.0] * n_mat
    for k in range(n_mat):
        if modes[k] != "analog":
            continue
        m = program_layer(prep, k, seed, draw)
        cal = gdc_vectors(prep.cal_rows[k])
        ref = calibration.gdc_reference(m, cal)
        m.drift(float(t_inf_s), read_noise_key=(int(seed), int(draw), k, 3, 0))
        if compensation == "gdc":
            alphas[k] = float(calibration.gdc_alpha(m, cal, ref))  # type: ignore[arg-type]
        if emulate is not None:
            # the emulators hold the conductances at t_inf: a copy drifted with one read-noise draw from the layer's
            # key (a keyed drift leaves g_pos_us / g_neg_us at the programmed state and redraws per MVM block)
            at_t = copy.deepcopy(m).drift(float(t_inf_s), np.random.default_rng([int(seed), int(draw), k, 3, 0]))
            m = EmulatedLayer(m, emulate, placement.layers[k].first_tile, codes_of=at_t)  # type: ignore[assignment]
        mats[k] = m
    inst = NetworkInstance(prep, modes, mats, alphas)
    trace: dict = {}
    inst.run(np.asarray(images, dtype=np.float32), trace=trace, image_index=0)
    layers = _layers(prep, placement, inst, trace, mats, alphas)
    scores = np.asarray(trace[prep.stages[-1].out_name])
    return CnnGolden(spec=spec, network=network, placement=placement, prep=prep, instance=inst,
                     x_int8=np.asarray(trace[network.input_name]), layers=layers, trace=trace, scores=scores,
                     top1=scores.argmax(axis=1).astype(np.int64))


def _layers(prep: PreparedNetwork, placement: Placement, inst: NetworkInstance, trace: dict,
            mats: list[AnalogMatrix | None], alphas: list) -> list[LayerGolden]:
    spec = prep.spec
    a = spec.array
    out: list[LayerGolden] = []
    for st in prep.stages:
        if st.kind != "matrix":
            out.append(LayerGolden(st.layer.name, st.kind, st.inputs, st.out_name, np.asarray(trace[st.out_name])))
            continue
        k, layer = st.matrix_index, st.layer
        lp = placement.layers[k]
        rows = mvm_rows(layer, np.asarray(trace[st.inputs[0]]), np.int64)[0]  # tap-major patches (contract §1)
        lg = LayerGolden(layer.name, lp.kind, st.inputs, st.out_name, np.asarray(trace[st.out_name]), rows=rows,
                         acc=np.asarray(trace[("acc", layer.name)]), affine=trace[("affine", layer.name)],
                         placement=lp)
        src = prep.network[st.inputs[0]]
        if layer.op == "linear" and src.op in ("flatten", "reshape"):
            shape = prep.network[src.inputs[0]].output_shape
            if shape is not None and len(shape) == 3:
                lg.stream_order = stream_order(*shape)
        if lp.kind == "digital":
            lg.weights_int8 = inst.w_int8[k][0].astype(np.int64)
        else:
            m = mats[k]
            assert m is not None
            lg.matrix, lg.gdc_alpha = m, float(np.asarray(alphas[k]))
            if (m.n_row_blocks, m.n_col_blocks) != (lp.row_blocks, lp.col_blocks):
                raise CnnGoldenError(f"layer {layer.name!r}: the matrix has {m.n_row_blocks} x {m.n_col_blocks} "
                                     f"blocks, the placement {lp.row_blocks} x {lp.col_blocks}")
            d = dac_codes(rows, a.dac_bits)
            for c in range(m.n_col_blocks):
                c0, c1 = c * a.cols, min((c + 1) * a.cols, m.shape[1])
                for r, sl in enumerate(m.row_block_slices()):
                    lg.tiles.append(TileFeed(
                        tile=lp.first_tile + c * m.n_row_blocks + r, row_block=r, col_block=c,
                        rows=(sl.start, sl.stop), cols=(c0, c1),
                        beats=tile_beats(rows, sl.start, sl.stop, a.dac_bits, a.rows_per_dac_beat),
                        adc_codes=m.array_adc_codes(r, c, d[:, sl], 0)))
        out.append(lg)
    return out


def model_top1(golden: CnnGolden, images: np.ndarray) -> np.ndarray:
    """archmodel's :func:`archmodel.accuracy.predict_labels` of ``images`` on the golden's network instance."""
    return predict_labels(golden.instance, np.asarray(images, dtype=np.float32))


# ----------------------------------------------------------------------------- the register-level dataflow plan
@dataclass(frozen=True)
class Route:
    """One stream of the whole network: a producer's int8 outputs, the ops on the way, every consumer.

    Members
    -------
    value : str
        Trace key of what the producer emits (its stage's ``out_name``; the network input's name for the host).
    producer : str
        ``"host"``, ``"digital"`` (the digital datapath) or ``"tile <t>"`` (an analog layer's home tile: the
        last row block of its column block; ``"tiles <t>, <u>"`` when a layer has several column blocks, merged
        in column order).
    ops : tuple of str
        Stages between the producer and the consumers, in order (``"maxpool pool"``, ``"add b1_add"``, ...).
    consumers : tuple of str
        Every unit that must receive the stream: ``"tile <t>"`` for each tile of an analog consumer (each takes
        the whole pixel stream, destination ``lo = hi = 0``; its patch buffer cuts its rows, contract §3),
        ``"digital"``, or ``"host"`` (the class scores).
    consumer_layers : tuple of str
        The matrix layers (or ``"output"``) the stream feeds.
    needs : tuple of str
        What the RTL of issue 18 must provide for this route beyond the MLP's (empty = nothing new): more
        destination entries than the chip's (``rtl.regmap.dest_entries``), a pool after the host, a pool after
        a residual add that does not go to the digital node (whose input join + pool,
        :class:`rtl.pool.InputJoin`, takes one add then one pool), a flatten in stream order.
    """

    value: str
    producer: str
    ops: tuple[str, ...]
    consumers: tuple[str, ...]
    consumer_layers: tuple[str, ...]
    needs: tuple[str, ...]


def _units(golden: CnnGolden) -> dict[str, tuple[str, list[str]]]:
    """out_name of every matrix stage (and the input) -> (producer label, the units that consume it as input)."""
    units: dict[str, tuple[str, list[str]]] = {golden.network.input_name: ("host", [])}
    for lg in golden.layers:
        if lg.kind == "analog":
            homes = sorted({t.tile for t in lg.tiles if t.row_block == lg.matrix.n_row_blocks - 1})  # type: ignore[union-attr]
            label = f"tile {homes[0]}" if len(homes) == 1 else "tiles " + ", ".join(map(str, homes))
            units[lg.out_name] = (label, [f"tile {t.tile}" for t in sorted(lg.tiles, key=lambda t: t.tile)])
        elif lg.kind == "digital":
            units[lg.out_name] = ("digital", ["digital"])
    return units


def dataflow_plan(golden: CnnGolden) -> list[Route]:
    """Which producer sends to which tiles, and what runs on the way (the plan the register compiler needs).

    Follows every producer's output (the host's images, each matrix layer's int8 results) through the
    non-matrix stages (pools, flatten, residual adds, ReLU) to the matrix layers that read it. Placement of
    the other stages follows docs/design.md §11.2 (issue 18's RTL): a pool runs on the producer's home tile
    (its pool unit), a residual add at the consumer's input (its join of two source-tagged streams), a flatten
    is the stream order (:attr:`LayerGolden.stream_order`). ``needs`` names what that RTL does not offer
    for the route (checked against the chip's ``rtl.regmap.dest_entries``: a tile's and the digital node's; a chain's
    upstream tiles use entry 0 for their partial sums, so a home tile has 2 entries for results).

    Returns
    -------
    list of Route, in producer (execution) order
    """
    from rtl.regmap import dest_entries

    units = _units(golden)
    stages = golden.prep.stages
    readers: dict[str, list] = {}
    for st in stages:
        for name in st.inputs:
            readers.setdefault(name, []).append(st)
    routes = []
    for value, (producer, _) in units.items():
        ops: list[str] = []
        consumers: list[str] = []
        layers: list[str] = []
        needs: list[str] = []
        frontier, seen = [value], set()
        while frontier:
            name = frontier.pop(0)
            if name in seen:
                continue
            seen.add(name)
            nxt = readers.get(name, [])
            if name == stages[-1].out_name:  # the network's output: the class scores to the host
                consumers.append("host")
                layers.append("output")
            for st in nxt:
                if st.kind == "matrix":
                    consumers.extend(units[st.out_name][1])
                    layers.append(st.layer.name)
                else:
                    op = f"{st.kind} {st.layer.name}"
                    if op not in ops:
                        ops.append(op)
                    frontier.append(st.out_name)
        pools = [o for o in ops if o.split()[0] in ("maxpool", "avgpool", "global_avgpool")]
        adds = [o for o in ops if o.split()[0] == "add"]
        if pools and producer == "host":
            needs.append(f"{', '.join(pools)} after the {producer}: the pool units are on the tiles' and the "
                         "digital node's outputs")
        # a join then a pool before the digital datapath: its input join + pool (rtl.pool.InputJoin)
        into_digital = consumers == ["digital"] and len(adds) <= 1 and len(pools) <= 1
        if adds and pools and ops.index(pools[-1]) > ops.index(adds[0]) and not into_digital:
            needs.append(f"{pools[-1]} after {adds[0]}: the pool units are on the tiles' outputs, the joins at "
                         "their inputs (and one join + pool at the digital node's input)")
        TILE_DESTS, DIGITAL_DESTS = dest_entries(golden.spec)  # noqa: N806
        limit = DIGITAL_DESTS if producer == "digital" else (10**9 if producer == "host" else TILE_DESTS)
        dests = len(dict.fromkeys(consumers))
        if dests > limit:
            needs.append(f"{dests} destinations > {limit} entries of the {producer} (multicast)")
        if any(lg.stream_order is not None for lg in golden.layers if lg.name in layers):
            needs.append("flatten in stream order: the consumer's weight rows permuted (LayerGolden.stream_order)")
        routes.append(Route(value, producer, tuple(ops), tuple(dict.fromkeys(consumers)),
                            tuple(dict.fromkeys(layers)), tuple(needs)))
    return routes


def plan_lines(golden: CnnGolden) -> list[str]:
    """:func:`dataflow_plan` as text, one route per line (``needs`` after ``!``)."""
    out = []
    for r in dataflow_plan(golden):
        via = f" via {', '.join(r.ops)}" if r.ops else ""
        cons = ", ".join(r.consumers) if len(r.consumers) <= 3 else f"{r.consumers[0]} .. {r.consumers[-1]} " \
            f"({len(r.consumers)} units)"
        line = f"{r.value} from {r.producer}{via} -> {cons} [{', '.join(r.consumer_layers)}]"
        out.append(line + "".join(f"\n    ! {n}" for n in r.needs))
    return out
