"""The sweep file: YAML validated with pydantic, errors naming the path; the points it asks for.

Format (``examples/sweep_resnet32.yaml`` is a complete example)::

    name: r32-adc-array          # free text
    base: fig11                  # chip preset or YAML path (relative to the sweep file)
    networks: [resnet32-joshi2020]   # mapped at every point (PPA)
    parameters:                  # dotted chip-description paths
      array.adc_bits: [6, 8]                     # a list
      array.rows: {low: 256, high: 512, step: 256}   # an inclusive range
      device.drift_scale: {low: 0.5, high: 1.5}  # continuous (random / lhs only)
    strategy: grid               # grid | random | lhs | nsga2
    samples: 8                   # points drawn by random / lhs
    population: 16               # nsga2: trials per generation
    generations: 8               # nsga2: number of generations
    compare_exhaustive: false    # nsga2: also evaluate the whole grid, compare fronts
    screening: {by: accuracy_class, neighbourhood: 0}   # two-stage: accuracy only where it can matter
    batch: 256                   # PPA evaluations per task (default: automatic)
    seed: 0
    objectives:                  # minimised or maximised
      - {metric: energy_per_inference_pj, goal: min}
      - {metric: accuracy.1_day.digital_first_last/gdc.digits-cnn, goal: max}
    constraints:
      - {metric: area_mm2, max: 1000}
    accuracy: {draws: 3, epochs: 10, noise: 0.05}

Metrics (objectives and constraints) are the numeric keys of ``report.json``
``totals`` of ``aimc map`` (:data:`TOTAL_KEYS`; the per-component dictionaries
are in the table as ``energy_per_inference_by_component_pj.adc_pj`` ...),
``power_w`` (energy per inference ÷ pipeline interval), and
``accuracy.<time>.<placement>/<compensation>.<network>`` with ``<time>`` one of
the labels of :data:`archmodel.accuracy.TIMES_S` written with ``_`` for spaces
(``1_s``, ``1_h``, ``1_day``, ``1_month``, ``1_year``). With several
``networks`` a PPA metric is written ``<key>.<network>``.

Points: ``grid`` is the Cartesian product (parameters in file order, the last
one varying fastest); ``random`` draws each parameter uniformly; ``lhs`` is a
Latin hypercube (:class:`scipy.stats.qmc.LatinHypercube`, seeded). A list or a
stepped range is sampled by index, a continuous range by value. ``nsga2`` is
Optuna's NSGA-II sampler (:class:`optuna.samplers.NSGAIISampler`, seeded by
``seed``) run by whole generations (:mod:`mapping.sweep.runner`); a list or
stepped range is searched by index (an ordered integer), a continuous range by
value.

Screening (two-stage): PPA for every point, accuracy only on the points whose
PPA can still put them on the front: ``by: accuracy_class`` (exact) keeps the
PPA-Pareto points within each class of points that the accuracy evaluation
cannot tell apart (same values of the swept parameters it reads);
``by: ppa_front`` keeps only the PPA-Pareto set. ``neighbourhood: k`` adds the
points within k index steps (in every list / stepped parameter) of a kept one.
"""

from __future__ import annotations

import difflib
import itertools
import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archmodel.accuracy import COMPENSATIONS, PLACEMENTS, TIMES_S
from archmodel.errors import AimcError
from archmodel.spec import ChipSpec, load_spec
from archmodel.validation import loc_path
from archmodel.yaml_loader import load_yaml_or_raise

__all__ = ["SweepError", "SweepFile", "Objective", "Constraint", "AccuracyMetric", "load_sweep", "sweep_points",
           "TOTAL_KEYS", "time_key", "grid_points", "parameter_values", "Screening", "parse_accuracy_metric", "ppa_metric_names"]

#: Numeric keys of ``report.json`` totals (mapping/report.py ``report_dict``) plus ``power_w``.
TOTAL_KEYS: tuple[str, ...] = (
    "latency_per_inference_ns", "pipeline_interval_ns", "inferences_per_s", "tops", "tops_per_w", "tops_per_mm2",
    "energy_per_inference_pj", "area_mm2", "chips", "tiles_per_chip", "tiles_used", "arrays_used",
    "pcm_devices_used", "weights", "macs_per_inference", "ops_per_inference", "chip_link_bits_per_inference",
    "clock_mhz", "power_w",
)
#: Units of the metrics shown in the report tables.
UNITS = {"latency_per_inference_ns": "ns", "pipeline_interval_ns": "ns", "inferences_per_s": "1/s", "tops": "TOPS",
         "tops_per_w": "TOPS/W", "tops_per_mm2": "TOPS/mm²", "energy_per_inference_pj": "pJ", "area_mm2": "mm²",
         "power_w": "W", "clock_mhz": "MHz", "chip_link_bits_per_inference": "bit"}


