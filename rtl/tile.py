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
  ``aff_``; ``busy`` would clash with the tile controller's);
- with ``patch`` (a :class:`rtl.params.PatchParams`; the co-processor's tiles, issue 18): a
  :class:`rtl.patchbuf.PatchBuffer` between ``act`` and the tile controller, its configuration ports
  prefixed ``lb_`` plus ``lb_en`` (0 = bypass: ``act`` goes to the tile controller unchanged, the path
  of a linear layer; 1 = ``act`` carries the producer's pixel vectors and the tile controller gets this
  tile's beats of every output pixel's patch). The buffer is cleared by the tile controller's ``start``.

:meth:`Tile.block_ports` gives those ports under the blocks' own names (how
the register map binds them, :mod:`rtl.regmap`).

Latency and throughput: those of the two blocks in series (one MVM per
``archmodel.timing.mvm_cycles`` while the affine unit keeps up; see
:mod:`rtl.affine` for when it does not): per vector the slower of the two,
``archmodel.timing.tile_vector_cycles``.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Mux
from amaranth.lib import wiring

from rtl.affine import AffineUnit
from rtl.params import PatchParams, TileParams
from rtl.patchbuf import PatchBuffer
from rtl.tile_controller import TileController

__all__ = ["AFFINE_PREFIX", "PATCH_PREFIX", "Tile"]

#: Prefix of the patch buffer's configuration ports on the tile (``lb_in_h``, ..., ``lb_en``).
PATCH_PREFIX = "lb_"

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
    patch : PatchParams, optional
        With it, a patch buffer in front of the tile controller (module docstring); its ``lanes`` must be
        ``params.rows_per_dac_beat``.

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`TileParams` (or ``patch`` not a :class:`PatchParams`).
    ValueError
        If ``patch.lanes != params.rows_per_dac_beat``.
    """

    def __init__(self, params: TileParams, patch: PatchParams | None = None):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, got {params!r}")
        if patch is not None and not isinstance(patch, PatchParams):
            raise TypeError(f"patch must be a PatchParams, got {patch!r}")
        if patch is not None and patch.lanes != params.rows_per_dac_beat:
            raise ValueError(f"patch.lanes = {patch.lanes} != rows_per_dac_beat = {params.rows_per_dac_beat}")
        self.params = params
        self.tc, self.affine = TileController(params), AffineUnit(params)
        self.patch = patch
        self.pb = PatchBuffer(patch) if patch is not None else None
        self._names: dict[str, dict[str, str]] = {"tc": {}, "affine": {}, "lb": {}}
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
        if self.pb is not None:
            lb_ports = {"en": wiring.In(1)}
            lb_ports.update({name: mem for name, mem in self.pb.signature.members.items()
                             if mem.is_port and name != "clear"})
            for name, member in lb_ports.items():
                members[PATCH_PREFIX + name] = member
                self._names["lb"][name] = PATCH_PREFIX + name
        super().__init__(members)

    def block_ports(self, block: str) -> SimpleNamespace:
        """The tile's configuration/status ports of ``block`` (``"tc"``, ``"affine"`` or ``"lb"``) under the block's
        names (``"lb"``: the patch buffer's configuration and ``en``)."""
        return SimpleNamespace(**{name: getattr(self, port) for name, port in self._names[block].items()})

    def elaborate(self, platform):
        m = Module()
        m.submodules.tc = tc = self.tc
        m.submodules.affine = au = self.affine
        if self.pb is None:
            wiring.connect(m, wiring.flipped(self.act), tc.act)
        else:
            m.submodules.pb = pb = self.pb
            en = self.lb_en
            m.d.comb += [pb.i.payload.eq(self.act.payload), tc.act.payload.eq(Mux(en, pb.o.payload.as_value(),
                                                                                   self.act.payload.as_value())),
                         pb.i.valid.eq(en & self.act.valid), tc.act.valid.eq(Mux(en, pb.o.valid, self.act.valid)),
                         self.act.ready.eq(Mux(en, pb.i.ready, tc.act.ready)), pb.o.ready.eq(en & tc.act.ready),
                         pb.clear.eq(self.start)]
            for name, port in self._names["lb"].items():
                if name != "en":
                    m.d.comb += getattr(pb, name).eq(getattr(self, port))
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
