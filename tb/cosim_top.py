r"""Co-simulation tops: one analog tile (tile controller + affine unit) and the digital datapath.

:class:`CosimTile` wires :class:`rtl.tile_controller.TileController` to
:class:`rtl.affine.AffineUnit` exactly as a tile of the co-processor does
(``col_out`` -> ``col_in``) and exposes what a tile-level testbench drives:

- the ``act`` stream (int8 row groups in), the array port (``dac`` out,
  ``adc`` in, served by :mod:`tb.bridge`) and the ``out`` stream (int8
  results, one column per beat);
- the configuration ports of both blocks, unchanged (names as in the blocks,
  the affine unit's with an ``aff_`` prefix where they would clash);
- the status flags of both blocks.

The mesh chain of the affine unit (``psum_in`` / ``psum_out``) is not used at
tile level: ``chain_in`` / ``chain_out`` are tied to 0 and ``psum_in`` is
idle; the top-level co-simulation covers the chain.

:func:`write_verilog` converts a component with
``verilog.convert(..., emit_src=False)`` (reproducible: same chip description,
same bytes) and writes it whole or not at all, with the same header as
:func:`rtl.export.export_verilog`.

Time-zero race (simulation only)
--------------------------------
Yosys' Verilog back end gives every module a dummy register
``\$auto$verilog_backend.cc:...:dump_module$N`` read by every ``always @*``
block, initialised in its declaration, so that the blocks run once at time 0.
Icarus Verilog 11 applies declaration initialisers before any process waits,
so no event reaches the ``always @*`` blocks and a combinational output whose
inputs never change (e.g. ``busy`` of a controller idle since time 0) stays
``X`` (amaranth-lang/amaranth issues 594 and 1629). :func:`icarus_time0_fix`
moves that one initialisation into an ``initial`` block after ``#0`` (outside
Verilator, which needs no fix and would warn about the delay), which makes it
an event every ``always @*`` block sees. No logic of the design changes.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from archmodel.spec import ChipSpec
from rtl.affine import AffineUnit, result_layout
from rtl.digital import DigitalDatapath
from rtl.params import DigitalParams, TileParams
from rtl.tile_controller import TileController, act_beat_layout, adc_beat_layout, dac_beat_layout, index_shape

__all__ = ["CosimTile", "digital_verilog", "icarus_time0_fix", "tile_verilog", "write_verilog"]

_DUMP_REG = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def icarus_time0_fix(text: str) -> str:
    """Make Yosys' time-0 trigger register an event in Icarus Verilog (module docstring)."""
    def repl(m: re.Match) -> str:
        ind, name = m.group(1), m.group(2)
        return (f"{ind}reg {name};\n{ind}initial begin\n`ifndef VERILATOR\n{ind}  #0;\n`endif\n"
                f"{ind}  {name} = 1'h0;\n{ind}end")
    return _DUMP_REG.sub(repl, text)


