"""Issue 9, item 7: property-based tests (Hypothesis) of the CLI's error policy.

Generated inputs: chip descriptions (random mutations of the presets: wrong types, out-of-range
numbers, unknown keys, missing or odd names), layer lists (random ops and attributes) and
command-line argument combinations. Every run of ``aimc`` (in process, via
:func:`mapping.cli.main.main`) must end in exactly one of:

- exit 0 and a valid report (``report.json`` parses, its totals are finite and > 0) in ``--out``;
- exit 1 and one or two lines on stderr, the last ``aimc: error: ...``, nothing in ``--out``;
- exit 2 (an argument error): usage + one ``aimc: error: ...`` line, nothing in ``--out``;

never a traceback, never ``aimc: internal error``, never a staging folder left behind.
Derandomized with fixed example counts (see ``EXAMPLES``), so every run tries the same cases.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from mapping.cli.main import main

#: Examples per property (fixed; the closing note of issue 9 quotes them).
EXAMPLES = {"chip": 150, "layers": 120, "argv": 150}


def _settings(n: int):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None, print_blob=False,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


def run_cli(argv: list[str], out: Path | None) -> tuple[int, list[str]]:
    """Run ``aimc`` in process and check the error policy; returns (status, stderr lines)."""
    err, std = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
        try:
            status = main(argv)
        except SystemExit as exc:  # argparse errors and --help
            status = exc.code if isinstance(exc.code, int) else 2
    text = err.getvalue()
    lines = text.strip().splitlines()
    assert "Traceback" not in text and "internal error" not in text, (argv, text)
    assert all(len(line) <= 500 for line in lines), (argv, text[:500])
    if out is not None:
        leftovers = [p for p in os.listdir(out.parent) if ".aimc-stage-" in p or ".aimc-old-" in p]
        assert leftovers == [], (argv, leftovers)
    if status == 0:
        if out is not None and argv[0] == "map":
            rep = json.loads((out / "report.json").read_text())
            for key in ("latency_per_inference_ns", "energy_per_inference_pj", "area_mm2", "tops", "tops_per_w"):
                v = rep["totals"][key]
                assert math.isfinite(v) and v > 0, (argv, key, v)
    elif status == 1:
        assert 1 <= len(lines) <= 2 and lines[-1].startswith("aimc: error: "), (argv, text)
        assert out is None or not out.exists(), (argv, "output left after an error")
    else:
        assert status == 2, (argv, status, text)
        assert lines[-1].startswith("aimc: error: ") and lines[0].startswith("usage: "), (argv, text)
        assert out is None or not out.exists(), (argv, "output left after an argument error")
    return status, lines


# --------------------------------------------------------------------------- chip descriptions

def _preset(name: str) -> dict:
    from archmodel.spec import load_spec

    return load_spec(name).model_dump(mode="json")


PRESETS = {name: _preset(name) for name in ("tiny", "fig11", "hermes")}
KEYS = [(sec, key) for sec, body in PRESETS["tiny"].items() if isinstance(body, dict)
        for key in body if key != "sources"]

BAD_VALUES = st.one_of(
    st.booleans(), st.none(), st.text(max_size=8), st.lists(st.integers(-3, 3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.integers(-(2**70), 2**70), st.sampled_from([0, -1, 1, 2, 3, 7, 8, 64, 4096, 4097, 65536, 10**9]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-300, 1e308, -0.0, 0.5, 1e-9, 1e6, 1e12, float("inf"), float("nan")]),
)

MUTATION = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEYS), BAD_VALUES),
    st.tuples(st.just("unknown"), st.sampled_from([*PRESETS["tiny"], "bogus"]), st.text(min_size=1, max_size=12)),
    st.tuples(st.just("drop"), st.sampled_from(["name", "array", "technology", "tile_grid"]), st.none()),
    st.tuples(st.just("name"), st.none(), st.one_of(st.text(max_size=200), st.integers(), st.booleans())),
    st.tuples(st.just("section"), st.sampled_from([k for k, v in PRESETS["tiny"].items() if isinstance(v, dict)]),
              BAD_VALUES),
)


def _mutate(data: dict, mutation) -> dict:
    kind, where, value = mutation
    if kind == "set":
        if isinstance(data.get(where[0]), dict):
            data[where[0]][where[1]] = value
    elif kind == "unknown":
        target = data.get(where) if isinstance(data.get(where), dict) else data
        target[value] = 1
    elif kind == "drop":
        data.pop(where, None)
    elif kind == "name":
        data["name"] = value
    else:
        data[where] = value
    return data


@_settings(EXAMPLES["chip"])
@given(preset=st.sampled_from(sorted(PRESETS)), mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_chip_descriptions(preset, mutations):
    import copy

    data = copy.deepcopy(PRESETS[preset])
    for m in mutations:
        data = _mutate(data, m)
    with tempfile.TemporaryDirectory() as d:
        chip = Path(d) / "chip.yaml"
        chip.write_text(yaml.safe_dump(data, allow_unicode=True))
        out = Path(d) / "o"
        status, _ = run_cli(["map", "--arch", str(chip), "--network", "mlp", "--out", str(out), "--no-plots",
                             "--quiet", "--max-chips", "64"], out)
        spec_status, _ = run_cli(["spec", "--arch", str(chip)], None)
        assert (status == 0) <= (spec_status == 0)  # a description map accepts, spec accepts


def test_chip_valid_mutation_gives_report(tmp_path):
    # the property above must also see valid input: a mutation inside the bounds maps
    data = PRESETS["tiny"] | {"array": PRESETS["tiny"]["array"] | {"rows": 64, "cols": 16}}
    chip = tmp_path / "chip.yaml"
    chip.write_text(yaml.safe_dump(data))
    assert run_cli(["map", "--arch", str(chip), "--network", "mlp", "--out", str(tmp_path / "o"),
                    "--no-plots", "--quiet"], tmp_path / "o")[0] == 0


# --------------------------------------------------------------------------- layer lists

SMALL = st.one_of(st.integers(1, 40), st.sampled_from([0, -1, 10**9]), st.booleans(), st.text(max_size=3),
                  st.floats(allow_nan=True), st.lists(st.integers(-1, 5), max_size=3))
LAYER = st.fixed_dictionaries(
    {"op": st.sampled_from(["linear", "conv", "activation", "batchnorm", "flatten", "maxpool", "avgpool",
                            "global_avgpool", "add", "input", "lstm", "bogus"])},
    optional={"name": st.one_of(st.text(min_size=1, max_size=6), st.integers()),
              "out_features": SMALL, "out_channels": SMALL, "kernel_size": SMALL, "stride": SMALL,
              "padding": SMALL, "kind": st.sampled_from(["relu", "tanh", "nope"]), "bias": SMALL,
              "inputs": st.one_of(st.text(max_size=4), st.lists(st.text(max_size=4), max_size=2))},
)


#: Mostly valid dense stacks, so that the property also sees accepted layer lists (and their reports).
VALID_DENSE = st.lists(st.one_of(
    st.builds(lambda n: {"op": "linear", "out_features": n}, st.integers(1, 80)),
    st.sampled_from([{"op": "activation", "kind": "relu"}, {"op": "activation", "kind": "tanh"},
                     {"op": "batchnorm"}])), min_size=1, max_size=5)


@_settings(EXAMPLES["layers"])
@given(input_shape=st.one_of(st.lists(st.integers(1, 64), min_size=1, max_size=1),
                             st.lists(st.integers(1, 16), min_size=1, max_size=3), SMALL),
       layers=st.one_of(VALID_DENSE, st.lists(LAYER, max_size=6), SMALL))
def test_layer_lists(input_shape, layers):
    net = {"name": "n", "input_shape": input_shape, "layers": layers}
    if isinstance(layers, list):
        for i, layer in enumerate(layers):
            if isinstance(layer, dict):
                layer.setdefault("name", f"l{i}")
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "net.yaml"
        p.write_text(yaml.safe_dump(net, allow_unicode=True))
        out = Path(d) / "o"
        run_cli(["map", "--arch", "tiny", "--network", str(p), "--out", str(out), "--no-plots", "--quiet",
                 "--max-chips", "64"], out)


def test_layer_list_valid_gives_report(tmp_path):
    p = tmp_path / "net.yaml"
    p.write_text(yaml.safe_dump({"name": "n", "input_shape": [16], "layers": [
        {"name": "fc1", "op": "linear", "out_features": 8}, {"name": "r", "op": "activation", "kind": "relu"},
        {"name": "fc2", "op": "linear", "out_features": 4}]}))
    assert run_cli(["map", "--arch", "tiny", "--network", str(p), "--out", str(tmp_path / "o"), "--no-plots",
                    "--quiet"], tmp_path / "o")[0] == 0


# --------------------------------------------------------------------------- argument combinations

VALUE = st.sampled_from(["tiny", "fig11", "nosuch", "", "-1", "0", "1", "2", "x", "1e9", "mlp", "digits-mlp",
                         "--quiet", "nan"])
OPTIONS = {
    "map": ["--arch", "--network", "--max-chips", "--replicate", "--no-replicate", "--fold-batchnorm",
            "--no-plots", "--quiet", "--force", "--seed", "--bogus"],
    "drift": ["--arch", "--seed", "--vectors", "--force", "--bogus"],
    "spec": ["--arch", "--format", "--no-sources", "--bogus"],
}
TAKES_VALUE = {"--arch", "--network", "--max-chips", "--seed", "--vectors", "--format", "--bogus"}


@_settings(EXAMPLES["argv"])
@given(command=st.sampled_from(sorted(OPTIONS)), data=st.data())
def test_argument_combinations(command, data):
    opts = data.draw(st.lists(st.sampled_from(OPTIONS[command]), max_size=5))
    argv = [command]
    for o in opts:
        argv.append(o)
        if o in TAKES_VALUE:
            argv.append(data.draw(VALUE))
    if command == "map" and "--network" not in argv and data.draw(st.booleans()):
        argv += ["--network", "mlp", "--no-plots"]  # the required option, so that runs get past argparse
    if command == "drift" and "--vectors" not in argv:
        argv += ["--vectors", "2"]  # keep a valid run short
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "o"
        with_out = command == "map" or (command == "drift" and data.draw(st.booleans()))
        if with_out:
            argv += ["--out", str(out)]
        status, lines = run_cli(argv, out if with_out else None)
        if status == 0 and with_out:
            assert out.is_dir() and any(out.iterdir())


@pytest.mark.parametrize("argv", [["drift", "--arch", "tiny", "--vectors", "2"], ["spec", "--format", "json"]])
def test_argument_valid_runs(argv):
    assert run_cli(argv, None)[0] == 0
