"""Component cost model: energy, time and area of each hardware event, from the chip description.

Every figure comes from one field of :class:`archmodel.spec.ChipSpec`; each
function states its equation and the fields it uses. Energies are in pJ, times
in clock cycles or ns, areas in µm². The sources of the figures are the chip
description's own ``source:`` notes (presets: ``archmodel/presets/*.yaml``).

Energy components (keys of every energy breakdown, in this order):
``dac``, ``array``, ``integrator``, ``adc``, ``tile_controller``, ``affine``,
``digital``, ``sram``, ``interconnect``, ``chip_link``, ``programming`` (PCM weight
reprogramming, ``--schedule reprogram`` only), ``leakage``.

Area components: ``array``, ``programming``, ``dac``, ``integrator``, ``adc``, ``affine``,
``tile_controller``, ``router``, ``sram``, ``digital``, ``io``, ``chip_link``.

CMOS energies and areas are given at ``energy_pj.reference_node_nm`` / ``reference_supply_v``
(``area_um2.reference_node_nm``) and rescaled to ``technology.node_nm`` / ``supply_v`` by the
Stillmaker & Baas 2017 equations (:func:`cmos_energy_factor`, :func:`cmos_area_factor`). Every
constant's source is a key of ``docs/references.md`` plus a locator (the presets' ``source:`` notes).
"""

from __future__ import annotations

import math

from archmodel.spec import ChipSpec

__all__ = [
    "AREA_COMPONENTS",
    "ENERGY_COMPONENTS",
    "adc_conversion_energy_pj",
    "adc_conversions",
    "analog_mvm_energy_pj",
    "area_scale",
    "cmos_area_factor",
    "cmos_energy_factor",
    "dac_steps",
    "device_read_energy_pj",
    "energy_scale",
    "mesh_serialization_ns",
    "tile_area_um2",
    "PPA_CONSTANT_KEYS",
    "chip_area_um2",
    "constant_sources",
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
    "IR_OP_PLACE",
    "ir_op_place",
    "affine_op_energy_pj",
    "array_program_time_ns",
    "array_program_energy_pj",
]

ENERGY_COMPONENTS: tuple[str, ...] = (
    "dac", "array", "integrator", "adc", "tile_controller", "affine",
    "digital", "sram", "interconnect", "chip_link", "programming", "leakage",
)
AREA_COMPONENTS: tuple[str, ...] = (
    "array", "programming", "dac", "integrator", "adc", "affine", "tile_controller",
    "router", "sram", "digital", "io", "chip_link",
)


# --------------------------------------------------------------------------------------
# technology scaling: Stillmaker & Baas 2017 (docs/references.md [stillmaker2017])
# --------------------------------------------------------------------------------------

#: Nodes (nm) of the Stillmaker & Baas 2017 fits, largest first.
_SB_NODES: tuple[float, ...] = (130.0, 90.0, 65.0, 45.0, 32.0, 20.0, 16.0, 14.0, 10.0, 7.0)
#: Energy per operation vs supply, ``a·V² + b·V + c`` per node (Stillmaker & Baas 2017, Table 5; the
#: corrigendum's worked example uses its 65 nm row 3.755, −4.398, 1.975).
_SB_ENERGY: tuple[tuple[float, float, float], ...] = (
    (7.171, -6.709, 2.904), (4.762, -4.781, 2.092), (3.755, -4.398, 1.975), (1.103, -0.362, 0.2767),
    (0.9559, -0.7823, 0.471), (0.373, -0.1582, 0.04104), (0.2958, -0.1241, 0.03024),
    (0.2363, -0.09675, 0.02239), (0.2068, -0.09311, 0.02375), (0.1776, -0.09097, 0.02447))
#: Area scaling factors from the 130 nm row (Stillmaker & Baas 2017, area scaling table): area(node)/area(130 nm).
_SB_AREA: tuple[float, ...] = (1.0, 0.44, 0.23, 0.16, 0.072, 0.033, 0.03, 0.027, 0.016, 0.0092)


