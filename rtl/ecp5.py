"""ECP5 hard multipliers with their internal registers, and the simulation model that goes with them.

Why (issue 19; figures of the sixth stop, when an emulator had one multiplier per column): the FPGA
prototype's 128 emulator multipliers filled the DSP rows of an LFE5U-85F, up to
60 columns from the emulator's fabric logic. A multiplier between fabric registers pays two such routes
and the multiplier in one cycle (15.2 ns routed, the whole prototype's critical path at 65.8 MHz). The
MULT18X18D's own input and output registers cut that path in three: fabric register -> route -> input
register; multiplier (inside the DSP); output register -> route -> fabric register. Yosys' ``synth_ecp5``
infers MULT18X18D from ``*`` but never packs registers into it, so the prototype instantiates the
primitive (:func:`registered_multiplier` with ``primitive="ecp5"``).

The primitive is a Lattice library cell: vendor tools and Yosys know it, simulators do not. Every
simulation of Verilog that instantiates it adds :data:`SIM_MODEL_FILE` (written by
:func:`write_sim_model`), a behavioural model of the subset used here, written from the Lattice ECP5
sysDSP usage guide (FPGA-TN-02205, "MULT18X18D": the A, B input registers, the pipeline register and the
output register each add one clock of latency, clocked by ``CLK0`` and enabled by ``CE0`` when selected;
``SIGNEDA`` / ``SIGNEDB`` make the 18-bit operands two's complement; ``P`` is the 36-bit product). It is
not Lattice's model; a Lattice simulation library can replace it.

``primitive="behavioral"`` gives the same registers in Amaranth (Amaranth's simulator cannot run an
``Instance``): same latency, same values (``tests/test_ecp5.py`` runs both against each other in Icarus).
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Const, Instance, Signal, signed

__all__ = ["PRIMITIVES", "SIM_MODEL_FILE", "SIM_MODEL", "registered_multiplier", "write_sim_model"]

#: ``primitive`` values of :func:`registered_multiplier`.
PRIMITIVES = ("behavioral", "ecp5")
#: File name of the simulation model written by :func:`write_sim_model`.
SIM_MODEL_FILE = "ecp5_mult18x18d_sim.v"
#: Latency of :func:`registered_multiplier` in clock enables (input register, output register).
LATENCY = 2


def _sim_model() -> str:
    a = ", ".join(f"A{i}" for i in range(18))
    b = ", ".join(f"B{i}" for i in range(18))
    p = ", ".join(f"P{i}" for i in range(36))
    cat = lambda x, n: "{" + ", ".join(f"{x}{i}" for i in reversed(range(n))) + "}"  # noqa: E731
    return f"""// Simulation model of the Lattice ECP5 MULT18X18D: the subset aimc instantiates (rtl/ecp5.py). Not
// Lattice's model; written from the ECP5 sysDSP usage guide (FPGA-TN-02205): the A/B input registers, the
// pipeline register and the output register each add one clock (CLK0, enabled by CE0, synchronous reset
// RST0) when their REG_*_CLK parameter is "CLK0", and are bypassed when it is "NONE"; SIGNEDA/SIGNEDB make
// the 18-bit operand two's complement; P is the 36-bit product. Other clocks, enables, C, cascades and
// shift chains are not modelled (a parameter naming them stops the simulation at time 0).
/* verilator lint_off UNUSEDPARAM */
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off DECLFILENAME */
module MULT18X18D #(
    parameter REG_INPUTA_CLK = "NONE", parameter REG_INPUTA_CE = "CE0", parameter REG_INPUTA_RST = "RST0",
    parameter REG_INPUTB_CLK = "NONE", parameter REG_INPUTB_CE = "CE0", parameter REG_INPUTB_RST = "RST0",
    parameter REG_INPUTC_CLK = "NONE", parameter REG_INPUTC_CE = "CE0", parameter REG_INPUTC_RST = "RST0",
    parameter REG_PIPELINE_CLK = "NONE", parameter REG_PIPELINE_CE = "CE0", parameter REG_PIPELINE_RST = "RST0",
    parameter REG_OUTPUT_CLK = "NONE", parameter REG_OUTPUT_CE = "CE0", parameter REG_OUTPUT_RST = "RST0",
    parameter CLK0_DIV = "ENABLED", parameter CLK1_DIV = "ENABLED", parameter CLK2_DIV = "ENABLED",
    parameter CLK3_DIV = "ENABLED", parameter HIGHSPEED_CLK = "NONE", parameter GSR = "ENABLED",
    parameter CAS_MATCH_REG = "FALSE", parameter SOURCEB_MODE = "B_SHIFT", parameter MULT_BYPASS = "DISABLED",
    parameter RESETMODE = "SYNC"
) (
    input {a},
    input {b},
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, RST0,
    output {p}
);
    wire [17:0] a = {cat("A", 18)};
    wire [17:0] b = {cat("B", 18)};
    reg [17:0] a_r = 18'd0, b_r = 18'd0;
    reg [35:0] m_r = 36'd0, p_r = 36'd0;
    wire [17:0] a_in = (REG_INPUTA_CLK == "CLK0") ? a_r : a;
    wire [17:0] b_in = (REG_INPUTB_CLK == "CLK0") ? b_r : b;
    wire signed [18:0] a_x = {{SIGNEDA & a_in[17], a_in}};
    wire signed [18:0] b_x = {{SIGNEDB & b_in[17], b_in}};
    wire signed [37:0] prod = a_x * b_x;
    wire [35:0] m_out = (REG_PIPELINE_CLK == "CLK0") ? m_r : prod[35:0];
    always @(posedge CLK0) begin
        if (RST0) begin
            a_r <= 18'd0; b_r <= 18'd0; m_r <= 36'd0; p_r <= 36'd0;
        end else if (CE0) begin
            a_r <= a; b_r <= b; m_r <= prod[35:0]; p_r <= m_out;
        end
    end
    assign {cat("P", 36)} = (REG_OUTPUT_CLK == "CLK0") ? p_r : m_out;
    initial begin
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0")
            || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
            || (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0")
            || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")
            || REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_PIPELINE_CE != "CE0" || REG_OUTPUT_CE != "CE0"
            || RESETMODE != "SYNC" || SOURCEB_MODE != "B_SHIFT" || MULT_BYPASS != "DISABLED") begin
            $display("MULT18X18D %m: a configuration outside the modelled subset (rtl/ecp5.py)");
            $finish;
        end
    end
