"""CSRBank (AXI4-Lite slave) in Amaranth simulation.

A hand-written bank of four registers (RW with a reset value and a signed
field, RO inputs with a W1C flag, W1P strobes, a constant ID) is driven
through its AXI4-Lite port: reset values, write/read back, byte strobes, AW
and W in either order, W1C set/clear, W1P one-cycle pulse, OKAY for mapped
and SLVERR for unmapped addresses. Also the register map generated for the
tiny preset (rtl.regmap): reset values of every register read back over AXI.
"""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from rtl.csr import (
    READ_GROUP,
    READ_LATENCY,
    RESP_OKAY,
    RESP_SLVERR,
    WRITE_LATENCY,
    Access,
    CSRBank,
    Field,
    Register,
)

REGS = [
    Register("blk.cfg", 0x00, (Field("a", 8, 0, Access.RW, reset=0x5A, meaning="a"),
                               Field("b", 12, 8, Access.RW, signed=True, meaning="b"))),
    Register("blk.status", 0x04, (Field("level", 16, 0, Access.RO), Field("err", 1, 16, Access.W1C))),
    Register("blk.cmd", 0x08, (Field("go", 1, 0, Access.W1P), Field("clr", 1, 1, Access.W1P))),
    Register("blk.id", 0x10, (Field("magic", 16, 0, Access.RO, value=0xA1C0),)),
]


async def axi_write(ctx, bus, addr, data, strb=0xF, order="together"):
    """One AXI4-Lite write; returns BRESP. order: together, aw_first, w_first."""
    async def aw():
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.awvalid, 1)
        await ctx.tick().until(bus.awready)
        ctx.set(bus.awvalid, 0)

    async def w():
        ctx.set(bus.wdata, data)
        ctx.set(bus.wstrb, strb)
        ctx.set(bus.wvalid, 1)
        await ctx.tick().until(bus.wready)
        ctx.set(bus.wvalid, 0)

    if order == "together":
        ctx.set(bus.awaddr, addr)
        ctx.set(bus.wdata, data)
        ctx.set(bus.wstrb, strb)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        await ctx.tick().until(bus.awready & bus.wready)
        ctx.set(bus.awvalid, 0)
        ctx.set(bus.wvalid, 0)
    elif order == "aw_first":
        await aw()
        await ctx.tick().repeat(2)
        await w()
    else:
        await w()
        await ctx.tick().repeat(3)
        await aw()
    ctx.set(bus.bready, 1)
    (resp,) = await ctx.tick().sample(bus.bresp).until(bus.bvalid)
    ctx.set(bus.bready, 0)
    return resp


async def axi_read(ctx, bus, addr):
    """One AXI4-Lite read; returns (RDATA, RRESP)."""
    ctx.set(bus.araddr, addr)
    ctx.set(bus.arvalid, 1)
    await ctx.tick().until(bus.arready)
    ctx.set(bus.arvalid, 0)
    ctx.set(bus.rready, 1)
    data, resp = await ctx.tick().sample(bus.rdata, bus.rresp).until(bus.rvalid)
    ctx.set(bus.rready, 0)
    return data, resp


