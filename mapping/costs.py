"""Component cost model: energy, time and area of each hardware event, from the chip description.

Every figure comes from one field of :class:`archmodel.spec.ChipSpec`; each
function states its equation and the fields it uses. Energies are in pJ, times
in clock cycles or ns, areas in µm². The sources of the figures are the chip
description's own ``source:`` notes (presets: ``archmodel/presets/*.yaml``).

Energy components (keys of every energy breakdown, in this order):
``dac``, ``array``, ``integrator``, ``adc``, ``tile_controller``, ``affine``,
``digital``, ``sram``, ``interconnect``, ``chip_link``, ``leakage``.

Area components: ``array``, ``dac``, ``integrator``, ``adc``, ``affine``,
``tile_controller``, ``router``, ``sram``, ``digital``, ``chip_link``.
"""

from __future__ import annotations

from archmodel.spec import ChipSpec

__all__ = [
    "AREA_COMPONENTS",
    "ENERGY_COMPONENTS",
    "analog_mvm_energy_pj",
    "chip_area_um2",
    "digital_mac_energy_pj",
    "hop_energy_pj",
    "chip_link_energy_pj",
    "chip_link_time_ns",
    "leakage_power_mw",
    "sram_energy_pj",
    "affine_energy_pj",
    "DIGITAL_OP_TABLE",
    "digital_op_counts",
    "digital_op_energy_pj",
]

ENERGY_COMPONENTS: tuple[str, ...] = (
    "dac", "array", "integrator", "adc", "tile_controller", "affine",
    "digital", "sram", "interconnect", "chip_link", "leakage",
)
AREA_COMPONENTS: tuple[str, ...] = (
    "array", "dac", "integrator", "adc", "affine", "tile_controller",
    "router", "sram", "digital", "chip_link",
)


def analog_mvm_energy_pj(spec: ChipSpec, rows_used: int, cols_used: int) -> dict[str, float]:
    """Energy of one MVM on one array, by component (pJ).

    With ``p = array.dac_passes`` (1 for PWM, ``dac_bits`` for bit-serial):

    - ``dac = energy_pj.dac_per_row_pj · rows_used · p`` (a PWM pulse is one
      driver event; bit-serial drives every row once per pass);
    - ``array = energy_pj.array_per_device_pj · rows_used · cols_used ·
      array.devices_per_weight · p`` (every device of the used block is read
      in every pass);
    - ``integrator = energy_pj.integrator_per_col_pj · cols_used · p``;
    - ``adc = energy_pj.adc_per_conversion_pj · cols_used`` (one conversion per
      used column per MVM; a shared ADC converts its ``array.cols_per_adc``
      columns one after another, which costs time, not extra energy);
    - ``tile_controller = energy_pj.tile_controller_per_mvm_pj``.
    """
    e, a = spec.energy_pj, spec.array
    p = a.dac_passes
    return {
        "dac": e.dac_per_row_pj * rows_used * p,
        "array": e.array_per_device_pj * rows_used * cols_used * a.devices_per_weight * p,
        "integrator": e.integrator_per_col_pj * cols_used * p,
        "adc": e.adc_per_conversion_pj * cols_used,
        "tile_controller": e.tile_controller_per_mvm_pj,
    }


def affine_energy_pj(spec: ChipSpec, outputs: int) -> float:
    """``energy_pj.affine_per_output_pj · outputs``: accumulate row blocks, scale, offset,
    ReLU and requantize one output element (batch-norm and bias are folded in)."""
    return spec.energy_pj.affine_per_output_pj * outputs


def digital_mac_energy_pj(spec: ChipSpec, macs: int) -> float:
    """``energy_pj.digital_mac_pj · macs`` (int8 × int8 → int32 digital datapath)."""
    return spec.energy_pj.digital_mac_pj * macs


def sram_energy_pj(spec: ChipSpec, read_bits: float, write_bits: float) -> float:
    """``energy_pj.sram_read_pj_per_bit · read_bits + energy_pj.sram_write_pj_per_bit · write_bits``."""
    return spec.energy_pj.sram_read_pj_per_bit * read_bits + spec.energy_pj.sram_write_pj_per_bit * write_bits


def hop_energy_pj(spec: ChipSpec, bit_hops: float) -> float:
    """``interconnect.energy_pj_per_bit_hop · bits · hops`` (mesh routers and links)."""
    return spec.interconnect.energy_pj_per_bit_hop * bit_hops


def chip_link_energy_pj(spec: ChipSpec, bits: float) -> float:
    """``chip_link.energy_pj_per_bit · bits`` for bits crossing a chip-to-chip link."""
    return spec.chip_link.energy_pj_per_bit * bits


