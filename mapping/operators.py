"""Cost of the IR operators outside the matrix layers (docs/design.md section 13.1): on the global
digital unit or the tiles' affine units, ops and bytes from the one table
:func:`mapping.costs.digital_op_counts`, unit from :func:`mapping.costs.ir_op_place`."""

from __future__ import annotations

import math

from archmodel import timing
from archmodel.network.ir import Layer, Network
from archmodel.spec import ChipSpec
from mapping import costs
from mapping.result import DigitalOpMapping

__all__ = ["affine_pass_cycles", "merged_into_affine", "op_cost"]


def affine_pass_cycles(spec: ChipSpec, shape: tuple[int, ...]) -> int:
    """Affine-unit cycles to pass a tensor once: per pixel (token), its channels in column blocks of
    ``array.cols``, ``timing.affine_cycles`` each. A ``(C, H, W)`` map has ``H·W`` pixels of ``C``
    channels; any other shape ``(..., F)`` has ``prod(...)`` vectors of ``F``."""
    if len(shape) == 3:
        ch, pixels = shape[0], shape[1] * shape[2]
    else:
        ch, pixels = shape[-1], math.prod(shape[:-1])
    full, rest = divmod(ch, spec.array.cols)
    per = full * timing.affine_cycles(spec, spec.array.cols) + (timing.affine_cycles(spec, rest) if rest else 0)
    return pixels * per


def merged_into_affine(net: Network, layer: Layer) -> bool:
    """True for a ``batchnorm`` or ``scale`` whose input is a matrix layer (through other batch-norms/scales):
    its per-channel multiply-add is merged into that layer's affine coefficients (section 4.6), so it adds
    no operation to the requantizer pass the layer already pays (``affine_per_output_pj``); ``aimc map
    --fold-batchnorm`` gives the same PPA. Any other batch-norm or scale is an affine-unit operator."""
    while layer.op in ("batchnorm", "scale"):
        layer = net[layer.inputs[0]]
    return layer.is_matrix_layer


def op_cost(spec: ChipSpec, layer: Layer) -> DigitalOpMapping | None:
    """Cost of one IR operator that is not a matrix layer (docs/design.md section 13.1); None for a view.

    Ops, reads and writes: :func:`mapping.costs.digital_op_counts` of the operator's ONNX op type (an IR
    ``digital`` layer's own, or :func:`mapping.costs.ir_op_place` of an IR op). On the digital unit:
    ``timing.digital_layer_cycles`` and :func:`mapping.costs.digital_op_energy_pj`. On the affine unit
    (one requantizer pass per output element): :func:`affine_pass_cycles` of the output and
    :func:`mapping.costs.affine_op_energy_pj`.
    """
    a_ = layer.attrs
    if layer.op == "digital":
        unit, kind = "digital", a_["kind"]
        window, inner, const = a_["window"], a_["inner"], a_["const_elems"]
    else:
        place = costs.ir_op_place(layer.op, a_.get("kind"))
        if place is None:
            return None
        unit, kind = place
        window, inner, const = 1, 0, 0
        if layer.op in ("maxpool", "avgpool"):
            window = math.prod(a_["kernel"])
    out_shape = tuple(layer.output_shape or ())
    out_n = math.prod(out_shape)
    in_n = [math.prod(s_) for s_ in layer.input_shapes]
    ops, rd, wr = costs.digital_op_counts(kind, in_n, out_n, window=window, inner=inner, const_elems=const)
    if unit == "digital":
        if ops == 0 and rd == 0 and layer.op != "digital":
            return None
        cyc = timing.digital_layer_cycles(spec, ops)
        energy = costs.digital_op_energy_pj(spec, ops, rd, wr)
    else:
        cyc = affine_pass_cycles(spec, out_shape)
        energy = costs.affine_op_energy_pj(spec, ops)
        rd = wr = 0  # streamed through the requantizer: no SRAM access
    is_mm = costs.DIGITAL_OP_TABLE.get(kind) == "matmul"
    return _row(layer, kind, unit, ops, ops if is_mm else 0, rd, wr, const, cyc,
                timing.cycles_to_ns(spec, cyc), energy)


def _row(layer: Layer, kind: str, unit: str, ops: int, macs: int, rd: int, wr: int, const: int, cyc: int,
         t_ns: float, energy: dict[str, float]) -> DigitalOpMapping:
    shape = ",".join("x".join(str(v) for v in s_) for s_ in layer.input_shapes)
    return DigitalOpMapping(
        name=layer.name, kind=kind, shape=f"{shape}->{'x'.join(str(v) for v in layer.output_shape or ())}",
        ops=ops, macs=macs, read_elems=rd, write_elems=wr, sram_params=const, cycles=cyc, latency_ns=t_ns,
        energy_pj=energy, unit=unit, ir_op=layer.op)