def _sb_interp(node_nm: float, values: tuple[float, ...] | list[float]) -> float:
    from archmodel.spec import SpecError

    if not (_SB_NODES[-1] <= node_nm <= _SB_NODES[0]):
        raise SpecError(f"technology.node_nm={node_nm:g}: outside the 7..130 nm range of the Stillmaker & Baas "
                        "2017 scaling equations; expected a node in 7..130 nm")
    for i in range(len(_SB_NODES) - 1):
        hi, lo = _SB_NODES[i], _SB_NODES[i + 1]
        if lo <= node_nm <= hi:
            f = (node_nm - lo) / (hi - lo)
            return values[i + 1] + f * (values[i] - values[i + 1])
    return values[-1]  # pragma: no cover


def energy_scale(to_node_nm: float, to_v: float, from_node_nm: float, from_v: float) -> float:
    """Factor on a CMOS energy moved from (``from_node_nm``, ``from_v``) to (``to_node_nm``, ``to_v``).

    ``E(node, V) = a·V² + b·V + c`` with the node's coefficients (Stillmaker & Baas 2017,
    Table 5), linearly interpolated between the tabulated nodes; the factor is the ratio.

    Raises
    ------
    SpecError
        A node outside 7..130 nm.
    """
    def e(node: float, v: float) -> float:
        return sum(_sb_interp(node, [c[k] for c in _SB_ENERGY]) * v ** (2 - k) for k in range(3))
    return e(to_node_nm, to_v) / e(from_node_nm, from_v)


def area_scale(to_node_nm: float, from_node_nm: float) -> float:
    """Factor on a CMOS area moved between nodes (Stillmaker & Baas 2017 area scaling table, interpolated)."""
    return _sb_interp(to_node_nm, _SB_AREA) / _sb_interp(from_node_nm, _SB_AREA)


def cmos_energy_factor(spec: ChipSpec) -> float:
    """Factor on every CMOS energy of ``energy_pj`` (and leakage): from the section's reference node and
    supply to ``technology.node_nm`` / ``supply_v``; 1 when no reference is given."""
    e, t = spec.energy_pj, spec.technology
    ref_n = e.reference_node_nm if e.reference_node_nm is not None else t.node_nm
    ref_v = e.reference_supply_v if e.reference_supply_v is not None else t.supply_v
    if ref_n == t.node_nm and ref_v == t.supply_v:
        return 1.0
    return energy_scale(t.node_nm, t.supply_v, ref_n, ref_v)


def cmos_area_factor(spec: ChipSpec) -> float:
    """Factor on every CMOS area of ``area_um2``: from ``area_um2.reference_node_nm`` to ``technology.node_nm``."""
    ref = spec.area_um2.reference_node_nm
    if ref is None or ref == spec.technology.node_nm:
        return 1.0
    return area_scale(spec.technology.node_nm, ref)


# --------------------------------------------------------------------------------------
# component models
# --------------------------------------------------------------------------------------


def dac_steps(spec: ChipSpec) -> float:
    """Row-driver steps of one MVM per row: PWM ``input_duty · (2^(dac_bits−1) − 1)`` (the pulse lasts
    as many clock steps as the input's magnitude), bit-serial ``dac_bits`` (one pass per bit); times
    ``array.read_phases``."""
    a = spec.array
    steps = (spec.energy_pj.input_duty * (2 ** (a.dac_bits - 1) - 1)) if a.dac_scheme == "pwm" else a.dac_bits
    return steps * a.read_phases


def device_read_energy_pj(spec: ChipSpec) -> float:
    """Read energy of one device in one pass (pJ).

    ``energy_pj.array_per_device_pj`` when given, otherwise Joule heating of the cell
    ``V_read² · g · t`` with ``g = g_mean_fraction · g_max`` and ``t = input_duty ·
    integration_time`` (Ohm's law; the mean input sets the PWM pulse length, or the share of
    1-bits of a bit-serial pass). µS·V²·ns = 1e-15 J = 1e-3 pJ.
    """
    e, a = spec.energy_pj, spec.array
    if e.array_per_device_pj is not None:
        return e.array_per_device_pj
    g_us = e.g_mean_fraction * spec.device.g_max_us
    return a.v_read_v ** 2 * g_us * e.input_duty * a.integration_time_ns * 1e-3


def adc_conversion_energy_pj(spec: ChipSpec) -> float:
    """One ADC conversion (pJ): Walden ``FoM · 2^adc_bits`` (Walden 1999, Eq. 2, ENOB taken as the
    nominal bits) when ``adc_fom_fj_per_step`` is given, else ``adc_per_conversion_pj``; CMOS-scaled.
    ADC power at a conversion rate ``f`` is this times ``f`` (the FoM is per conversion)."""
    e = spec.energy_pj
    base = e.adc_fom_fj_per_step * 1e-3 * 2 ** spec.array.adc_bits if e.adc_fom_fj_per_step is not None \
        else e.adc_per_conversion_pj
    return base * cmos_energy_factor(spec)


