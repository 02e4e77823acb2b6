"""Run the tile-level co-simulations from Python: scenarios (pytest) and one network layer (``aimc cosim``).

Each run exports the Verilog of the design for the chip description (the
chip's own :class:`rtl.tile.Tile`, or :class:`rtl.digital.DigitalDatapath`,
through :func:`rtl.export.write_verilog`, with the Icarus time-0 fix only for
Icarus), builds it once with the chosen simulator and runs the
requested cocotb tests of :mod:`tb.test_tile_cosim` (or
:mod:`tb.test_digital_cosim`) in one simulator process, through
:func:`tb.runner.run_cocotb`. Parameters reach the testbench through
environment variables (``AIMC_COSIM_*``, see the test modules); each test
writes its counts and cycles as JSON, read back here.

The cycle check of :func:`cosim_layer` compares like with like: the
simulated **stage time per vector at steady state** -- the spacing of
successive vectors' last int8 outputs, averaged from the first vector's to
the last one's, with no stall -- against the mapper's ``vector_cycles``
(:func:`archmodel.timing.tile_vector_cycles`: the slower of the array port and
the affine unit). A layer with a single input vector (linear) is run on
``TIMING_VECTORS`` copies of it, so that a steady state exists.

:func:`cosim_layer` is a pure task (docs/design.md, "Evaluations are pure tasks"):
(chip description, network, layer, seed, drift time, simulator) -> a
:class:`CosimReport`; the build folder is the only thing it writes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from archmodel.errors import AimcError
from archmodel.placement import LayerPlacement, Placement
from tb.runner import run_cocotb

__all__ = ["TIMING_VECTORS", "CosimError", "CosimReport", "ScenarioOutcome", "cosim_layer", "run_scenarios",
           "select_layer"]

#: Copies of a single-vector layer's input run by :func:`cosim_layer` (a steady state needs >= 2 vectors).
TIMING_VECTORS = 4

REPO_ROOT = Path(__file__).resolve().parent.parent


class CosimError(AimcError, ValueError):
    """A layer that cannot be co-simulated on one tile (one clear line)."""


@dataclass
class ScenarioOutcome:
    """One cocotb test: passed or not, its message, and the JSON it wrote (counts, cycles)."""

    name: str
    passed: bool
    message: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    wall_s: float = 0.0            # wall time of the test itself (cocotb's results file), build excluded


def _outcomes(results_xml: Path, out_dir: Path) -> dict[str, ScenarioOutcome]:
    tree = ET.parse(results_xml)
    res: dict[str, ScenarioOutcome] = {}
    for tc in tree.iter("testcase"):
        name = tc.get("name", "")
        fail = tc.find("failure")
        if fail is None:
            fail = tc.find("error")
        msg = "" if fail is None else (fail.get("message") or fail.text or "failed").strip()
        data_path = out_dir / f"{name}.json"
        data = json.loads(data_path.read_text()) if data_path.exists() else {}
        res[name] = ScenarioOutcome(name, fail is None and tc.find("skipped") is None, msg, data,
                                    float(tc.get("time", "0") or 0))
    return res


def run_scenarios(sim: str, tests: list[str], *, arch: str = "tiny", changes: dict[str, Any] | None = None,
                  seed: int = 1, t_inf_s: float | None = 0.0, build_dir: str | os.PathLike,
                  design: str = "tile", job: str | os.PathLike | None = None,
                  waves: bool = False) -> dict[str, ScenarioOutcome]:
    """Build the design for (``arch``, ``changes``) with ``sim`` and run ``tests`` in one simulator process.

    Parameters
    ----------
    sim : {"icarus", "verilator"}
    tests : list of str
        cocotb test names of the module (``test_one_mvm``, ...).
    design : {"tile", "digital"}
        :class:`rtl.tile.Tile` with :mod:`tb.test_tile_cosim`, or the
        digital datapath with :mod:`tb.test_digital_cosim`.
    job : path, optional
        Job file for ``test_job`` (:class:`tb.tile_env.TileJob`).
    waves : bool
        Dump waveforms into ``build_dir`` (off by default).

    Returns
    -------
    dict of test name -> ScenarioOutcome
        A test missing from the results (the simulator died) is reported failed.
    """
    from rtl.digital import DigitalDatapath
    from rtl.export import write_verilog
    from rtl.params import DigitalParams, TileParams
    from rtl.tile import Tile
    from tb.tile_env import resolve_spec

    build_dir = Path(build_dir)
    spec = resolve_spec(arch, changes)
    if design == "tile":
        comp, top, module = Tile(TileParams.from_spec(spec)), "cosim_tile", "tb.test_tile_cosim"
    elif design == "digital":
        comp, top, module = DigitalDatapath(DigitalParams.from_spec(spec)), "cosim_digital", "tb.test_digital_cosim"
    else:
        raise ValueError(f"design must be 'tile' or 'digital', got {design!r}")
    src = write_verilog(comp, top, build_dir / "rtl" / sim, spec, icarus=(sim == "icarus"))
    env = {"AIMC_COSIM_T_INF": "none" if t_inf_s is None else repr(float(t_inf_s))}
    if job is not None:
        env["AIMC_COSIM_JOB"] = str(job)
    return run_cocotb_tests(sim, src, top, module, build_dir, tests, arch=arch, changes=changes, seed=seed,
                            waves=waves, extra_env=env)


def run_cocotb_tests(sim: str, src: Path, top: str, module: str, build_dir: Path, tests: Sequence[str], *,
                     arch: str, changes: dict | None, seed: int, waves: bool = False,
                     extra_env: dict[str, str] | None = None,
                     libs: Sequence[Path] = ()) -> dict[str, ScenarioOutcome]:
    """Run cocotb tests of ``module`` on ``top`` and collect one :class:`ScenarioOutcome` per test.

    The testbench gets its parameters through ``AIMC_COSIM_*`` environment
    variables (chip description, changes as JSON, seed, results folder) and
    writes ``<test>.json`` into ``build_dir/results``; stale results are removed
    first. A test that did not run is reported as failed ("not run"). ``libs``: more Verilog sources
    (simulation models of vendor primitives, :func:`rtl.ecp5.write_sim_model`).
    """
    out_dir = build_dir / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    for t in tests:
        (out_dir / f"{t}.json").unlink(missing_ok=True)
    env = {
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "AIMC_COSIM_ARCH": str(arch),
        "AIMC_COSIM_CHANGES": json.dumps(changes or {}),
        "AIMC_COSIM_SEED": str(int(seed)),
        "AIMC_COSIM_OUT": str(out_dir),
        **(extra_env or {}),
    }
    result = run_cocotb(sim, [src, *libs], top, module, build_dir / sim, extra_env=env, testcase=list(tests), waves=waves)
    outcomes = _outcomes(result.results_xml, out_dir)
    for t in tests:
        outcomes.setdefault(t, ScenarioOutcome(t, False, "not run (simulator failed?)"))
    return outcomes


# ======================================================================== one network layer


@dataclass
class CosimReport:
    """Result of :func:`cosim_layer` (units in the names)."""

    arch: str
    network: str
    layer_index: int
    layer_name: str
    shape: str
    seed: int
    t_inf_s: float | None
    sim: str
    match: bool
    outputs_compared: int
    outputs_expected: int
    mismatches: int
    mvms: int
    simulated_cycles: float        # stage time per vector at steady state: spacing of successive vectors' last outputs
    total_cycles: int              # start pulse .. last int8 output (includes pipeline fill and drain)
    predicted_cycles: int          # the mapper's stage time per vector (placement vector_cycles)
    gdc_alpha: float
    wall_s: float                  # whole task: Verilog export, build, simulation
    sim_wall_s: float = 0.0        # the simulation alone (cocotb test time)
    vectors: int = 0               # input vectors run (a linear layer's one vector: TIMING_VECTORS copies)
    array_cycles: int = 0          # array-port busy cycles, first DAC beat .. a next MVM could start (information)
    adc_range: str = ""            # the chip's calibration.adc_range
    adc_full_scale_ua: float = 0.0     # the layer's ADC full scale I_fs, µA
    adc_full_scale_fraction: float = 0.0  # I_fs / (rows · devices_per_polarity · g_max · V_read)
    message: str = ""

    @property
    def cycle_ratio(self) -> float:
        return self.simulated_cycles / self.predicted_cycles if self.predicted_cycles else float("nan")

    @property
    def cycles_agree(self) -> bool:
        return abs(self.cycle_ratio - 1.0) <= 0.02

    def adc_line(self) -> str:
        """How the layer's ADC full scale was set (``calibration.adc_range``)."""
        if self.adc_range == "per_layer":
            how = ("per_layer, measured on the seeded stimulus (no calibration images): 5 sigma of the column "
                   "currents right after programming, every row block")
        else:
            how = f"{self.adc_range or 'fixed'}: array.adc_full_scale_fraction"
        return (f"ADC range: {how}; full scale {self.adc_full_scale_ua:.6g} uA "
                f"(fraction {self.adc_full_scale_fraction:.6g})")

    def lines(self) -> list[str]:
        """The human-readable report (what ``aimc cosim`` prints)."""
        t = "none (as programmed)" if self.t_inf_s is None else f"{self.t_inf_s:g} s"
        return [
            f"cosim: {self.network} layer {self.layer_index} ({self.layer_name}, {self.shape}) on '{self.arch}', "
            f"{self.sim}",
            f"seed: {self.seed}    drift time: {t}    GDC alpha: {self.gdc_alpha:.6f}",
            self.adc_line(),
            f"result: {'MATCH' if self.match else 'MISMATCH'}: {self.outputs_compared}/{self.outputs_expected} "
            f"int8 outputs compared, {self.mismatches} mismatches, {self.mvms} MVMs, {self.vectors} vectors",
            f"simulated cycles: {self.simulated_cycles:g} per vector (steady state: spacing of successive vectors' "
            f"last outputs; array port busy {self.array_cycles}, {self.total_cycles} from start to the last output)",
            f"mapper predicted cycles: {self.predicted_cycles} per vector    ratio simulated/predicted: "
            f"{self.cycle_ratio:.4f} ({'within' if self.cycles_agree else 'OUTSIDE'} 2 %)",
            f"wall time: {self.wall_s:.1f} s ({self.sim_wall_s:.1f} s simulating)",
        ] + ([self.message] if self.message else [])