def chip_link_time_ns(spec: ChipSpec, bits: float) -> float:
    """Serialization time ``bits / chip_link.bandwidth_gbps`` (ns; Gbit/s = bit/ns)."""
    return bits / spec.chip_link.bandwidth_gbps


def leakage_power_mw(spec: ChipSpec, chips: int) -> float:
    """``chips · (tile_grid.tiles · leakage.tile_leakage_mw + leakage.digital_leakage_mw)``.

    Every tile of every chip leaks (assumed: no power gating of unused tiles).
    Leakage energy over a time ``t`` is ``P[mW] · t[ns]`` pJ.
    """
    lk = spec.leakage
    return chips * (spec.tile_grid.tiles * lk.tile_leakage_mw + lk.digital_leakage_mw)


def chip_area_um2(spec: ChipSpec, chips: int) -> dict[str, float]:
    """Area of ``chips`` identical chips by component (µm²).

    Per tile (``tile_grid.tiles`` tiles per chip), ``n = array.arrays_per_tile`` arrays:

    - ``array = n · array.rows · array.cols · array.devices_per_weight ·
      area_um2.array_per_device_um2``
    - ``dac = n · array.rows · area_um2.dac_per_row_um2``
    - ``integrator = n · array.cols · area_um2.integrator_per_col_um2``
    - ``adc = n · ceil(array.cols / array.cols_per_adc) · area_um2.adc_um2``
    - ``affine = area_um2.affine_unit_um2``, ``tile_controller = area_um2.tile_controller_um2``,
      ``router = area_um2.router_um2``
    - ``sram = buffers.sram_kib_per_tile · area_um2.sram_um2_per_kib``

    Per chip: ``digital = digital.mac_lanes · area_um2.digital_per_mac_lane_um2``,
    ``sram += buffers.global_buffer_kib · area_um2.sram_um2_per_kib``, and
    ``chip_link = area_um2.chip_link_um2`` only when ``chips > 1``.
    """
    a, ar, b = spec.array, spec.area_um2, spec.buffers
    n, t = a.arrays_per_tile, spec.tile_grid.tiles
    per_chip = {
        "array": t * n * a.rows * a.cols * a.devices_per_weight * ar.array_per_device_um2,
        "dac": t * n * a.rows * ar.dac_per_row_um2,
        "integrator": t * n * a.cols * ar.integrator_per_col_um2,
        "adc": t * n * a.adc_count * ar.adc_um2,
        "affine": t * ar.affine_unit_um2,
        "tile_controller": t * ar.tile_controller_um2,
        "router": t * ar.router_um2,
        "sram": (t * b.sram_kib_per_tile + b.global_buffer_kib) * ar.sram_um2_per_kib,
        "digital": spec.digital.mac_lanes * ar.digital_per_mac_lane_um2,
        "chip_link": ar.chip_link_um2 if chips > 1 else 0.0,
    }
    return {k: v * chips for k, v in per_chip.items()}


# --------------------------------------------------------------------------------------
# digital-unit operators: one cost table
# --------------------------------------------------------------------------------------

# class -> (ops per unit, what the unit is); the classes and their per-element costs are
# assumptions of this model (docs/design.md, "Digital unit cost table"): one lane op is one
# int8 MAC, compare, add or copy in one lane of ``digital.mac_lanes`` per cycle; a
# transcendental (exp, erf, tanh, sqrt, pow) is a 4-op piecewise polynomial.
_CLASSES: dict[str, tuple[str, ...]] = {
    "elementwise": ("Add", "Sub", "Mul", "Div", "Max", "Min", "Mean", "Sum", "Where", "Equal",
                    "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Neg",
                    "Abs", "Relu", "LeakyRelu", "PRelu", "Clip", "Floor", "Ceil", "Round", "Sign",
                    "Reciprocal", "Cast", "ThresholdedRelu"),
    "transcendental": ("Sqrt", "Pow", "Exp", "Log", "Erf", "Tanh", "Sigmoid", "Softplus",
                       "Softsign", "Sin", "Cos", "Elu", "Selu", "Celu"),
    "hardsigmoid": ("HardSigmoid",),
    "hardswish": ("HardSwish",),
    "gelu": ("Gelu", "Mish"),
    "softmax": ("Softmax", "LogSoftmax"),
    "norm": ("LayerNormalization", "InstanceNormalization", "GroupNormalization",
             "MeanVarianceNormalization"),
    "batchnorm": ("BatchNormalization",),
    "lrn": ("LRN",),
    "reduce": ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceL1", "ReduceL2",
               "ReduceSumSquare", "ReduceProd", "ReduceLogSumExp", "GlobalAveragePool",
               "GlobalMaxPool", "GlobalLpPool", "ArgMax", "ArgMin", "TopK", "CumSum"),
    "window": ("MaxPool", "AveragePool", "LpPool"),
    "matmul": ("MatMul", "Gemm", "Einsum", "MatMulInteger"),
    "move": ("Transpose", "Slice", "Gather", "GatherElements", "GatherND", "Split", "Pad",
             "Concat", "Expand", "Tile", "DepthToSpace", "SpaceToDepth", "ScatterND",
             "ScatterElements", "ReverseSequence"),
    "resize": ("Resize", "Upsample"),
    "view": ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"),
}
_OPS_PER_OUTPUT = {"elementwise": 1, "transcendental": 4, "hardsigmoid": 2, "hardswish": 3,
                   "gelu": 8, "softmax": 8, "norm": 8, "batchnorm": 2, "move": 1, "resize": 4,
                   "view": 0}
