"""A whole network from the mapper's placement on the co-processor: golden run and configuration.

:func:`prepare_placed` turns a :class:`archmodel.placement.Placement` of an MLP
whose first and last layers are digital and whose middle layer is analog (the
shape of ``digits-mlp`` on ``tiny``: fc1 digital, fc2 on 2 x 2 tiles, fc3
digital) into a :class:`tb.top_env.PreparedNetwork` that
:meth:`tb.top_env.TopTestbench.run` plays: per mapped layer its golden int8
inputs, the programmed PCM matrices behind the array ports, the register
writes (:func:`rtl.register_compiler.compile_mapped_network`) and the golden
class scores.

Tile convention (the placement names only ``first_tile`` and the array count):
an analog layer of ``rb`` row blocks x ``cb`` column blocks, one array per
tile, sits on tiles ``first_tile + c * rb + r``; the ``rb`` tiles of column
block ``c`` form a partial-sum chain (row block 0 upstream, the last the home
tile, :func:`rtl.register_compiler.chained_layer`). The digital first layer
multicasts its results to the chains by beat ranges (one destination entry per
tile, ``rtl.axis.DestFanout``); the digital last layer merges the home tiles'
results in column order (one source queue per home tile,
``rtl.axis.SourceMerge``).

Every layer's int8 outputs are compared: the first layer's as the DAC codes
at the analog tiles' array ports (the checking bridges), the analog layer's as
the copy each home tile mirrors to the host (``tap``: destination entry 1,
``m_axis.tdest`` chan 1, packets tagged with the tile), the last layer's as the
class scores on ``m_axis`` (chan 0).

Golden integer forward (the same functions the RTL's contract names):
digital layers ``golden.digital.digital_linear`` + ``AffineCoefficients.apply``
(:func:`rtl.register_compiler.digital_layer`); the analog layer
``AnalogMatrix.mvm_partial_sums`` of each tile's rows, summed over the chain, +
``AffineCoefficients.apply`` (:func:`rtl.register_compiler.chained_layer`);
one conductance scale per column block (each column block is programmed as its
own matrix). Output scales: the 99th percentile of ``|y|`` maps to 100, as
:func:`tb.top_env.prepare_network`. Input: digits pixels 0..16 -> int8 ``round(p * 127 / 16)``.

Weights: trained on the digits split (:func:`archmodel.digits_experiment.train_on_digits`,
seed, no weight noise) when ``trained``; else standard normal from the seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from archmodel.analog_matrix import AnalogMatrix
from archmodel.errors import AimcError
from archmodel.golden.coefficients import analog_affine_multiplier
from archmodel.golden.tile_controller import dac_codes
from archmodel.placement import Placement
from archmodel.spec import ChipSpec
from rtl.params import DigitalParams, TileParams
from rtl.register_compiler import (
    chained_layer,
    compile_mapped_network,
    digital_dest,
    digital_layer,
    host_dest,
    tile_coords,
)
from rtl.regmap import build_regmap, source_tag
from tb.top_env import NetworkJob, PreparedNetwork

__all__ = ["CosimNetworkError", "EmulatedArrays", "PlacedNetwork", "digits_images", "prepare_placed"]


class CosimNetworkError(AimcError, ValueError):
    """A placement this co-simulation cannot play (one line)."""


@dataclass
class EmulatedArrays:
    """The PCM array emulators of the FPGA prototype (``rtl/prototype.py``) in place of the Python arrays.

    Each analog tile's emulator holds :func:`archmodel.golden.emulator.conductance_codes` of its
    tile's programmed (drifted) matrix; the golden analog layer then takes each tile's ADC codes
    from :class:`archmodel.golden.emulator.EmulatorModel` for the same codes, shift, ``sigma`` and
    seed (``seed + tile``), MVMs in vector order (the noise generators step per emitted beat).
    The configuration (affine coefficients, output scales) stays the analog model's, so only the
    arrays differ from the Python-bridge run.
    """

    sigma: int = 0               # read-noise scale (0..255; 0 = off)
    seed: int = 1                # noise seed of tile t's emulator: seed + t
    g_bits: int = 8
    codes: dict = None           # type: ignore[assignment]  # tile -> codes (arrays, rows, cols), filled in
    shifts: dict = None          # type: ignore[assignment]  # tile -> ADC shift, filled in
    adc_beats: dict = None       # type: ignore[assignment]  # tile -> ADC beats per MVM, filled in

    def model(self, spec: ChipSpec, tile: int, codes: np.ndarray, shift: int, cols: int | None = None):
        """A fresh :class:`archmodel.golden.emulator.EmulatorModel` of tile ``tile``'s emulator (its state right
        after ``SEED`` is written: MVM 0 of the tile's vector order next), recording ``codes``
        ``(arrays, rows, cols)``, ``shift`` and the ADC beats per MVM (``ceil(cols / cols_per_adc_beat)``, the
        ``ADC_BEATS`` the testbench writes; ``cols`` default: all the array's columns) in this object.

        The one place of the contract "tile ``t``'s emulator = these codes, shift, ``sigma``, seed ``seed + t``"
        (the MLP golden :func:`prepare_placed` and the CNN golden :class:`tb.cnn_golden.EmulatedLayer`).
        """
        from archmodel.golden.emulator import EmulatorModel

        tp = TileParams.from_spec(spec)
        beats = -(-int(spec.array.cols if cols is None else cols) // tp.cols_per_adc_beat)
        for name in ("codes", "shifts", "adc_beats"):
            if getattr(self, name) is None:
                setattr(self, name, {})
        self.codes[tile], self.shifts[tile], self.adc_beats[tile] = codes, int(shift), beats
        return EmulatorModel(codes, adc_bits=spec.array.adc_bits, dac_bits=spec.array.dac_bits,
                             cols_per_adc_beat=tp.cols_per_adc_beat, g_bits=self.g_bits, shift=int(shift),
                             sigma=self.sigma, seed=self.seed + tile, adc_beats=[beats] * codes.shape[0])


@dataclass
class PlacedNetwork:
    """:class:`PreparedNetwork` plus what the whole-network report needs."""

    pn: PreparedNetwork
    labels: np.ndarray           # (B,) true classes of the images
    weights_source: str          # "trained on digits (...)" or "seeded random"
    layer_names: list[str]       # network layers, in order
    layer_kinds: list[str]
    predicted_cycles: list[int]  # mapper's vector_cycles per network layer
    analog_tiles: list[int]      # mapped-layer indices of the analog layer's tiles


def network_ref(network: str) -> str:
    """``network`` as the simulator process gets it (``AIMC_NETWORK``): a zoo name unchanged, an ONNX / YAML file
    as its absolute path (the simulator runs in its build folder, so a relative path would not resolve there)."""
    path = Path(str(network))
    return str(path.resolve()) if path.is_file() else str(network)


def digits_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    """The first ``n`` test images of the digits split of ``seed`` as int8 ``(n, 64)`` and their labels."""
    from archmodel.datasets import load_digits_split

    split = load_digits_split(seed)
    if n > len(split.y_test):
        raise CosimNetworkError(f"--images {n}: the digits test split has {len(split.y_test)} images")
    x = np.rint(split.x_test[:n].reshape(n, -1) * 127.0).astype(np.int64)  # x_test = pixel / 16
    return x, split.y_test[:n].astype(np.int64), split


def _out_scale(y: np.ndarray) -> float:
    s = float(np.percentile(np.abs(y), 99)) / 100.0
    return s if math.isfinite(s) and s > 0 else 1.0


def prepare_placed(spec: ChipSpec, placement: Placement, network, x: np.ndarray, *, seed: int,
                   params: dict | None = None, t_inf_s: float = 0.0, labels: np.ndarray | None = None,
                   weights_source: str = "seeded random", tap: bool = True,
                   emulate: EmulatedArrays | None = None) -> PlacedNetwork:
    """Golden run and configuration of ``placement`` on ``spec`` for the int8 images ``x`` (module docstring).

    Raises
    ------
    CosimNetworkError
        The placement is not digital -> analog -> digital linear layers, a tile holds more than one
        array, or the digital layers do not fit the datapath (one line each).

    With ``emulate`` (:class:`EmulatedArrays`, filled in with each tile's codes and shift) the
    analog layer's golden ADC codes come from the emulator model (class docstring); the
    configuration is the same as without.
    """
    from archmodel import calibration

    kinds = [lp.kind for lp in placement.layers]
    if kinds != ["digital", "analog", "digital"]:
        raise CosimNetworkError(f"network '{placement.network_name}': the whole-network co-simulation plays "
                                f"digital -> analog -> digital linear layers; this placement is {kinds}")
    if spec.array.arrays_per_tile != 1:
        raise CosimNetworkError(f"'{spec.name}' has {spec.array.arrays_per_tile} arrays per tile; the whole-network "
                                "co-simulation maps one array per tile")
    rng = np.random.default_rng([seed, 0])
    mats = [l for l in network.layers if l.is_matrix_layer]
    ws, bs = [], []
    for lp, layer in zip(placement.layers, mats, strict=True):
        if params is not None:
            w = np.asarray(params[layer.name]["weight"], dtype=np.float64).T  # (out, in) -> (K, N)
            b = np.asarray(params[layer.name].get("bias", np.zeros(lp.matrix_cols)), dtype=np.float64)
        else:
            w = rng.standard_normal((lp.matrix_rows, lp.matrix_cols)) / math.sqrt(lp.matrix_rows)
            b = rng.normal(0.0, 0.1, lp.matrix_cols)
        ws.append(w)
        bs.append(b)
    dp, tp = DigitalParams.from_spec(spec), TileParams.from_spec(spec)
    a = spec.array
    rpb = tp.rows_per_dac_beat
    fc1, fc2, fc3 = placement.layers
    rb, cb = fc2.row_blocks, fc2.col_blocks
    tiles = [[fc2.first_tile + c * rb + r for r in range(rb)] for c in range(cb)]
    if max(max(t) for t in tiles) >= spec.tile_grid.rows * spec.tile_grid.cols:
        raise CosimNetworkError(f"layer {fc2.name}: {rb} x {cb} tiles from tile {fc2.first_tile} exceed the chip")
    rows = [min(a.rows, fc2.matrix_rows - r * a.rows) for r in range(rb)]
    cols = [min(a.cols, fc2.matrix_cols - c * a.cols) for c in range(cb)]
    if any(r % rpb for r in rows[:-1]) or any(c % rpb for c in cols[:-1]):
        raise CosimNetworkError(f"layer {fc2.name}: blocks not on {rpb}-lane beat boundaries")

    # ---- fc1 (digital, slot 0): results multicast to every chain, by beat range
    in_scale = 1.0 / 127.0  # one int8 step of the input (pixel / 16 in [0, 1] -> 0..127)
    probe = digital_layer(spec, ws[0], dest=(0, 0), in_scale=in_scale, out_scale=1.0, relu=True)
    s1 = probe.sums(x, dp.acc_bits)
    os1 = _out_scale(s1 * (in_scale * probe.w_scale) + bs[0])
    dests, r0 = [], 0
    for r, nr in enumerate(rows):
        for c in range(cb):
            xt, yt = tile_coords(spec, tiles[c][r])
            dests.append((xt, yt, r0 // rpb, 0 if r == rb - 1 else (r0 + nr) // rpb, 0))
        r0 += nr
    dests.sort(key=lambda d: (d[2], d[0] + 100 * d[1]))
    first = dests[0]
    d1 = digital_layer(spec, ws[0], dest=first[:2], in_scale=in_scale, out_scale=os1, bias=bs[0], relu=True,
                       n_pixels=x.shape[0], name=fc1.name)
    d1 = replace(d1, dests=tuple(dests))
    x1 = d1.coefs.apply(s1, acc_bits=dp.acc_bits, scale_bits=dp.scale_bits, offset_bits=dp.offset_bits)

    # ---- fc2 (analog): one matrix per column block, its rows on a chain of tiles
    programmed, psums, alphas, emu_psums = [], [], [], []
    if emulate is not None:
        emulate.codes, emulate.shifts, emulate.adc_beats = {}, {}, {}
    c0 = 0
    for c, nc in enumerate(cols):
        w = ws[1][:, c0:c0 + nc]
        noise_seed = int(np.random.SeedSequence([seed, 1, c]).generate_state(1)[0])
        g = np.random.default_rng([seed, 1, 1, c])
        matrix = AnalogMatrix(spec, noise_seed=noise_seed).program(w, g)
        cal = calibration.gdc_calibration_inputs(spec.calibration.gdc_input, spec.calibration.gdc_vectors,
                                                 w.shape[0], seed=seed)
        ref = calibration.gdc_reference(matrix, cal)
        matrix.drift(float(t_inf_s), g)
        alpha = float(calibration.gdc_alpha(matrix, cal, ref))
        parts, r0 = [], 0
        for r, nr in enumerate(rows):
            parts.append((slice(r0, r0 + nr), matrix.row_slice(r0, r0 + nr, noise_seed + 1 + r)))
            r0 += nr
        p = sum(mt.mvm_partial_sums(dac_codes(x1[:, sl], a.dac_bits), 0) for sl, mt in parts)
        programmed.append(parts)
        psums.append(p)
        if emulate is not None:
            emu_psums.append(sum(_emulated_adc(spec, tp, emulate, tiles[c][r], mt, dac_codes(x1[:, sl], a.dac_bits))
                                 for r, (sl, mt) in enumerate(parts)))
        alphas.append(alpha)
        c0 += nc
    ys, c0 = [], 0
    for c, nc in enumerate(cols):
        w = ws[1][:, c0:c0 + nc]
        m1 = analog_affine_multiplier(
            in_scale=os1, out_scale=1.0, w_abs_max=float(np.max(np.abs(w))), g_max_us=spec.device.g_max_us,
            v_read_v=a.v_read_v, array_rows=a.rows, adc_bits=a.adc_bits, dac_bits=a.dac_bits,
            adc_full_scale_fraction=a.adc_full_scale_fraction, gdc_alpha=alphas[c])
        ys.append(psums[c] * m1 + bs[1][c0:c0 + nc])
        c0 += nc
    os2 = _out_scale(np.concatenate(ys, axis=1))
    mapped, matrices, inputs, outs2, c0 = [], [], [], [], 0
    for c, nc in enumerate(cols):
        chain = chained_layer(spec, ws[1][:, c0:c0 + nc], tiles=tiles[c], rows=rows, dest=digital_dest(spec),
                              name=f"{fc2.name}[c{c}]", in_scale=os1, out_scale=os2, bias=bs[1][c0:c0 + nc],
                              gdc_alpha=alphas[c], relu=True, mode=1) if rb > 1 else None
        if chain is None:
            raise CosimNetworkError(f"layer {fc2.name}: one row block per column block is not wired here")
        if tap:  # the home tile also mirrors its int8 results to the host (destination entry 1, chan 1)
            chain[-1] = replace(chain[-1], dests=((*digital_dest(spec), 0, 0, 0), (*host_dest(spec), 0, 0, 1)))
        for lyr, (sl, mt) in zip(chain, programmed[c], strict=True):
            mapped.append(lyr)
            matrices.append(mt)
            inputs.append(x1[:, sl])
        outs2.append(chain[-1].coefs.apply(psums[c], acc_bits=tp.acc_bits, scale_bits=tp.scale_bits,
                                           offset_bits=tp.offset_bits))
        c0 += nc
    x2 = np.concatenate(outs2, axis=1)

    # ---- fc3 (digital, slot 1): merge the home tiles in column order
    probe = digital_layer(spec, ws[2], dest=host_dest(spec), in_scale=os2, out_scale=1.0, relu=False)
    s3 = probe.sums(x2, dp.acc_bits)
    os3 = _out_scale(s3 * (os2 * probe.w_scale) + bs[2])  # the scales: the analog model's (same configuration)
    if emulate is not None:  # the emulators' ADC codes through the same affine coefficients
        outs2 = [mapped[(c + 1) * rb - 1].coefs.apply(emu_psums[c], acc_bits=tp.acc_bits, scale_bits=tp.scale_bits,
                                                      offset_bits=tp.offset_bits) for c in range(cb)]
        x2 = np.concatenate(outs2, axis=1)
        s3 = probe.sums(x2, dp.acc_bits)
    d3 = digital_layer(spec, ws[2], dest=host_dest(spec), in_scale=os2, out_scale=os3, bias=bs[2], relu=False,
                       n_pixels=x.shape[0], name=fc3.name)
    d3 = replace(d3, sources=tuple((source_tag(spec, tiles[c][-1]), nc) for c, nc in enumerate(cols)))
    x3 = d3.coefs.apply(s3, acc_bits=dp.acc_bits, scale_bits=dp.scale_bits, offset_bits=dp.offset_bits)

    layers = [d1, *mapped, d3]
    rm = build_regmap(spec)
    try:
        writes = compile_mapped_network(spec, layers, regmap=rm)
    except ValueError as exc:
        raise CosimNetworkError(str(exc)) from None
    job = NetworkJob(f"{placement.network_name} on {spec.name}", spec.name, {}, int(seed), t_inf_s, ws, bs,
                     [], x, [True, True, False])
    pn = PreparedNetwork(job=job, spec=spec, params=tp, regmap=rm, matrices=[None, *matrices, None], layers=layers,
                         inputs=[x, *inputs, x2], expected=x3, writes=writes, entry=[0], layer_outputs=[x1, x2, x3],
                         taps={source_tag(spec, tiles[c][-1]): outs2[c] for c in range(cb)} if tap else None)
    return PlacedNetwork(pn=pn, labels=np.zeros(x.shape[0], np.int64) if labels is None else labels,
                         weights_source=weights_source, layer_names=[lp.name for lp in placement.layers],
                         layer_kinds=kinds, predicted_cycles=[lp.vector_cycles for lp in placement.layers],
                         analog_tiles=list(range(1, 1 + len(mapped))))


def _emulated_adc(spec: ChipSpec, tp: TileParams, emu: EmulatedArrays, tile: int, matrix: AnalogMatrix,
                  dac: np.ndarray) -> np.ndarray:
    """ADC codes ``(B, N)`` of tile ``tile``'s emulator for the DAC codes ``dac`` ``(B, rows)``, vector by vector
    (:meth:`EmulatedArrays.model`); records the tile's codes and shift in ``emu``."""
    from archmodel.golden.emulator import conductance_codes

    codes, shift = conductance_codes(matrix, g_bits=emu.g_bits)
    model = emu.model(spec, tile, codes, shift)
    n = matrix.weights.shape[1]
    return np.stack([model.mvm(0, d)[:n] for d in np.asarray(dac, dtype=np.int64)])


def cosim_network(arch: str, placement: Placement, *, images: int, seed: int = 1, sim: str = "verilator",
                  build_dir, weights: str = "trained", fault: str = "none", fault_tile: int = 1,
                  waves: bool = False, profile=None, network: str | None = None, t_inf_s: float = 0.0) -> dict:
    """Build the co-processor for ``arch`` and run ``tb.test_top_cosim.test_digits_network`` on ``placement``.

    Returns the test's JSON (counts, flags, top-1, per-layer cycles) plus ``passed``, ``message`` and
    ``wall_s``; ``profile``: a path for the cProfile statistics of the run; ``network``: the zoo name or ONNX /
    YAML path the placement was made from (default ``placement.network_name``; :func:`network_ref`); ``t_inf_s``:
    drift time of the programmed matrices after programming, s (GDC alpha folded into the affine scale). Raises
    :class:`CosimNetworkError` when the simulator produced no result.
    """
    env = {"AIMC_DIGITS_IMAGES": str(int(images)), "AIMC_DIGITS_WEIGHTS": weights,
           "AIMC_FAULT": fault, "AIMC_FAULT_TILE": str(int(fault_tile)),
           "AIMC_NETWORK": network_ref(network or placement.network_name), "AIMC_T_INF": repr(float(t_inf_s))}
    if profile is not None:  # cProfile of the run inside the simulator process (bench/bench_network_cosim.py)
        env["AIMC_PROFILE"] = str(profile)
    outs = run_top_tests(arch, placement, build_dir=build_dir, sim=sim, module="tb.test_top_cosim",
                         tests=["test_digits_network"], seed=seed, waves=waves, env=env)
    return outcome_json(outs["test_digits_network"], placement.network_name, CosimNetworkError)


def run_top_tests(arch: str, placement: Placement, *, build_dir, sim: str, module: str, tests: list[str], seed: int,
                  waves: bool, env: dict) -> dict:
    """Build the co-processor for ``arch`` (its Verilog under ``build_dir/rtl/<sim>``) and run the cocotb
    ``tests`` of ``module`` in one simulator process with ``placement`` (JSON in ``build_dir``, its path in
    ``AIMC_PLACEMENT``) and the extra environment ``env``; returns ``{test: outcome}``
    (:func:`tb.cosim.run_cocotb_tests`). The one build-and-run of every whole-network co-simulation."""
    import dataclasses
    import json
    from pathlib import Path

    from rtl.export import write_verilog
    from rtl.top import Coprocessor
    from tb.cosim import run_cocotb_tests
    from tb.tile_env import resolve_spec
    from tb.top_env import TOP_NAME

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    pl_file = build_dir / "placement.json"
    pl_file.write_text(json.dumps(dataclasses.asdict(placement)))
    spec = resolve_spec(arch, {})
    src = write_verilog(Coprocessor(spec), TOP_NAME, build_dir / "rtl" / sim, spec, icarus=(sim == "icarus"))
    return run_cocotb_tests(sim, src, TOP_NAME, module, build_dir, list(tests), arch=arch, changes={}, seed=seed,
                            waves=waves, extra_env={"AIMC_PLACEMENT": str(pl_file)} | dict(env))


def outcome_json(out, network: str, error: type[Exception]) -> dict:
    """A test outcome of :func:`run_top_tests` as its JSON plus ``passed``, ``message`` and ``wall_s``.

    Raises
    ------
    error
        The simulator produced no result (one line naming ``network`` and the message).
    """
    if not out.data:
        raise error(f"co-simulation of '{network}' gave no result: {out.message}")
    return dict(out.data) | {"passed": out.passed, "message": out.message, "wall_s": out.wall_s}


PROTO_NAME = "aimc_prototype"


def cosim_prototype(arch: str, placement: Placement, *, images: int, seed: int = 1, sim: str = "verilator",
                    build_dir, weights: str = "trained", sigma: int = 0, emu_seed: int = 1, fault: bool = False,
                    irq_error: bool = False, t_inf_s: float = 0.0, waves: bool = False,
                    network: str | None = None, cnn: bool = False, fault_images: int = 1) -> dict:
    """The whole network on the FPGA prototype (:class:`rtl.prototype.Prototype`: the Verilog of ``aimc verilog
    --emulate-arrays``, emulators in place of the Python arrays): ``tb.test_proto_cosim.test_proto_network``
    (noise off; with ``sigma`` > 0 also noise on; with ``fault`` the one-code fault) and, with ``irq_error``,
    ``test_proto_irq_error``, in one simulator process. ``t_inf_s``: drift time of the programmed matrices
    whose conductance codes the emulators get (and of the golden run). With ``cnn`` a CNN (``digits-cnn`` on
    ``proto``): ``test_proto_cnn_network`` instead (its golden :func:`tb.cnn_golden.cnn_golden` with
    ``emulate``; ``weights`` ``trained`` or ``seeded`` as :func:`tb.cnn_env.cosim_cnn`; the fault phase on
    ``fault_images`` images); ``irq_error`` is then ignored.

    Returns ``{test: JSON of the test + passed, message, wall_s}``. Raises :class:`CosimNetworkError` when
    the simulator produced no result for the network test.
    """
    import dataclasses
    import json
    from pathlib import Path

    from rtl.ecp5 import write_sim_model
    from rtl.export import write_verilog
    from rtl.prototype import Prototype
    from tb.cosim import run_cocotb_tests
    from tb.tile_env import resolve_spec

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    pl_file = build_dir / "placement.json"
    pl_file.write_text(json.dumps(dataclasses.asdict(placement)))
    spec = resolve_spec(arch, {})
    # debug=False: on Verilator the very file `aimc verilog --emulate-arrays` writes (Icarus adds its time-0 fix)
    src = write_verilog(Prototype(spec), PROTO_NAME, build_dir / "rtl" / sim, spec, icarus=(sim == "icarus"),
                        debug=False)
    sim_model = write_sim_model(build_dir / "rtl" / sim)  # the emulators' MULT18X18D instances (rtl/ecp5.py)
    env = {"AIMC_PLACEMENT": str(pl_file), "AIMC_DIGITS_IMAGES": str(int(images)), "AIMC_DIGITS_WEIGHTS": weights,
           "AIMC_EMU_SIGMA": str(int(sigma)), "AIMC_EMU_SEED": str(int(emu_seed)), "AIMC_EMU_FAULT": str(int(fault)),
           "AIMC_T_INF": repr(float(t_inf_s)), "AIMC_NETWORK": network_ref(network or placement.network_name)}
    tests = ["test_proto_network"] + (["test_proto_irq_error"] if irq_error else [])
    if cnn:  # the CNN test reads tb.test_top_cosim._cnn's variables
        env |= {"AIMC_CNN_IMAGES": str(int(images)), "AIMC_CNN_WEIGHTS": weights, "AIMC_CNN_T_INF": repr(float(t_inf_s)),
                "AIMC_EMU_FAULT_IMAGES": str(int(fault_images))}
        tests = ["test_proto_cnn_network"]
    outs = run_cocotb_tests(sim, src, PROTO_NAME, "tb.test_proto_cosim", build_dir, tests, arch=arch, changes={},
                            seed=seed, waves=waves, extra_env=env, libs=[sim_model])
    if not outs[tests[0]].data:
        raise CosimNetworkError(f"co-simulation of '{placement.network_name}' on the prototype gave no result: "
                                f"{outs[tests[0]].message}")
    return {t: dict(o.data) | {"passed": o.passed, "message": o.message, "wall_s": o.wall_s} for t, o in outs.items()}


def _phase_ok(o: dict) -> bool:
    return (o["mismatches"] == 0 and o["compared"] == o["expected_outputs"] and o["tap_mismatches"] == 0
            and o["tap_compared"] > 0 and o["extra_outputs"] == 0 and o["format_errors"] == 0 and o["axil_errors"] == 0
            and not any(o["flags"].values()))


def proto_accuracy_line(d: dict) -> str:
    """The "top-1 accuracy" line of a prototype report (:func:`prototype_report_lines`,
    :func:`tb.cnn_env.proto_cnn_report_lines`): noise off, noise on and the model with the Python arrays, from one
    test's result ``d`` (``labels``, ``off``/``on`` with ``top1_rtl`` and ``scores``, ``top1_analog_model``,
    ``analog_model_scores``)."""
    n, labels = d["images"], np.asarray(d["labels"])
    top1 = {k: np.asarray(d[k]["top1_rtl"]) for k in ("off", "on") if k in d}
    acc = {k: float(np.mean(v == labels)) for k, v in top1.items()}
    analog_top1 = np.asarray(d["top1_analog_model"])
    same_scores = int(np.all(np.asarray(d["off"]["scores"]) == np.asarray(d["analog_model_scores"]), axis=1).sum())
    return ("top-1 accuracy (from the scores read off m_axis): noise off {:.4f}".format(acc["off"]) +
            (f", noise on {acc['on']:.4f} (difference {acc['on'] - acc['off']:+.4f}; top-1 equal on "
             f"{int((top1['on'] == top1['off']).sum())}/{n} images)" if "on" in acc else "") +
            f"; the model with the Python arrays {float(np.mean(analog_top1 == labels)):.4f} (its scores equal "
            f"the noise-off emulator's on {same_scores}/{n} images, top-1 on "
            f"{int((analog_top1 == top1['off']).sum())}/{n})")


def prototype_report_lines(outs: dict) -> tuple[bool, list[str]]:
    """``(ok, lines)``: the ``aimc cosim --images N --emulate-arrays`` report of one :func:`cosim_prototype` result.

    ``ok``: every phase passed its test, the noise-off run (and the noise-on run) bit-exact against the
    emulator golden with every score and mirrored fc2 output compared, the done interrupt seen, the fault
    located at fc2 (the home tile of the faulted tile's chain, the faulted column only), the error interrupt seen.
    """
    from archmodel.golden.emulator import noise_variance

    d = outs["test_proto_network"]
    n, off = d["images"], d.get("off")
    if off is None:
        return False, [f"FAILED: {d['message']}"]
    ok = d["passed"] and _phase_ok(off) and off["irq_rise_after_last_score"] is not None
    lines = [
        f"{d['name']}, FPGA prototype (aimc_prototype: the co-processor + one PCM array emulator per array port): "
        f"{n} images, seed {d['seed']}, weights {d['weights']}",
        f"emulators: conductance codes of each tile's programmed matrix at t = {d['t_inf_s']:g} s (8-bit codes, ADC "
        f"shift {sorted(set(d['shifts'].values()))} on tiles {sorted(int(t) for t in d['shifts'])}), written over "
        f"AXI4-Lite: {d['emulator_writes']} writes, {d['emulator_program_cycles']} cycles",
        f"noise off: {'MATCH' if _phase_ok(off) else 'MISMATCH'} against the golden run with the emulator model's ADC "
        f"codes: class scores {off['compared']}/{off['expected_outputs']} compared, {off['mismatches']} mismatches; fc2 "
        f"outputs (mirrored to the host) {off['tap_compared']} compared, {off['tap_mismatches']} mismatches",
    ]
    if "on" in d:
        on = d["on"]
        ok = ok and _phase_ok(on)
        lines.append(f"noise on (sigma {d['sigma']}, std {math.sqrt(noise_variance(d['sigma'])):.2f} ADC LSB, seed "
                     f"{d['emu_seed']} + tile): {'MATCH' if _phase_ok(on) else 'MISMATCH'} against the emulator model "
                     f"with the same seed: class scores {on['compared']}/{on['expected_outputs']} compared, "
                     f"{on['mismatches']} mismatches; fc2 outputs {on['tap_compared']} compared, "
                     f"{on['tap_mismatches']} mismatches")
    lines.append(proto_accuracy_line(d))
    lines.append(f"cycles: {off['cycles']} from the first input to the last score ({off['cycles'] / n:.1f} per image); "
                 f"configuration {off['writes']} AXI4-Lite writes + the weight stream, {off['config_cycles']} cycles")
    lines.append(f"interrupt: irq rose {off['irq_rise_after_last_score']} cycles after the last score was taken "
                 f"(IRQ_STATUS {off['irq_status']:#x} = DONE), low again after the W1C clear "
                 f"({off['irq_after_clear']})")
    if "fault" in d:
        f = d["fault"]
        located = f["tap_mismatch_at"] == [[f["home_tag"], f["col"]]]
        ok = ok and located and f["mismatches"] + f["tap_mismatches"] > 0
        lines.append(f"fault: code ({f['row']}, {f['col']}) of tile {f['tile']}'s emulator changed over the bus "
                     f"{f['code'][0]} -> {f['code'][1]} after programming (golden untouched): fc2 outputs "
                     f"{f['tap_mismatches']} mismatches, at (home tile tag, column) {f['tap_mismatch_at']}; class scores "
                     f"{f['mismatches']} mismatches -> " + ("located at fc2, column " + str(f["col"]) if located
                                                           else "NOT located"))
    e = outs.get("test_proto_irq_error")
    if e is not None:
        e_ok = e["passed"] and e.get("irq_level") == 1
        ok = ok and e_ok
        lines.append(f"error interrupt: tile 0 started with K = 0 -> err_config {e.get('tc_status', {}).get('err_config')}, "
                     f"irq rose {e.get('irq_rise_after_start_write')} cycles after the start write's response, "
                     f"IRQ_STATUS {e.get('status', 0):#x} = ERROR" + ("" if e_ok else f"; FAILED: {e['message']}"))
    if not d["passed"]:
        lines.append(f"FAILED: {d['message']}")
    lines.append(f"wall {d['wall_s']:.1f} s (simulation of all phases)")
    return ok, lines


def report_lines(d: dict) -> list[str]:
    """The ``aimc cosim --images`` report of one :func:`cosim_network` result."""
    n = d["images"]
    ok = d["passed"] and d["mismatches"] == 0 and d["compared"] == d["expected_outputs"]
    lines = [
        f"{d['name']}: {n} images, seed {d['seed']}, weights {d['weights']}, drift t = {d.get('t_inf_s', 0.0):g} s "
        "after programming",
        f"{'MATCH' if ok else 'MISMATCH'}: class scores {d['compared']}/{d['expected_outputs']} compared, "
        f"{d['mismatches']} mismatches; first-layer outputs (DAC codes of the analog tiles) "
        f"{d['dac_compared']} compared, {d['dac_mismatches']} mismatches; analog-layer outputs (mirrored to the "
        f"host) {d['tap_compared']} compared, {d['tap_mismatches']} mismatches",
        f"top-1 accuracy: RTL {d['accuracy_rtl']:.4f} (from the scores read off m_axis), model "
        f"{d['accuracy_model']:.4f}; top-1 equal on {sum(a == b for a, b in zip(d['top1_rtl'], d['top1_model'], strict=True))}"
        f"/{n} images",
        "cycles per image (simulated vs mapper-predicted):",
    ]
    dig = iter(d["digital_cycles"])
    lanes = d["mac_lanes"]
    for name, kind, pred, (k, c) in zip(d["layer_names"], d["layer_kinds"], d["predicted_cycles"],
                                         d["layer_shapes"], strict=True):
        if kind == "digital":
            sim_c = next(dig) / n
            diff = (sim_c - pred) / pred
            mac = k * -(-c // lanes)
            why = (f"{mac} MAC cycles = K {k} x ceil({c} / {lanes} lanes) groups" +
                   (f" (the mapper predicts {pred})" if mac != pred else "") +
                   f", + {sim_c - mac:g} cycles pipeline drain per run (4 MAC + 6 requantize stages + results out; "
                   "the slots alternate per image, each run drains)")
            note = ("within 5 %; " if abs(diff) <= 0.05 else "differs by more than 5 %: ") + why
            lines.append(f"  {name:6s} digital  {sim_c:8.1f} vs {pred:6d}  ({diff:+.1%}; {note})")
        else:
            span = d.get("analog_span_cycles")
            lines.append(f"  {name:6s} analog   {'n/a':>8s} vs {pred:6d}  (the mapper's figure is its stage time per "
                         "vector, which this pipeline never exercises back to back; measured instead: "
                         + (f"{span:.1f} cycles latency per image" if span else "no latency") +
                         " from the last of its tiles' MVM start to its last output mirrored to the host: "
                         "array, partial sums over the chain, 32 affine results, mesh hops)")
    lines.append(f"total: {d['cycles']} cycles from the first input to the last score ({d['cycles'] / n:.1f} per "
                 f"image; the digital datapath, the bottleneck, runs fc1 and fc3 back to back); configuration "
                 f"{d['writes']} AXI4-Lite writes + {d.get('weight_flits', 0)} weight flits over AXI4-Stream "
                 f"({d.get('weight_cycles', 0)} cycles), {d['config_cycles']} cycles")
    lines.append(f"back-pressure: input refused {d['in_stall_cycles']} cycles, output refused {d['out_stall_cycles']} "
                 f"cycles (ready low on ~30 % of cycles, seeded, at m_axis, the AXI4-Lite response channels and every "
                 f"array port); wall {d['wall_s']:.1f} s")
    if not d["passed"]:
        lines.append(f"FAILED: {d['message']}")
    return lines