def select_layer(spec: Any, network: Any, placement: Placement, layer: int) -> tuple[Any, LayerPlacement]:
    """The network's matrix layer number ``layer`` (the map report's row) and its placement.

    Raises
    ------
    CosimError
        Index out of range, a digital layer, or a layer that does not fit one tile.
    """
    mats = network.matrix_layers()
    if not 0 <= layer < len(mats):
        raise CosimError(f"--layer {layer} is out of range: network '{network.name}' has {len(mats)} conv/linear "
                         f"layers (0..{len(mats) - 1})")
    row = placement.layer(layer)
    lyr = mats[layer]
    if row.kind != "analog":
        raise CosimError(f"layer {layer} ({lyr.name}) of '{network.name}' runs on the digital datapath on "
                         f"'{spec.name}' (digital.digital_layers); aimc cosim co-simulates analog layers")
    if row.groups != 1:
        raise CosimError(f"layer {layer} ({lyr.name}) is a grouped convolution (groups = {row.groups}); "
                         "aimc cosim co-simulates one matrix on one tile")
    if row.arrays > spec.array.arrays_per_tile:
        raise CosimError(f"layer {layer} ({lyr.name}, {row.matrix_rows} x {row.matrix_cols}) needs {row.arrays} "
                         f"arrays of {spec.array.rows} x {spec.array.cols}; one tile of '{spec.name}' holds "
                         f"array.arrays_per_tile = {spec.array.arrays_per_tile}: it does not fit one tile")
    return lyr, row