class CosimTile(wiring.Component):
    """One analog tile's digital periphery: tile controller -> affine unit.

    Parameters
    ----------
    params : TileParams
        From :meth:`rtl.params.TileParams.from_spec`.

    Members
    -------
    act : In(stream.Signature(act_beat_layout(params)))
        Input activations (see :class:`~rtl.tile_controller.TileController`).
    dac : Out(stream.Signature(dac_beat_layout(params)))
        Array port, DAC codes.
    adc : In(stream.Signature(adc_beat_layout(params)))
        Array port, ADC codes.
    out : Out(stream.Signature(result_layout))
        int8 results, one column per beat, columns in order, ``last`` on the final
        column of each input vector.
    k_rows, n_cols, n_row_blocks, n_col_blocks, mode, start, stop : In
        Tile-controller configuration and control (same meaning as there).
    coef_addr, coef_scale, coef_offset, coef_we, shift, relu, aff_clear : In
        Affine-unit coefficients and control (``aff_clear`` = its ``clear``).
    busy, done, err_config, err_act_last, err_adc_last, vector_count : Out
        Tile-controller status.
    aff_busy, err_chain : Out
        Affine-unit status.

    Latency and throughput: those of the two blocks in series (one MVM per
    ``archmodel.timing.mvm_cycles`` while the affine unit keeps up; see
    :mod:`rtl.affine` for when it does not).

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`TileParams`.
    """

    def __init__(self, params: TileParams):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, got {params!r}")
        self.params = p = params
        cnt_w = p.arrays_per_tile.bit_length()
        super().__init__({
            "act": In(stream.Signature(act_beat_layout(p))),
            "dac": Out(stream.Signature(dac_beat_layout(p))),
            "adc": In(stream.Signature(adc_beat_layout(p))),
            "out": Out(stream.Signature(result_layout(index_shape(p.max_cols)))),
            "k_rows": In(p.max_rows.bit_length()),
            "n_cols": In(p.max_cols.bit_length()),
            "n_row_blocks": In(cnt_w),
            "n_col_blocks": In(cnt_w),
            "mode": In(1),
            "start": In(1),
            "stop": In(1),
            "coef_addr": In(index_shape(p.max_cols)),
            "coef_scale": In(p.scale_bits),
            "coef_offset": In(p.offset_bits),
            "coef_we": In(1),
            "shift": In(range(p.max_shift + 1)),
            "relu": In(1),
            "aff_clear": In(1),
            "busy": Out(1),
            "done": Out(1),
            "err_config": Out(1),
            "err_act_last": Out(1),
            "err_adc_last": Out(1),
            "vector_count": Out(16),
            "aff_busy": Out(1),
            "err_chain": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.ctl = ctl = TileController(self.params)
        m.submodules.aff = aff = AffineUnit(self.params)
        wiring.connect(m, wiring.flipped(self.act), ctl.act)
        wiring.connect(m, ctl.dac, wiring.flipped(self.dac))
        wiring.connect(m, wiring.flipped(self.adc), ctl.adc)
        wiring.connect(m, ctl.col_out, aff.col_in)
        wiring.connect(m, aff.out, wiring.flipped(self.out))
        m.d.comb += [
            ctl.k_rows.eq(self.k_rows), ctl.n_cols.eq(self.n_cols),
            ctl.n_row_blocks.eq(self.n_row_blocks), ctl.n_col_blocks.eq(self.n_col_blocks),
            ctl.mode.eq(self.mode), ctl.start.eq(self.start), ctl.stop.eq(self.stop),
            self.busy.eq(ctl.busy), self.done.eq(ctl.done), self.err_config.eq(ctl.err_config),
            self.err_act_last.eq(ctl.err_act_last), self.err_adc_last.eq(ctl.err_adc_last),
            self.vector_count.eq(ctl.vector_count),
            aff.coef_addr.eq(self.coef_addr), aff.coef_scale.eq(self.coef_scale),
            aff.coef_offset.eq(self.coef_offset), aff.coef_we.eq(self.coef_we),
            aff.shift.eq(self.shift), aff.relu.eq(self.relu), aff.clear.eq(self.aff_clear),
            aff.chain_in.eq(0), aff.chain_out.eq(0),
            aff.psum_in.valid.eq(0), aff.psum_out.ready.eq(0),
            self.aff_busy.eq(aff.busy), self.err_chain.eq(aff.err_chain),
        ]
        return m


def write_verilog(component: object, name: str, out_dir: str | os.PathLike, spec: ChipSpec) -> Path:
    """Convert ``component`` to ``<out_dir>/<name>.v`` (``emit_src=False``); returns the path.

    The file is rewritten only when its text changes (so simulator builds that
    depend on it are not invalidated for nothing), through a temporary name.
    """
    text = verilog.convert(component, name=name, emit_src=False, strip_internal_attrs=True)
    header = (f"// {name}: generated by aimc (tb.cosim_top) from chip description '{spec.name}' "
              f"(hash {spec.spec_hash}); do not edit.\n`timescale 1ns/1ps\n")
    text = header + icarus_time0_fix(text)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.v"
    if path.exists() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(text.encode()).digest():
        return path
    tmp = out_dir / f".{name}.v.tmp"
    tmp.write_text(text)
    tmp.replace(path)
    return path


def tile_verilog(spec: ChipSpec, out_dir: str | os.PathLike, name: str = "cosim_tile") -> Path:
    """Verilog of :class:`CosimTile` for ``spec``."""
    return write_verilog(CosimTile(TileParams.from_spec(spec)), name, out_dir, spec)


def digital_verilog(spec: ChipSpec, out_dir: str | os.PathLike, name: str = "cosim_digital") -> Path:
    """Verilog of :class:`rtl.digital.DigitalDatapath` for ``spec``."""
    return write_verilog(DigitalDatapath(DigitalParams.from_spec(spec)), name, out_dir, spec)
