"""The simulator build cache of :mod:`tb.runner` (issue 22): a second run reuses the build, a Verilog change misses.

One tiny Verilog counter on Icarus (a build of well under a second); the cocotb
test reads the counter after a known number of clock edges, so a reused build
that ran the wrong design would fail on its value.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import tb.runner as runner_mod
from tb.runner import _cached_build, build_key, cache_dir, run_cocotb

pytestmark = pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog not installed")

COUNTER = """module cache_probe(input clk, input rst, output reg [7:0] count);
  always @(posedge clk) count <= rst ? 8'd0 : count + 8'd{step};
endmodule
"""

TB = '''
import os
import cocotb
from cocotb.clock import Clock
from cocotb.triggers import RisingEdge, ReadOnly


@cocotb.test()
async def test_count(dut):
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await RisingEdge(dut.clk)
    dut.rst.value = 0
    for _ in range(5):
        await RisingEdge(dut.clk)
    await ReadOnly()
    assert int(dut.count.value) == int(os.environ["PROBE_EXPECT"]), int(dut.count.value)
'''


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """Cache in ``tmp_path/cache``; ``run(step, expect)`` exports the counter, runs the test, counts builds."""
    monkeypatch.setenv("AIMC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache_probe_tb.py").write_text(TB)
    monkeypatch.syspath_prepend(str(tmp_path))  # cocotb's runner hands sys.path to the simulator
    builds = []
    from cocotb_tools.runner import Icarus

    real = Icarus.build

    def counting_build(self, *a, **k):
        builds.append(k.get("build_dir"))
        return real(self, *a, **k)

    monkeypatch.setattr(Icarus, "build", counting_build)

    def run(step: int, expect: int, folder: str) -> runner_mod.CocotbResult:
        src = tmp_path / folder / "cache_probe.v"  # a fresh export folder per run, like tb.cosim
        src.parent.mkdir(parents=True, exist_ok=True)
        src.write_text(COUNTER.format(step=step))
        return run_cocotb("icarus", [src], "cache_probe", "cache_probe_tb", tmp_path / folder / "build",
                          extra_env={"PROBE_EXPECT": str(expect)})

    return run, builds, tmp_path / "cache" / "sim"


def test_second_run_reuses_the_build_and_a_verilog_change_rebuilds(probe):
    run, builds, root = probe
    # 5 edges after reset: 5 x step
    first = run(1, 5, "a")
    assert first.ok and len(builds) == 1
    entries = sorted(p.name for p in root.iterdir())
    assert len(entries) == 1 and not entries[0].startswith(".")
    again = run(1, 5, "b")                       # same Verilog bytes, another folder: a hit
    assert again.ok and len(builds) == 1
    assert "reused the cached simulator build" in (Path(again.results_xml).parent / "build.log").read_text()
    changed = run(3, 15, "c")                    # the Verilog changed: a miss, and the new design runs
    assert changed.ok and len(builds) == 2
    assert len([p for p in root.iterdir() if not p.name.startswith(".")]) == 2


def test_build_key_covers_bytes_top_and_options_not_the_folder(tmp_path):
    a, b = tmp_path / "a" / "x.v", tmp_path / "b" / "x.v"
    for p in (a, b):
        p.parent.mkdir()
        p.write_text("module x; endmodule\n")
    k = build_key("icarus", [a], "x", [])
    assert k == build_key("icarus", [b], "x", [])           # the folder is not part of the key
    b.write_text("module x; wire w; endmodule\n")
    assert k != build_key("icarus", [b], "x", [])           # the bytes are
    assert k != build_key("icarus", [a], "y", [])           # the top module
    assert k != build_key("icarus", [a], "x", ["-Wall"])    # the options
    assert k != build_key("verilator", [a], "x", [])        # the simulator


def test_cache_folder_env_and_off(monkeypatch, tmp_path):
    monkeypatch.setenv("AIMC_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "sim"
    monkeypatch.setenv("AIMC_CACHE", "off")
    assert cache_dir() is None
    monkeypatch.delenv("AIMC_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "aimc" / "sim"


def test_concurrent_builders_keep_one_complete_entry(tmp_path):
    """Two runs miss at once: the loser of the rename keeps the winner's build and leaves no temporary folder."""
    root = tmp_path / "sim"

    def winner(into: Path) -> None:
        (into / "model").write_text("winner")

    def loser(into: Path) -> None:
        (into / "model").write_text("loser")
        _cached_build(root, "k", winner, None)  # the other run finishes first, while this one builds

    assert (_cached_build(root, "k", loser, None) / "model").read_text() == "winner"
    assert sorted(os.listdir(root)) == ["k"]
    calls = []
    assert _cached_build(root, "k", calls.append, None) == root / "k" and calls == []  # a hit builds nothing

    def broken(into: Path) -> None:
        raise RuntimeError("compiler failed")

    with pytest.raises(RuntimeError):
        _cached_build(root, "k2", broken, None)
    assert sorted(os.listdir(root)) == ["k"]  # a failed build leaves nothing behind




def test_build_progress_off_a_terminal_is_silent_and_raises_nothing(capsys, monkeypatch):
    # the elapsed-time line starts after 2 s from a thread; off a terminal it must print nothing and the
    # thread must not fail (a disabled tqdm has no start time)
    import threading
    import time

    from tb.runner import _build_progress

    errors = []
    monkeypatch.setattr(threading, "excepthook", lambda args: errors.append(args.exc_value))
    with _build_progress("building the verilator model of tile"):
        time.sleep(2.6)
    assert errors == []
    assert capsys.readouterr().err == ""