def cosim_layer(arch: str, network: str, layer: int, *, placement: Placement, seed: int = 0,
                t_inf_s: float | None = 0.0,
                sim: str = "verilator", waves: bool = False,
                build_dir: str | os.PathLike | None = None) -> CosimReport:
    """Co-simulate one analog layer of a network on one tile against the golden model.

    Parameters
    ----------
    arch : str
        Chip description (preset name or YAML path).
    network : str
        Zoo name or ONNX / YAML path.
    layer : int
        0-based row of the map report's layer table (conv/linear layers in order).
    placement : Placement
        The mapper's placement of ``network`` on ``arch`` without replication
        (:meth:`mapping.mapper.MappingResult.placement`): the predicted cycles.
    seed : int
        Seed of the weights (when the network has none), inputs, PCM noise.
    t_inf_s : float or None
        Drift time after programming, s (GDC alpha folded into the affine scale).
    sim : {"icarus", "verilator"}
    waves : bool
        Dump waveforms into the build folder.
    build_dir : path, optional
        Where to build (default: a fresh temporary folder, removed afterwards).

    Raises
    ------
    CosimError
        A digital layer, an index out of range, a layer that does not fit one tile.
    """
    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from tb.tile_env import layer_job

    spec = load_spec(arch)
    net = load_network(network)
    lyr, row = select_layer(spec, net, placement, layer)
    arch_ref = str(Path(arch).resolve()) if Path(arch).suffix in (".yaml", ".yml") else arch
    job = layer_job(arch_ref, lyr, seed, t_inf_s=t_inf_s, name=f"{network} layer {layer} ({lyr.name})")
    if len(job.x) < 2:      # a steady state needs successive vectors
        job = dataclasses.replace(job, x=np.tile(job.x, (TIMING_VECTORS, 1)))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aimc-cosim-") as tmp:
        bdir = Path(build_dir) if build_dir is not None else Path(tmp)
        bdir.mkdir(parents=True, exist_ok=True)
        job_path = job.save(bdir / "job.npz")
        out = run_scenarios(sim, ["test_job"], arch=arch_ref, seed=seed, t_inf_s=t_inf_s, build_dir=bdir,
                            job=job_path, waves=waves)["test_job"]
    wall = time.perf_counter() - t0
    d = out.data
    if not d:
        raise RuntimeError(f"the co-simulation produced no result: {out.message}")
    match = out.passed and d["mismatches"] == 0 and d["compared"] == d["expected_outputs"]
    return CosimReport(
        arch=spec.name, network=net.name, layer_index=layer, layer_name=lyr.name, shape=row.shape, seed=seed,
        t_inf_s=t_inf_s, sim=sim, match=match, outputs_compared=d["compared"],
        outputs_expected=d["expected_outputs"], mismatches=d["mismatches"], mvms=d["mvms"],
        simulated_cycles=d["vector_cycles"], total_cycles=d["total_cycles"], predicted_cycles=row.vector_cycles,
        gdc_alpha=float(d.get("gdc_alpha", 1.0)), wall_s=wall, sim_wall_s=out.wall_s, vectors=len(job.x),
        array_cycles=d["array_cycles"], adc_range=str(d.get("adc_range", "")),
        adc_full_scale_ua=float(d.get("adc_full_scale_ua", 0.0)),
        adc_full_scale_fraction=float(d.get("adc_full_scale_fraction", 0.0)),
        message="" if out.passed else out.message)