def _sim(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_csr_read_write_unmapped():
    dut = CSRBank(REGS, addr_bits=8)
    bus = dut.bus
    cfg, status, cmd = dut.ports_of("blk.cfg"), dut.ports_of("blk.status"), dut.ports_of("blk.cmd")
    checks = []

    async def bench(ctx):
        # reset values
        checks.append((await axi_read(ctx, bus, 0x00)) == (0x5A, RESP_OKAY))
        checks.append((await axi_read(ctx, bus, 0x10)) == (0xA1C0, RESP_OKAY))
        # write / read back, all three channel orders
        for k, order in enumerate(("together", "aw_first", "w_first")):
            value = 0x000ABC00 | (0x11 * (k + 1))
            assert await axi_write(ctx, bus, 0x00, value, order=order) == RESP_OKAY
            checks.append((await axi_read(ctx, bus, 0x00)) == (value & 0xFFFFF, RESP_OKAY))
            checks.append(ctx.get(cfg.a) == (value & 0xFF) and ctx.get(cfg.b) == 0xABC)
        # byte strobes: only byte 0 changes
        assert await axi_write(ctx, bus, 0x00, 0xFFFFFF77, strb=0b0001) == RESP_OKAY
        checks.append((await axi_read(ctx, bus, 0x00))[0] == 0xABC77)
        # RO input, W1C flag set by the design and cleared by writing 1
        ctx.set(status.level, 0x1234)
        ctx.set(status.err_set, 1)
        await ctx.tick()
        ctx.set(status.err_set, 0)
        checks.append((await axi_read(ctx, bus, 0x04)) == (0x11234, RESP_OKAY))
        assert await axi_write(ctx, bus, 0x04, 0x0) == RESP_OKAY  # writing 0 keeps it
        checks.append((await axi_read(ctx, bus, 0x04))[0] == 0x11234)
        assert await axi_write(ctx, bus, 0x04, 0x10000) == RESP_OKAY  # writing 1 clears it
        checks.append((await axi_read(ctx, bus, 0x04))[0] == 0x01234)
        # W1P: a single-cycle pulse, reads as 0
        pulses = []

        async def write_cmd():
            return await axi_write(ctx, bus, 0x08, 0b11)
        ctx.set(bus.awaddr, 0x08)
        ctx.set(bus.wdata, 0b01)
        ctx.set(bus.wstrb, 0xF)
        ctx.set(bus.awvalid, 1)
        ctx.set(bus.wvalid, 1)
        ctx.set(bus.bready, 1)
        for _ in range(6):
            _, _, go, clr = await ctx.tick().sample(cmd.go, cmd.clr)
            ctx.set(bus.awvalid, 0)
            ctx.set(bus.wvalid, 0)
            pulses.append((go, clr))
        ctx.set(bus.bready, 0)
        checks.append([p for p in pulses if p != (0, 0)] == [(1, 0)])
        checks.append((await axi_read(ctx, bus, 0x08)) == (0, RESP_OKAY))
        # unmapped addresses: SLVERR, no effect
        assert await axi_write(ctx, bus, 0x0C, 0xFFFFFFFF) == RESP_SLVERR
        checks.append((await axi_read(ctx, bus, 0x0C)) == (0, RESP_SLVERR))
        checks.append((await axi_read(ctx, bus, 0xFC)) == (0, RESP_SLVERR))
        checks.append((await axi_read(ctx, bus, 0x00))[0] == 0xABC77)
        del write_cmd

    _sim(dut, bench)
    assert len(checks) == 17
    assert all(checks), checks


def test_csr_write_latency():
    """Write pipeline (issue 19): AW and W together in cycle 0 -> bvalid in cycle 2 (2 cycles from the later of
    AW/W), the RW field and the W1P pulse on the ports WRITE_LATENCY = 1 cycle after bvalid (cycle 3), the pulse
    one cycle long."""
    dut = CSRBank(REGS, addr_bits=8)
    bus, cfg, cmd = dut.bus, dut.ports_of("blk.cfg"), dut.ports_of("blk.cmd")
    trace = []

    async def bench(ctx):
        ctx.set(bus.bready, 1)
        for addr, data in ((0x00, 0x77), (0x08, 0b01)):
            ctx.set(bus.awaddr, addr)
            ctx.set(bus.wdata, data)
            ctx.set(bus.wstrb, 0xF)
            ctx.set(bus.awvalid, 1)
            ctx.set(bus.wvalid, 1)
            rows = []
            for cycle in range(6):
                _, _, bv, a, go = await ctx.tick().sample(bus.bvalid, cfg.a, cmd.go)
                ctx.set(bus.awvalid, 0)
                ctx.set(bus.wvalid, 0)
                rows.append((cycle, bv, a, go))
            trace.append(rows)

    _sim(dut, bench)
    cfg_rows, cmd_rows = trace
    b_cycle = next(c for c, bv, _, _ in cfg_rows if bv)
    a_cycle = next(c for c, _, a, _ in cfg_rows if a == 0x77)
    assert (b_cycle, a_cycle - b_cycle) == (2, WRITE_LATENCY) and WRITE_LATENCY == 1, cfg_rows
    b_cycle = next(c for c, bv, _, _ in cmd_rows if bv)
    assert [c - b_cycle for c, _, _, go in cmd_rows if go] == [WRITE_LATENCY], cmd_rows


def test_csr_read_pipeline_many_registers():
    """30 registers at scattered addresses (4 read groups of READ_GROUP = 8): every register reads back the value
    written (its own), in the groups' every position, an unmapped address between them is SLVERR with data 0, and
    rvalid rises exactly READ_LATENCY = 3 cycles after the AR handshake (a read every 4 cycles)."""
    addrs = [4 * (3 * k + (k % 2)) for k in range(30)]          # not contiguous: gaps inside the groups
    regs = [Register(f"r.x{k}", a, (Field("v", 32, 0, Access.RW, reset=k),)) for k, a in enumerate(addrs)]
    dut = CSRBank(regs, addr_bits=10)
    bus = dut.bus
    checks, lat = [], []

    async def bench(ctx):
        for k, a in enumerate(addrs):
            assert await axi_write(ctx, bus, a, (0x5A5A0000 ^ (a << 8)) + k) == RESP_OKAY
        for k, a in enumerate(addrs):
            checks.append((await axi_read(ctx, bus, a)) == ((0x5A5A0000 ^ (a << 8)) + k, RESP_OKAY))
        checks.append((await axi_read(ctx, bus, 4 * 2)) == (0, RESP_SLVERR))     # between x0 (0) and x1 (16)
        checks.append((await axi_read(ctx, bus, 1020)) == (0, RESP_SLVERR))
        # latency: AR handshake in cycle t -> rvalid in cycle t + 3
        ctx.set(bus.araddr, addrs[9])
        ctx.set(bus.arvalid, 1)
        ctx.set(bus.rready, 1)
        t, t_ar = 0, None
        while True:
            _, _, arr, rv = await ctx.tick().sample(bus.arready, bus.rvalid)
            t += 1
            if t_ar is None and arr:
                t_ar = t
                ctx.set(bus.arvalid, 0)
            elif rv:
                lat.append(t - t_ar)
                break

    _sim(dut, bench)
    assert len(checks) == 32 and all(checks), checks
    assert lat == [READ_LATENCY] and READ_LATENCY == 3 and READ_GROUP == 8


def test_csr_field_encode_and_checks():
    f = REGS[0].fields[1]
    assert f.encode(-1) == 0xFFF << 8
    assert f.decode(0xFFF << 8) == -1
    assert f.bits == "19:8"
    with pytest.raises(ValueError, match="out of range"):
        f.encode(2048)
    with pytest.raises(ValueError, match="overlaps"):
        Register("x", 0, (Field("a", 8, 0, Access.RW), Field("b", 8, 4, Access.RW)))
    with pytest.raises(ValueError, match="share address"):
        CSRBank([REGS[0], Register("y", 0x00, ())])
    with pytest.raises(ValueError, match="multiple of 4"):
        Register("z", 0x02, ())


def test_coprocessor_config_and_host_loopback():
    """Top level (tiny): chip.id / geometry over AXI4-Lite, a RW register round trip,
    an unmapped address, and a host packet to the host itself through the I/O router."""
    from archmodel.spec import load_spec
    from rtl.top import Coprocessor

    spec = load_spec("tiny")
    dut = Coprocessor(spec)
    rm = dut.regmap
    got = {}

    async def bench(ctx):
        bus = dut.s_axil
        got["id"] = await axi_read(ctx, bus, rm.address_of("chip.id"))
        got["geometry"] = await axi_read(ctx, bus, rm.address_of("chip.geometry"))
        addr, word = rm.write("tile3.ni.dest", x=2, y=1)
        got["wr"] = await axi_write(ctx, bus, addr, word)
        got["dest"] = await axi_read(ctx, bus, addr)
        got["bad"] = await axi_read(ctx, bus, 0x0FFC)
        # host -> host: tdest = {chan, y, x} = {1, 0, cols}
        sin, sout = dut.s_axis, dut.m_axis
        ctx.set(sout.tready, 1)
        ctx.set(sin.tdata, 0xC0FFEE)
        ctx.set(sin.tdest, (1 << (dut.x_bits + dut.y_bits)) | spec.tile_grid.cols)
        ctx.set(sin.tlast, 1)
        ctx.set(sin.tvalid, 1)
        await ctx.tick().until(sin.tready)
        ctx.set(sin.tvalid, 0)
        for cycle in range(1, 10):
            if ctx.get(sout.tvalid):
                got["loop"] = (cycle, ctx.get(sout.tdata), ctx.get(sout.tdest), ctx.get(sout.tlast))
                break
            await ctx.tick()

    _sim(dut, bench)
    assert got["id"] == (0x0708A1C0, RESP_OKAY)  # units 0b111 (tiny has every dataflow unit), map v8, magic
    assert rm.decode("chip.geometry", got["geometry"][0]) == {"grid_rows": 2, "grid_cols": 2, "link_bits": 32}
    assert got["wr"] == RESP_OKAY and got["dest"] == (rm.encode("tile3.ni.dest", x=2, y=1), RESP_OKAY)
    assert got["bad"] == (0, RESP_SLVERR)
    from archmodel import timing
    hop = timing.hop_cycles(spec)
    # one hop through the I/O router (tiny: 20 ns = 2 cycles at 100 MHz), then the m_axis register slice
    # (issue 19): 2 + 1 = 3 cycles
    assert timing.HOST_OUT_SLICE_CYCLES == 1 and hop == 2
    assert got["loop"] == (hop + timing.HOST_OUT_SLICE_CYCLES, 0xC0FFEE, 1, 1)


def test_regmap_digest_covers_constant_field_values():
    # chip.geometry / link constants are RO fields with a constant value: a different chip must give a
    # different digest even when addresses, widths and resets are the same
    from archmodel.spec import load_spec
    from rtl.regmap import build_regmap

    a = build_regmap(load_spec("tiny"))
    b = build_regmap(load_spec("tiny").replace(**{"interconnect.link_width_bits": 16}))
    assert [r.address for r in a.registers] == [r.address for r in b.registers]
    assert a.digest != b.digest
    assert build_regmap(load_spec("tiny")).digest == a.digest