#: Largest grid ``compare_exhaustive`` enumerates.
MAX_EXHAUSTIVE = 1_000_000


class SweepError(AimcError, ValueError):
    """A sweep file that cannot be used; the message names the path in the file (one line)."""


def time_key(label: str) -> str:
    """``"1 day"`` -> ``"1_day"`` (times in metric names)."""
    return label.replace(" ", "_")


class AccuracyMetric(BaseModel):
    """A parsed ``accuracy.<time>.<placement>/<compensation>.<network>`` metric."""

    model_config = ConfigDict(frozen=True)
    time: str
    placement: str
    compensation: str
    network: str

    @property
    def setting(self) -> str:
        return f"{self.placement}/{self.compensation}"


def parse_accuracy_metric(metric: str) -> AccuracyMetric:
    """Parse an accuracy metric name; raises ValueError naming what is expected."""
    parts = metric.split(".", 3)
    times = [time_key(t) for t, _ in TIMES_S]
    if len(parts) != 4 or parts[0] != "accuracy":
        raise ValueError(f"bad accuracy metric {metric!r}: expected accuracy.<time>.<placement>/<compensation>.<network>")
    _, t, setting, net = parts
    if t not in times:
        raise ValueError(f"bad accuracy metric {metric!r}: time {t!r} is not one of {', '.join(times)}")
    p, _, c = setting.partition("/")
    if p not in PLACEMENTS or c not in COMPENSATIONS:
        raise ValueError(f"bad accuracy metric {metric!r}: setting {setting!r} is not <placement>/<compensation> with "
                         f"placement in {', '.join(PLACEMENTS)} and compensation in {', '.join(COMPENSATIONS)}")
    return AccuracyMetric(time=t, placement=p, compensation=c, network=net)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Range(_Strict):
    """An inclusive range: stepped (``step``) or continuous (random / lhs only)."""

    low: float
    high: float
    step: float | None = Field(None, gt=0, description="step of an inclusive stepped range")
    integer: bool = Field(False, description="round continuous draws to integers")
    log: bool = Field(False, description="draw continuous values log-uniformly")

    @model_validator(mode="after")
    def _check(self) -> Range:
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.high < self.low:
            raise ValueError(f"empty range: low={self.low} > high={self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"log range needs low > 0, got {self.low}")
        return self

    def values(self) -> list[float] | None:
        """The values of a stepped range (ints when low and step are), None for a continuous one."""
        if self.step is None:
            return None
        n = int(math.floor((self.high - self.low) / self.step + 1e-9)) + 1
        vals = [self.low + i * self.step for i in range(n)]
        if float(self.low).is_integer() and float(self.step).is_integer():
            return [int(round(v)) for v in vals]
        return vals


class Objective(_Strict):
    metric: str
    goal: Literal["min", "max"]


class Constraint(_Strict):
    metric: str
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _check(self) -> Constraint:
        if self.min is None and self.max is None:
            raise ValueError("a constraint needs min, max or both")
        return self


class AccuracySettings(_Strict):
    """How accuracy objectives are evaluated (one fold: the digits split of ``seed``)."""

    draws: int = Field(3, ge=2, le=1000, description="Monte-Carlo draws per evaluation (>= 2 for a standard error)")
    epochs: int = Field(10, ge=1, le=10_000, description="training epochs of the one trained network per network")
    noise: float = Field(0.05, ge=0, description="training weight-noise level (aimc train --noise)")


class Screening(_Strict):
    """Two-stage screening: which points get an accuracy evaluation (see the module docstring)."""

    by: Literal["accuracy_class", "ppa_front"] = Field(
        "accuracy_class", description="PPA front within each accuracy class (exact) or the global PPA front")
    neighbourhood: int = Field(0, ge=0, le=100, description="also keep points within this many index steps of a kept one")


class MapSettings(_Strict):
    replicate: bool = True
    max_chips: int | None = Field(None, ge=1)


class SweepFile(_Strict):
    """A validated sweep file (see the module docstring)."""

    name: str = "sweep"
    base: str = Field(description="chip preset name or chip-description YAML path")
    networks: list[str] = Field(min_length=1, description="networks mapped at every point")
    parameters: dict[str, list[Any] | Range] = Field(min_length=1)
    strategy: Literal["grid", "random", "lhs", "nsga2"] = "grid"
    samples: int | None = Field(None, ge=1, le=1_000_000)
    population: int | None = Field(None, ge=2, le=100_000, description="nsga2: trials per generation")
    generations: int | None = Field(None, ge=1, le=100_000, description="nsga2: number of generations")
    compare_exhaustive: bool = Field(False, description="nsga2: also evaluate the whole grid and compare the fronts")
    screening: Screening | None = Field(None, description="two-stage: accuracy only on the screened-in points")
    batch: int | None = Field(None, ge=1, le=100_000, description="PPA evaluations per task (default: automatic)")
    seed: int = Field(0, ge=0)
    objectives: list[Objective] = Field(min_length=1)
    constraints: list[Constraint] = Field(default_factory=list)
    accuracy: AccuracySettings = Field(default_factory=AccuracySettings)
    map: MapSettings = Field(default_factory=MapSettings)

    @field_validator("parameters")
    @classmethod
    def _nonempty(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, vals in v.items():
            if isinstance(vals, list) and not vals:
                raise ValueError(f"parameter {k!r}: empty list of values")
        return v

    @model_validator(mode="after")
    def _check(self) -> SweepFile:
        if self.strategy == "grid":
            if self.samples is not None:
                raise ValueError("samples is for strategy random or lhs; a grid has all its points")
            for k, v in self.parameters.items():
                if isinstance(v, Range) and v.step is None:
                    raise ValueError(f"parameter {k!r}: a grid needs a list or a range with a step")
        elif self.strategy == "nsga2":
            if self.samples is not None:
                raise ValueError("samples is for strategy random or lhs; nsga2 takes population and generations")
            if self.population is None or self.generations is None:
                raise ValueError("strategy nsga2 needs population and generations")
        elif self.samples is None:
            raise ValueError(f"strategy {self.strategy} needs samples (number of points)")
        if self.strategy != "nsga2" and (self.population is not None or self.generations is not None
                                         or self.compare_exhaustive):
            raise ValueError("population, generations and compare_exhaustive are for strategy nsga2")
        if self.compare_exhaustive:
            for k, v in self.parameters.items():
                if isinstance(v, Range) and v.step is None:
                    raise ValueError(f"parameter {k!r}: compare_exhaustive needs a list or a range with a step")
            if math.prod(len(v) if isinstance(v, list) else len(v.values() or []) for v in self.parameters.values()) \
                    > MAX_EXHAUSTIVE:
                raise ValueError(f"compare_exhaustive: the grid has more than {MAX_EXHAUSTIVE} points")
        return self

    def metric_columns(self) -> list[str]:
        """Every PPA metric name the table will have."""
        return ppa_metric_names(self.networks)

    def accuracy_metrics(self) -> list[AccuracyMetric]:
        names = [o.metric for o in self.objectives] + [c.metric for c in self.constraints]
        return list(dict.fromkeys(parse_accuracy_metric(m) for m in names if m.startswith("accuracy.")))


def ppa_metric_names(networks: list[str]) -> list[str]:
    """PPA columns: bare total keys for one network, ``<key>.<network>`` for several."""
    if len(networks) == 1:
        return list(TOTAL_KEYS)
    return [f"{k}.{n}" for n in networks for k in TOTAL_KEYS]


def _error(exc: ValidationError, origin: str) -> SweepError:
    errors = exc.errors()

    def wrong_branch(e: Any) -> bool:  # a parameter is "list | Range": report the branch the value was written for
        loc = [str(x) for x in e["loc"]]
        return ("Range" in loc and isinstance(e.get("input"), list)) or (
            any(x.startswith("list[") for x in loc) and isinstance(e.get("input"), dict))

    err = next((e for e in errors if not wrong_branch(e)), errors[0])
    loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and ("[" in x or x.startswith("function")
                                                                      or x == "Range")))
    path = loc_path(loc)
    if err["type"] == "extra_forbidden":
        return SweepError(f"{origin}: {path}: unknown key (value {err.get('input')!r})")
    msg = err["msg"].removeprefix("Value error, ")
    return SweepError(f"{origin}: {path}: {msg}")


