"""One analog tile's digital periphery (one job): the tile controller feeding the affine unit.

:class:`Tile` is what every tile of the co-processor (:class:`rtl.top.Coprocessor`)
holds and what the tile-level co-simulation (:mod:`tb.test_tile_cosim`) runs:
a :class:`~rtl.tile_controller.TileController` whose ``col_out`` feeds an
:class:`~rtl.affine.AffineUnit`'s ``col_in``. Its ports:

- streams: ``act`` (int8 row groups in), the array port (``dac`` out, ``adc``
  in; the analog macro is outside), ``out`` (int8 results,
  ``periphery.affine_lanes`` columns per beat, :func:`rtl.affine.result_layout`),
  and the mesh partial-sum chain ``psum_in`` / ``psum_out`` (as many columns per beat);
- the configuration and status ports of both blocks, unchanged: every
  non-stream port of the tile controller under its own name, every one of the
  affine unit under its own name, except ``clear`` and ``busy`` (prefix
  ``aff_``; ``busy`` would clash with the tile controller's).

:meth:`Tile.block_ports` gives those ports under the blocks' own names (how
the register map binds them, :mod:`rtl.regmap`).

Latency and throughput: those of the two blocks in series (one MVM per
``archmodel.timing.mvm_cycles`` while the affine unit keeps up; see
:mod:`rtl.affine` for when it does not): per vector the slower of the two,
``archmodel.timing.tile_vector_cycles``.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module
from amaranth.lib import wiring

from rtl.affine import AffineUnit
from rtl.params import TileParams
from rtl.tile_controller import TileController

__all__ = ["AFFINE_PREFIX", "Tile"]

#: Prefix of the affine unit's ``clear`` and ``busy`` ports (``busy`` would clash with the tile controller's).
AFFINE_PREFIX = "aff_"
_AFFINE_RENAMED = ("clear", "busy")

_STREAMS = {"tc": ("act", "dac", "adc"), "affine": ("psum_in", "psum_out", "out")}


class Tile(wiring.Component):
    """Tile controller -> affine unit (module docstring for the ports).

    Parameters
    ----------
    params : TileParams
        From :meth:`rtl.params.TileParams.from_spec`.

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`TileParams`.
    """

    def __init__(self, params: TileParams):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, got {params!r}")
        self.params = params
        self.tc, self.affine = TileController(params), AffineUnit(params)
        self._names: dict[str, dict[str, str]] = {"tc": {}, "affine": {}}
        members: dict[str, wiring.Member] = {}
        for block, comp in (("tc", self.tc), ("affine", self.affine)):
            for name, member in comp.signature.members.items():
                if name in _STREAMS[block]:
                    members[name] = member
                elif member.is_port:
                    port = AFFINE_PREFIX + name if block == "affine" and name in _AFFINE_RENAMED else name
                    if port in members:
                        raise ValueError(f"Tile: port {port!r} of the {block} clashes")
                    members[port] = member
                    self._names[block][name] = port
        super().__init__(members)

    def block_ports(self, block: str) -> SimpleNamespace:
        """The tile's configuration/status ports of ``block`` (``"tc"`` or ``"affine"``) under the block's names."""
        return SimpleNamespace(**{name: getattr(self, port) for name, port in self._names[block].items()})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tc = tc = self.tc
        m.submodules.affine = au = self.affine
        wiring.connect(m, wiring.flipped(self.act), tc.act)
        wiring.connect(m, tc.dac, wiring.flipped(self.dac))
        wiring.connect(m, wiring.flipped(self.adc), tc.adc)
        wiring.connect(m, tc.col_out, au.col_in)
        wiring.connect(m, wiring.flipped(self.psum_in), au.psum_in)
        wiring.connect(m, au.psum_out, wiring.flipped(self.psum_out))
        wiring.connect(m, au.out, wiring.flipped(self.out))
        for block, comp in (("tc", tc), ("affine", au)):
            for name, port in self._names[block].items():
                inner, outer = getattr(comp, name), getattr(self, port)
                if comp.signature.members[name].flow == wiring.In:
                    m.d.comb += inner.eq(outer)
                else:
                    m.d.comb += outer.eq(inner)
        return m