endmodule
"""


#: The behavioural model's Verilog text (see the module docstring).
SIM_MODEL = _sim_model()


def write_sim_model(out_dir) -> Path:
    """Write :data:`SIM_MODEL` to ``<out_dir>/``:data:`SIM_MODEL_FILE` (whole or not at all; unchanged text is
    not rewritten, so simulator builds that depend on it stay valid); returns the path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SIM_MODEL_FILE
    if path.exists() and path.read_text() == SIM_MODEL:
        return path
    tmp = out_dir / f".{SIM_MODEL_FILE}.tmp"
    tmp.write_text(SIM_MODEL)
    tmp.replace(path)
    return path


def registered_multiplier(m, name: str, a, b, *, ce, width: int, primitive: str = "behavioral") -> Signal:
    """``a * b`` behind an input register (on ``a`` and ``b``) and an output register, both enabled by ``ce``.

    Parameters
    ----------
    m : amaranth.hdl.Module
        Where the registers (``primitive="behavioral"``) or the MULT18X18D (``"ecp5"``) go, in its ``sync``
        domain.
    name : str
        Prefix of the signals' (or the instance's) names.
    a, b : Value
        Signed operands of at most 18 bits.
    ce : Value
        Clock enable (1 bit) of both registers.
    width : int
        Width of the signed product returned (its low ``width`` bits).
    primitive : {"behavioral", "ecp5"}
        Amaranth registers around ``*`` (any simulator, any FPGA), or an ECP5 MULT18X18D with its input
        and output registers (``REG_INPUTA_CLK = REG_INPUTB_CLK = REG_OUTPUT_CLK = "CLK0"``, enables ``CE0``).

    Returns
    -------
    Signal(signed(width))
        The product of the operands presented two enabled clocks earlier (:data:`LATENCY`).

    Raises
    ------
    ValueError
        ``primitive`` is not one of :data:`PRIMITIVES`, an operand is wider than 18 bits or unsigned, or
        ``width`` is outside 1..36.
    """
    if primitive not in PRIMITIVES:
        raise ValueError(f"primitive must be one of {PRIMITIVES}, got {primitive!r}")
    if len(a) > 18 or len(b) > 18:
        raise ValueError(f"MULT18X18D operands are at most 18 bits, got {len(a)} and {len(b)}")
    if not (a.shape().signed and b.shape().signed) or not 1 <= width <= 36:
        raise ValueError(f"operands must be signed and width in 1..36 (the two variants agree only then), got "
                         f"{a.shape()}, {b.shape()}, width {width}")
    p = Signal(signed(width), name=f"{name}_p", reset_less=True)
    if primitive == "behavioral":
        a_r = Signal(signed(len(a)), name=f"{name}_a", reset_less=True)
        b_r = Signal(signed(len(b)), name=f"{name}_b", reset_less=True)
        with m.If(ce):
            m.d.sync += [a_r.eq(a), b_r.eq(b), p.eq(a_r * b_r)]
        return p
    a18, b18 = Signal(signed(18), name=f"{name}_a18"), Signal(signed(18), name=f"{name}_b18")
    m.d.comb += [a18.eq(a), b18.eq(b)]   # sign-extended to the primitive's 18 bits
    ports = {f"i_A{i}": a18[i] for i in range(18)} | {f"i_B{i}": b18[i] for i in range(18)}
    p36 = Signal(36, name=f"{name}_p36")  # every output connected (lint: no missing pin)
    m.d.comb += p.eq(p36[:width])
    ports |= {f"o_P{i}": p36[i] for i in range(36)}
    m.submodules[name] = Instance(
        "MULT18X18D",
        p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
        p_REG_INPUTA_CE="CE0", p_REG_INPUTB_CE="CE0", p_REG_OUTPUT_CE="CE0",
        p_REG_PIPELINE_CLK="NONE", p_RESETMODE="SYNC", p_GSR="DISABLED",
        i_CLK0=ClockSignal("sync"), i_CE0=ce, i_RST0=Const(0, 1),
        i_SIGNEDA=Const(1, 1), i_SIGNEDB=Const(1, 1), i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
        **ports)
    return p