def load_sweep(path: str | Path) -> tuple[SweepFile, ChipSpec]:
    """Load and check a sweep file; returns (sweep, base chip).

    Checks, before any work: the schema (unknown keys, empty ranges), the base
    chip, every parameter path (applied to the base chip with its first value),
    every objective and constraint metric (a total, ``power_w`` or a valid
    accuracy metric on a digits network).

    Raises
    ------
    SweepError
        One line naming the file and the path inside it.
    """
    from archmodel.digits_experiment import is_digits_network
    from archmodel.zoo import load_network

    path = Path(path)
    origin = str(path)
    if not path.is_file():
        raise SweepError(f"{origin}: no such sweep file")
    data = load_yaml_or_raise(path.read_text(encoding="utf-8"), origin, SweepError)
    if not isinstance(data, dict):
        raise SweepError(f"{origin}: (top level): expected a mapping with base, networks, parameters, objectives")
    try:
        sweep = SweepFile.model_validate(data)
    except ValidationError as exc:
        raise _error(exc, origin) from None
    base_ref = sweep.base
    if (base_ref.endswith((".yaml", ".yml")) or "/" in base_ref) and not Path(base_ref).is_absolute():
        base_ref = str(path.parent / base_ref)
    try:
        base = load_spec(base_ref)
    except AimcError as exc:
        raise SweepError(f"{origin}: base: {exc}") from None
    for k, v in sweep.parameters.items():
        first = v[0] if isinstance(v, list) else (v.values() or [v.low])[0]
        try:
            base.replace(**{k: first})
        except (AimcError, ValueError) as exc:
            raise SweepError(f"{origin}: parameters.{k}: {str(exc).splitlines()[0]}") from None
    for n in sweep.networks:
        try:
            load_network(n)
        except (AimcError, ValueError, OSError) as exc:
            raise SweepError(f"{origin}: networks: {exc}") from None
    columns = set(sweep.metric_columns())
    for kind, items in (("objectives", sweep.objectives), ("constraints", sweep.constraints)):
        for i, item in enumerate(items):
            m = item.metric
            if m.startswith("accuracy."):
                try:
                    am = parse_accuracy_metric(m)
                    net = load_network(am.network)
                except (AimcError, ValueError, OSError) as exc:
                    raise SweepError(f"{origin}: {kind}[{i}].metric: {str(exc).splitlines()[0]}") from None
                if not is_digits_network(net):
                    raise SweepError(f"{origin}: {kind}[{i}].metric: accuracy needs a digits network (1x8x8 -> 10), "
                                     f"got {am.network!r}")
            elif m not in columns:
                close = difflib.get_close_matches(m, sorted(columns), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise SweepError(f"{origin}: {kind}[{i}].metric: {m!r} is no metric; {hint}expected a report total "
                                 f"({', '.join(sorted(columns)[:6])}, ...) or accuracy.<time>.<setting>.<network>")
    return sweep, base


def grid_points(sweep: SweepFile) -> list[dict[str, Any]]:
    """The Cartesian product of the (list or stepped) parameters, last one fastest."""
    names = list(sweep.parameters)
    lists = [v if isinstance(v, list) else v.values() for v in sweep.parameters.values()]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]