DIGITAL_OP_TABLE: dict[str, str] = {op: cls for cls, ops in _CLASSES.items() for op in ops}
"""ONNX op type -> cost class; any other op type counts as ``elementwise`` (assumed)."""


def digital_op_counts(kind: str, in_elems: list[int], out_elems: int, *, window: int = 1,
                      inner: int = 0, const_elems: int = 0) -> tuple[int, int, int]:
    """(lane ops, elements read, elements written) of one digital-unit operator.

    ``in_elems`` are the element counts of its activation inputs, ``out_elems`` of
    its output (batch excluded). With ``N = out_elems``, ``N_in = sum(in_elems)``:

    ============== ============================== =====================================
    class          lane ops                       examples
    ============== ============================== =====================================
    elementwise    ``N``                          Add, Mul, Div, Sub, Clip, Relu
    transcendental ``4·N``                        Exp, Erf, Tanh, Sigmoid, Sqrt, Pow
    hardsigmoid    ``2·N``; hardswish ``3·N``     HardSigmoid, HardSwish
    gelu           ``8·N``                        Gelu (tanh form: 3 mul, 2 add, tanh)
    softmax        ``8·N``                        max, sub, exp (4), sum, div
    norm           ``8·N``                        LayerNorm, InstanceNorm (mean, var, scale)
    batchnorm      ``2·N``                        an unfoldable BatchNormalization
    lrn            ``(size + 6)·N``               ``size`` MACs, pow (4), mul, div
    reduce         ``N_in``                       ReduceMean, GlobalAveragePool
    window         ``window·N``                   MaxPool, AveragePool (kernel kh·kw)
    matmul         ``inner·N`` (MACs)             MatMul of two activations (attention)
    move           ``N``                          Transpose, Slice, Gather, Concat, Pad
    resize         ``4·N``                        Resize (bilinear: 4 taps)
    view           ``0`` (no bytes moved)         Reshape, Flatten, Squeeze, Unsqueeze
    ============== ============================== =====================================

    Elements read = ``N_in + const_elems`` (constant operands, e.g. an embedding
    table row per output for Gather, are read from the digital unit's SRAM; the
    whole table is charged as an upper bound), written = ``N``; 0 and 0 for a view.
    Sources: assumed counts (docs/design.md, "Digital unit cost table").
    """
    cls = DIGITAL_OP_TABLE.get(kind, "elementwise")
    n = int(out_elems)
    n_in = int(sum(in_elems))
    if cls == "view":
        return 0, 0, 0
    if cls == "lrn":
        ops = (window + 6) * n
    elif cls == "reduce":
        ops = n_in
    elif cls == "window":
        ops = window * n
    elif cls == "matmul":
        ops = max(inner, 1) * n
    else:
        ops = _OPS_PER_OUTPUT[cls] * n
    if kind == "Gather" and const_elems:
        reads = n_in + n  # indices, then one table entry per output element
    else:
        reads = n_in + const_elems
    return ops, reads, n


def digital_op_energy_pj(spec: ChipSpec, ops: int, read_elems: int, write_elems: int) -> dict[str, float]:
    """Energy of one digital-unit operator (pJ), by component:

    - ``digital = energy_pj.digital_mac_pj · ops`` (one lane op costs one int8 MAC, assumed);
    - ``sram = sram_energy_pj(spec, read_elems · b, write_elems · b)`` with ``b =
      periphery.activation_bits`` (operands read from and results written to the global buffer).
    """
    b = spec.periphery.activation_bits
    return {"digital": spec.energy_pj.digital_mac_pj * ops,
            "sram": sram_energy_pj(spec, read_elems * b, write_elems * b)}