def adc_conversions(spec: ChipSpec, cols_used: int) -> int:
    """Conversions of one MVM: ``cols_used · weight_slices`` per conversion pass; bit-serial converts
    after every pass (``dac_bits`` passes, Shafiee et al. 2016 Sec. 4), PWM once; a multi-phase read
    converts once (the CCO counts across phases, Le Gallo et al. 2023)."""
    a = spec.array
    return cols_used * a.weight_slices * (a.dac_bits if a.dac_scheme == "bit_serial" else 1)


def analog_mvm_energy_pj(spec: ChipSpec, rows_used: int, cols_used: int) -> dict[str, float]:
    """Energy of one MVM on one array, by component (pJ).

    With ``p = array.dac_passes · array.read_phases`` and ``s`` = :func:`cmos_energy_factor`:

    - ``dac = energy_pj.dac_per_row_step_pj · rows_used · dac_steps · s`` (PWM: the driver works for
      the pulse's duration; bit-serial: one event per pass), or, without a step energy, the per-event
      ``dac_per_row_pj · rows_used · p · s``;
    - ``array = device_read_energy_pj · rows_used · cols_used · devices_per_weight · p`` (physics, not
      scaled with the CMOS node);
    - ``integrator = integrator_per_col_pj · cols_used · weight_slices · p · s``;
    - ``adc = adc_conversion_energy_pj · adc_conversions`` (one conversion per used device column per
      conversion pass; a shared ADC converts its columns one after another, which costs time, not energy);
    - ``affine += shift_add_pj · adc_conversions · s`` (shift-and-add of sliced weights / bit-serial passes);
    - ``tile_controller = tile_controller_per_mvm_pj · s``.
    """
    e, a = spec.energy_pj, spec.array
    s = cmos_energy_factor(spec)
    p = a.dac_passes * a.read_phases
    if e.dac_per_row_step_pj is not None:
        dac = e.dac_per_row_step_pj * rows_used * dac_steps(spec) * s
    else:
        dac = e.dac_per_row_pj * rows_used * p * s
    conv = adc_conversions(spec, cols_used)
    return {
        "dac": dac,
        "array": device_read_energy_pj(spec) * rows_used * cols_used * a.devices_per_weight * p,
        "integrator": e.integrator_per_col_pj * cols_used * a.weight_slices * p * s,
        "adc": adc_conversion_energy_pj(spec) * conv,
        "tile_controller": e.tile_controller_per_mvm_pj * s,
        "affine": e.shift_add_pj * conv * s,
    }


def affine_energy_pj(spec: ChipSpec, outputs: int) -> float:
    """``energy_pj.affine_per_output_pj · outputs · s``: accumulate row blocks, scale, offset,
    ReLU and requantize one output element (batch-norm and bias are folded in)."""
    return spec.energy_pj.affine_per_output_pj * outputs * cmos_energy_factor(spec)


def digital_mac_energy_pj(spec: ChipSpec, macs: int) -> float:
    """``energy_pj.digital_mac_pj · macs · s`` (int8 × int8 → int32 digital datapath)."""
    return spec.energy_pj.digital_mac_pj * macs * cmos_energy_factor(spec)


def sram_energy_pj(spec: ChipSpec, read_bits: float, write_bits: float) -> float:
    """``(sram_read_pj_per_bit · read_bits + sram_write_pj_per_bit · write_bits) · s``."""
    e = spec.energy_pj
    return (e.sram_read_pj_per_bit * read_bits + e.sram_write_pj_per_bit * write_bits) * cmos_energy_factor(spec)


def hop_energy_pj(spec: ChipSpec, bit_hops: float) -> float:
    """``interconnect.energy_pj_per_bit_hop · bits · hops · s`` (mesh routers and links)."""
    return spec.interconnect.energy_pj_per_bit_hop * bit_hops * cmos_energy_factor(spec)


def chip_link_energy_pj(spec: ChipSpec, bits: float) -> float:
    """``chip_link.energy_pj_per_bit · bits`` for bits crossing a chip-to-chip link (a SerDes/PHY figure:
    not rescaled with the logic node)."""
    return spec.chip_link.energy_pj_per_bit * bits