def parameter_values(sweep: SweepFile) -> dict[str, list[Any] | None]:
    """Each parameter's discrete values (list or stepped range), None for a continuous range."""
    return {k: (v if isinstance(v, list) else v.values()) for k, v in sweep.parameters.items()}


def sweep_points(sweep: SweepFile) -> list[dict[str, Any]]:
    """The points of the sweep, in order: ``[{dotted path: value}]`` (see the module docstring).

    Raises ValueError for ``nsga2``: its points come from the optimizer (:mod:`mapping.sweep.runner`).
    """
    names = list(sweep.parameters)
    specs = [sweep.parameters[n] for n in names]
    if sweep.strategy == "grid":
        return grid_points(sweep)
    if sweep.strategy == "nsga2":
        raise ValueError("nsga2 points are asked from the optimizer, generation by generation")
    n = int(sweep.samples or 1)
    if sweep.strategy == "lhs":
        from scipy.stats import qmc

        u = qmc.LatinHypercube(d=len(names), seed=np.random.default_rng(sweep.seed)).random(n)
    else:
        u = np.random.default_rng(sweep.seed).random((n, len(names)))
    points = []
    for row in u:
        p: dict[str, Any] = {}
        for name, s, x in zip(names, specs, row, strict=True):
            vals = s if isinstance(s, list) else s.values()
            if vals is not None:
                p[name] = vals[min(int(x * len(vals)), len(vals) - 1)]
            else:
                assert isinstance(s, Range)
                v = math.exp(math.log(s.low) + x * (math.log(s.high) - math.log(s.low))) if s.log else \
                    s.low + x * (s.high - s.low)
                p[name] = int(round(v)) if s.integer else float(v)
        points.append(p)
    return points
