"""rtl.ecp5: the MULT18X18D instance with its simulation model equals the Amaranth registers, cycle by cycle.

Both variants of :func:`rtl.ecp5.registered_multiplier` are built side by side in one module, exported
to Verilog and run in Icarus with the simulation model, on 400 cycles of random signed operands and a
random clock enable; both outputs are checked against a cycle model written here in Python (two
enabled clocks from operands to product), so a wrong latency, sign extension or enable in either
fails."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from rtl.ecp5 import SIM_MODEL, registered_multiplier, write_sim_model

A_BITS, B_BITS, WIDTH = 9, 11, 20


class _Both(wiring.Component):
    def __init__(self):
        super().__init__({"a": In(signed(A_BITS)), "b": In(signed(B_BITS)), "ce": In(1),
                          "p_beh": Out(signed(WIDTH)), "p_ecp5": Out(signed(WIDTH))})

    def elaborate(self, platform):
        m = Module()
        pb = registered_multiplier(m, "beh", self.a, self.b, ce=self.ce, width=WIDTH, primitive="behavioral")
        pe = registered_multiplier(m, "dsp", self.a, self.b, ce=self.ce, width=WIDTH, primitive="ecp5")
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


def test_mult18x18d_model_equals_behavioral_registers(tmp_path):
    iverilog = shutil.which("iverilog")
    if iverilog is None:
        if os.environ.get("CI") == "true":
            pytest.fail("iverilog is missing (CI installs it)")
        pytest.skip("iverilog not installed")
    rng = np.random.default_rng(19)
    n = 400
    a = rng.integers(-(1 << (A_BITS - 1)), 1 << (A_BITS - 1), n)
    b = rng.integers(-(1 << (B_BITS - 1)), 1 << (B_BITS - 1), n)
    a[:4], b[:4] = -(1 << (A_BITS - 1)), -(1 << (B_BITS - 1))  # the most negative operands: sign extension
    ce = (rng.random(n) < 0.7).astype(int)
    dut = _Both()
    (tmp_path / "both.v").write_text(verilog.convert(dut, name="both", emit_src=False))
    model = write_sim_model(tmp_path)
    assert model.read_text() == SIM_MODEL
    stim = "\n".join(f"a = {int(x)}; b = {int(y)}; ce = {int(e)}; #5 clk = 1; #5 clk = 0; "
                     f'$display("%0d %0d", p_beh, p_ecp5);' for x, y, e in zip(a, b, ce, strict=True))
    (tmp_path / "tb.v").write_text(f"""`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 0, ce = 0;
  reg signed [{A_BITS - 1}:0] a = 0;
  reg signed [{B_BITS - 1}:0] b = 0;
  wire signed [{WIDTH - 1}:0] p_beh, p_ecp5;
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