def chip_link_time_ns(spec: ChipSpec, bits: float) -> float:
    """Serialization time ``bits / chip_link.bandwidth_gbps`` (ns; Gbit/s = bit/ns)."""
    return bits / spec.chip_link.bandwidth_gbps


def mesh_serialization_ns(spec: ChipSpec, bits: float) -> float:
    """Time to push ``bits`` through one mesh link: ``ceil(bits / interconnect.link_width_bits)`` flits,
    one per clock cycle (ns)."""
    flits = -(-int(math.ceil(bits)) // spec.interconnect.link_width_bits)
    return flits * 1000.0 / spec.technology.clock_mhz


def leakage_power_mw(spec: ChipSpec, chips: int) -> float:
    """``chips · (tile_grid.tiles · leakage.tile_leakage_mw + leakage.digital_leakage_mw) · s``.

    Every tile of every chip leaks (assumed: no power gating of unused tiles); ``s`` =
    :func:`cmos_energy_factor` (Stillmaker & Baas 2017 fit leakage with the same polynomial form).
    Leakage energy over a time ``t`` is ``P[mW] · t[ns]`` pJ.
    """
    lk = spec.leakage
    return chips * (spec.tile_grid.tiles * lk.tile_leakage_mw + lk.digital_leakage_mw) * cmos_energy_factor(spec)


def tile_area_um2(spec: ChipSpec) -> dict[str, float]:
    """Area of one tile by component (µm²), CMOS parts scaled by :func:`cmos_area_factor`.

    ``n = array.arrays_per_tile`` arrays:

    - ``array = n · rows · cols · devices_per_weight · array_per_device_um2`` (not scaled: device pitch)
    - ``programming = n · programming_per_array_um2``
    - ``dac = n · rows · dac_per_row_um2``
    - ``integrator = n · cols · weight_slices · integrator_per_col_um2``
    - ``adc = n · ceil(cols / cols_per_adc) · adc_um2``
    - ``affine``, ``tile_controller``, ``router``: one each
    - ``sram = buffers.sram_kib_per_tile · sram_um2_per_kib``
    """
    a, ar, b = spec.array, spec.area_um2, spec.buffers
    n, f = a.arrays_per_tile, cmos_area_factor(spec)
    return {
        "array": n * a.rows * a.cols * a.devices_per_weight * ar.array_per_device_um2,
        "programming": n * ar.programming_per_array_um2 * f,
        "dac": n * a.rows * ar.dac_per_row_um2 * f,
        "integrator": n * a.cols * a.weight_slices * ar.integrator_per_col_um2 * f,
        "adc": n * a.adc_count * ar.adc_um2 * f,
        "affine": ar.affine_unit_um2 * f,
        "tile_controller": ar.tile_controller_um2 * f,
        "router": ar.router_um2 * f,
        "sram": b.sram_kib_per_tile * ar.sram_um2_per_kib * f,
    }


def chip_area_um2(spec: ChipSpec, chips: int) -> dict[str, float]:
    """Area of ``chips`` identical chips by component (µm²).

    ``tile_grid.tiles ·`` :func:`tile_area_um2` per chip, plus ``sram += global_buffer_kib ·
    sram_um2_per_kib``, ``digital = digital.mac_lanes · digital_per_mac_lane_um2``, ``io = io_um2``
    and ``chip_link = chip_link_um2`` only when ``chips > 1`` (CMOS parts scaled by
    :func:`cmos_area_factor`; the link PHY is not).
    """
    ar, t, f = spec.area_um2, spec.tile_grid.tiles, cmos_area_factor(spec)
    per_chip = {k: v * t for k, v in tile_area_um2(spec).items()}
    per_chip["sram"] += spec.buffers.global_buffer_kib * ar.sram_um2_per_kib * f
    per_chip["digital"] = spec.digital.mac_lanes * ar.digital_per_mac_lane_um2 * f
    per_chip["io"] = ar.io_um2 * f
    per_chip["chip_link"] = ar.chip_link_um2 if chips > 1 else 0.0
    return {k: per_chip[k] * chips for k in AREA_COMPONENTS}


#: The chip-description keys the cost model reads (section, key or None = every key of the section).
PPA_CONSTANT_KEYS: tuple[tuple[str, str | None], ...] = (
    ("technology", None), ("array", "v_read_v"), ("array", "integration_time_ns"), ("array", "read_phases"),
    ("array", "weight_slices"), ("device", "g_max_us"), ("energy_pj", None), ("area_um2", None),
    ("leakage", None), ("interconnect", "link_width_bits"), ("interconnect", "hop_latency_ns"),
    ("interconnect", "energy_pj_per_bit_hop"), ("chip_link", None), ("buffers", None), ("programming", None),
)


def constant_sources(spec: ChipSpec) -> list[dict[str, object]]:
    """Every constant the cost model reads, with its value and source note (the reports' sources table).

    The first row says which array read-energy model is in force: the per-device figure
    ``energy_pj.array_per_device_pj`` or ``V_read² · g · t`` with the documented default conductance
    (``g_mean_fraction · g_max``) and duty (``input_duty``); a network's own conductances and inputs
    are not used.
    """
    e = spec.energy_pj
    if e.array_per_device_pj is None:
        note = (f"V_read^2 * g * t with default g = g_mean_fraction * g_max = {e.g_mean_fraction:g} * "
                f"{spec.device.g_max_us:g} uS and t = input_duty * integration_time = {e.input_duty:g} * "
                f"{spec.array.integration_time_ns:g} ns")
    else:
        note = "energy_pj.array_per_device_pj (per-device figure)"
    rows: list[dict[str, object]] = [{"constant": "array read energy model", "value": device_read_energy_pj(spec),
                                      "unit_note": "pJ per device per pass", "source": note}]
    for section, key in PPA_CONSTANT_KEYS:
        sec = getattr(spec, section)
        keys = [key] if key else [k for k in type(sec).model_fields if k != "sources"]
        for k in keys:
            rows.append({"constant": f"{section}.{k}", "value": getattr(sec, k), "unit_note": "",
                         "source": sec.sources.get(k, "(no source given)")})
    return rows


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
    "view": ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout", "GraphInput"),
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
    move           ``N``                          Transpose, Slice, Concat, Pad
    gather         ``rows = N / window``          Gather (``window`` = elements of one
                                                  gathered row, e.g. embedding_dim)
    resize         ``4·N``                        Resize (bilinear: 4 taps)
    view           ``0`` (no bytes moved)         Reshape, Flatten, Squeeze, Unsqueeze
    ============== ============================== =====================================

    Elements read = ``N_in + const_elems`` (constant operands are read from the
    digital unit's SRAM), written = ``N``; 0 and 0 for a view. A Gather reads its
    ``rows`` indices and ``rows`` table rows of ``window`` elements (``rows + N``),
    whether the table is a constant (an embedding) or an activation (a class
    token picked from the sequence), never the whole table.
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
    if kind == "Gather":
        # one table-row read of ``window`` elements per index: rows = N / window lane ops (one row
        # access each), read the indices and the gathered rows, write the output
        rows = -(-n // max(window, 1))
        return rows, rows + n, n
    reads = n_in + const_elems
    return ops, reads, n


def digital_op_energy_pj(spec: ChipSpec, ops: int, read_elems: int, write_elems: int) -> dict[str, float]:
    """Energy of one digital-unit operator (pJ), by component:

    - ``digital = energy_pj.digital_mac_pj · ops`` (one lane op costs one int8 MAC, assumed);
    - ``sram = sram_energy_pj(spec, read_elems · b, write_elems · b)`` with ``b =
      periphery.activation_bits`` (operands read from and results written to the global buffer).
    """
    b = spec.periphery.activation_bits
    return {"digital": digital_mac_energy_pj(spec, ops),
            "sram": sram_energy_pj(spec, read_elems * b, write_elems * b)}


# ---- IR operators other than matrix layers and ``digital`` (docs/design.md section 13.1) --------

#: IR op (or ``activation:<kind>``) -> (unit, ONNX op type whose DIGITAL_OP_TABLE formula counts its ops).
#: ``affine``: the affine unit of the tiles (one requantizer pass per output element: folded batch norm and
#: per-channel scale as its multiply-add, ReLU/ReLU6/LeakyReLU as its clamp, residual add and concat as
#: ``accuracy.requantize_sum``, docs/design.md section 10); ``digital``: the global digital unit (functions
#: the requantizer cannot evaluate, pools and reductions); ``None``: a view (no computation, no cost).
IR_OP_PLACE: dict[str, tuple[str, str] | None] = {
    "batchnorm": ("affine", "Mul"),
    "scale": ("affine", "Mul"),
    "add": ("affine", "Add"),
    "concat": ("affine", "Concat"),
    "activation:relu": ("affine", "Relu"),
    "activation:relu6": ("affine", "Clip"),
    "activation:leaky_relu": ("affine", "LeakyRelu"),
    "activation:identity": None,
    "activation:sigmoid": ("digital", "Sigmoid"),
    "activation:tanh": ("digital", "Tanh"),
    "activation:silu": ("digital", "Sigmoid"),
    "activation:gelu": ("digital", "Gelu"),
    "activation:hardsigmoid": ("digital", "HardSigmoid"),
    "activation:hardswish": ("digital", "HardSwish"),
    "activation:softmax": ("digital", "Softmax"),
    "maxpool": ("digital", "MaxPool"),
    "avgpool": ("digital", "AveragePool"),
    "global_avgpool": ("digital", "GlobalAveragePool"),
    "flatten": None,
    "reshape": None,
}


def ir_op_place(op: str, kind: str | None = None) -> tuple[str, str] | None:
    """(unit, ONNX op type) of an IR operator that is neither a matrix layer nor ``digital``.

    ``op`` is the IR op, ``kind`` the activation kind (``attrs["kind"]``) of an ``activation``.
    Returns None for a view (flatten, reshape, identity). The op count is
    :func:`digital_op_counts` of the returned op type (one table), the unit from
    :data:`IR_OP_PLACE` (docs/design.md section 13.1).

    Raises
    ------
    KeyError
        An IR op this table does not place (a new IR op must be added here).
    """
    return IR_OP_PLACE[f"activation:{kind}" if op == "activation" else op]


def affine_op_energy_pj(spec: ChipSpec, ops: int) -> dict[str, float]:
    """Energy of an operator run by the tiles' affine unit (pJ): ``{"affine": energy_pj.affine_op_pj · ops · s}``.

    One op is one element-wise operation (a ReLU clamp, a folded scale, the requantization of one
    addend of a residual add or concat; e.g. fig11: one ``horowitz2014`` Fig. 1.1.9 32-bit add scaled
    to 14 nm). Operands stream through the affine unit: no SRAM traffic.
    """
    return {"affine": spec.energy_pj.affine_op_pj * ops * cmos_energy_factor(spec)}


# ---- PCM weight (re)programming (``aimc map --schedule reprogram``) ----------------------------

def array_program_time_ns(spec: ChipSpec, rows_used: int, cols_used: int) -> float:
    """Time to program one array's ``rows_used`` × ``cols_used`` block, ns.

    ``ceil(rows_used / programming.rows_parallel) · programming.iterations · (programming.pulse_ns +
    t_verify)``, ``t_verify`` = one read of the row (:func:`archmodel.timing.mvm_cycles` with 1 row,
    ``cols_used`` columns). Arrays have their own programming circuits (``programming_per_array_um2``)
    and are programmed in parallel. Constants and their sources: the chip description's
    ``programming`` section (pulse: ``ambrogio2018`` Ext. Data Fig. 7).
    """
    from archmodel import timing

    verify_ns = timing.cycles_to_ns(spec, timing.mvm_cycles(spec, 1, cols_used))
    pr = spec.programming
    rows = -(-rows_used // pr.rows_parallel)
    return rows * pr.iterations * (pr.pulse_ns + verify_ns)


def array_program_energy_pj(spec: ChipSpec, rows_used: int, cols_used: int) -> float:
    """Energy to program one array's ``rows_used`` × ``cols_used`` block, pJ.

    ``programming.iterations · (devices · programming.pulse_energy_pj + rows_used · E_verify)`` with
    ``devices = rows_used · cols_used · array.devices_per_weight`` and ``E_verify`` the energy of one
    1-row read (:func:`analog_mvm_energy_pj`, all components). The pulse energy is a device figure
    (not CMOS-scaled).
    """
    devices = rows_used * cols_used * spec.array.devices_per_weight
    verify = sum(analog_mvm_energy_pj(spec, 1, cols_used).values())
    pr = spec.programming
    return pr.iterations * (devices * pr.pulse_energy_pj + rows_used * verify)
