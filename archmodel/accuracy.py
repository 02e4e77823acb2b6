"""Analog inference of a trained network on PCM through the integer data path, and its options.

The Monte-Carlo experiment over draws, times and settings that uses it is
:mod:`archmodel.accuracy_experiment`.

What one evaluation does (Joshi et al., Nat. Commun. 11, 2473 (2020), Fig. 4;
docs/design.md, "Data path of one analog layer", GDC and AdaBS):

1. **Stages.** The (sequential) network is cut into stages: every matrix layer
   (conv, linear) fused with the batch-norm and ReLU that follow it, plus the
   int8 glue ops (maxpool, avgpool, flatten, ReLU), residual add / concat and
   element-wise activations as 256-entry lookup tables (:func:`activation_table`). Activations between stages are
   int8 with one real scale per stage (``x_real = x_int8 · scale``), calibrated on
   training images with the FP32 network: ``scale = max|activation| / 127``
   (the network input: ``max|x| / 127`` = 1/127 for digits).
2. **Analog stage** (one :class:`~archmodel.analog_matrix.AnalogMatrix` per layer,
   programmed from its weights, ``s = g_max / max|W|`` per layer):
   int8 → ``golden.tile_controller.dac_codes`` → PCM arrays → ADC codes → integer partial sums
   (``AnalogMatrix.mvm_partial_sums``) → affine unit (``golden.affine.affine_requantize``)
   with integer coefficients from ``golden.coefficients.quantize_affine`` of
   ``golden.coefficients.analog_affine_multiplier`` (conductance scale, DAC/ADC LSBs, GDC α,
   folded batch-norm γ/σ) and ``golden.coefficients.folded_offset`` (β − μγ/σ, bias) → int8.
   Every step after the ADC is the RTL's integer golden function; nothing is a
   float shortcut. Conv layers run one MVM per output pixel (im2col, row order of
   :func:`archmodel.golden.digital.im2col`).
3. **Digital stages** (the placement ``digital_first_last``: the chip's
   ``digital.digital_layers``, by default the first and the last matrix layer):
   ``int8`` -- weights quantized per layer to int8 (``w_scale = max|W|/127``),
   exact int8 × int8 sums (a batched int64 matmul, bit-identical to
   ``golden.digital.digital_conv2d`` / ``golden.digital.digital_linear``; a test checks it), then
   the same affine unit with ``golden.coefficients.digital_affine_multiplier``; or ``fp32`` --
   the layer in float32 on the dequantized int8 input (as the paper did), its
   output requantized to int8 (round half up, saturate) unless it is the last.
4. **Time and compensation.** After programming (``t = 0``) every analog layer
   stores its GDC reference (``calibration.gdc_reference``, the chip's
   ``calibration.gdc_input`` / ``gdc_vectors``). At each ``t_inf`` the devices
   drift (fresh read noise) and each setting is evaluated on the test set:
   ``none`` (α = 1), ``gdc`` (one α per layer), ``gdc_per_column`` (one α per
   column), ``adabs`` -- global GDC α *and* batch-norm running mean/variance
   re-estimated by running ``adabs_images`` training images through the drifted
   analog network at time t, layer after layer (each BN layer measures the
   pre-BN values, ``p · m₀ + bias`` with ``m₀`` the affine multiplier to real
   units, of images that went through the already re-estimated layers before
   it); γ, β and the weights stay. (AdaBS here includes the global α so that a
   last layer without batch norm is compensated too; assumed, documented.)
Times (docs/design.md): 1 s, 1 h, 1 day, 1 month (2,592,000 s), 1 year (31,536,000 s).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from archmodel.analog_matrix import AnalogMatrix
from archmodel.calibration import MIN_GDC_VECTORS
from archmodel.errors import AimcError
from archmodel.fixedpoint import ACT_BITS, check_range, round_shift, saturate
from archmodel.golden.affine import AffineCoefficients, affine_requantize_trusted
from archmodel.golden.coefficients import analog_affine_multiplier, folded_offset, quantize_affine
from archmodel.golden.digital import kernel_matrix
from archmodel.golden.tile_controller import dac_codes
from archmodel.network.forward import activation, forward
from archmodel.network.ir import Layer, Network, resolve_digital_layers
from archmodel.network.schema import NetworkError
from archmodel.network.windows import strided_windows, window_view
from archmodel.spec import ChipSpec

__all__ = [
    "ADABS_IMAGE_INDEX",
    "activation_table",
    "layer_inputs",
    "COMPENSATIONS",
    "PLACEMENTS",
    "TIMES_S",
    "AccuracyError",
    "AccuracyOptions",
    "NetworkInstance",
    "PreparedNetwork",
    "Stage",
    "mvm_rows",
    "tap_major_order",
    "predict_labels",
    "requantize_sum",
    "prepare",
    "setting_label",
    "with_options",
]

#: Evaluation times, (label, t_inf in s): docs/design.md / Joshi et al. 2020 Fig. 4.
TIMES_S: tuple[tuple[str, float], ...] = (
    ("1 s", 1.0), ("1 h", 3600.0), ("1 day", 86400.0), ("1 month", 2_592_000.0), ("1 year", 31_536_000.0))
#: Drift compensations.
COMPENSATIONS: tuple[str, ...] = ("none", "gdc", "gdc_per_column", "adabs")
#: Layer placements: every matrix layer on PCM, or the chip's digital layers (first/last) digital.
PLACEMENTS: tuple[str, ...] = ("all_analog", "digital_first_last")

_ACT_MAX = (1 << (ACT_BITS - 1)) - 1  # 127
#: Image index of the first AdaBS calibration image (output-noise keys; test images start at 0).
ADABS_IMAGE_INDEX = 2**24


class AccuracyError(AimcError, ValueError):
    """A network or option the accuracy evaluation cannot handle (one clear line)."""


def setting_label(placement: str, compensation: str) -> str:
    """Key of one setting, ``"<placement>/<compensation>"``."""
    return f"{placement}/{compensation}"


@dataclass(frozen=True)
class AccuracyOptions:
    """Options of one accuracy experiment.

    Members
    -------
    times_s : tuple of (label, seconds)
        Evaluation times t_inf after programming.
    compensations : tuple of str
        Subset of :data:`COMPENSATIONS`.
    placements : tuple of str
        Subset of :data:`PLACEMENTS`.
    digital_precision : str
        ``"int8"`` (digital datapath, golden integer path) or ``"fp32"`` for the
        digital layers of ``digital_first_last``.
    digital_layers : tuple of str or None
        Matrix layers kept digital by ``digital_first_last`` (``"first"``,
        ``"last"`` or names); None = the chip's ``digital.digital_layers``
        (``("first", "last")`` when that is empty).
    draws : int
        Monte-Carlo draws (>= 2 for a standard deviation).
    adabs_images : int or None
        Training images of AdaBS; None = the chip's ``calibration.adabs_images``.
    scale_images : int
        Training images used to calibrate the int8 activation scales.
    ideal_device : bool
        PCM without programming noise, drift or read noise (tests).
    only_settings : tuple of (placement, compensation) or None
        Evaluate just these settings instead of every placement × compensation.
    adc_range : str or None
        ``"per_layer"`` or ``"fixed"`` (``archmodel.calibration``, "ADC range");
        None = the chip's ``calibration.adc_range``.
    gdc_reference : str
        ``"measured"`` (read the array at t = 0, the chip's procedure) or ``"exact"``
        (noise-free reference from the target weights; ``archmodel.calibration``).
    calibration_images : int
        Training images whose int8 activations range the ADCs and drive GDC
        (every output pixel of a conv layer is one GDC vector).
    """

    times_s: tuple[tuple[str, float], ...] = TIMES_S
    compensations: tuple[str, ...] = COMPENSATIONS
    placements: tuple[str, ...] = PLACEMENTS
    digital_precision: str = "int8"
    digital_layers: tuple[str, ...] | None = None
    draws: int = 10
    adabs_images: int | None = None
    scale_images: int = 512
    ideal_device: bool = False
    only_settings: tuple[tuple[str, str], ...] | None = None
    adc_range: str | None = None
    gdc_reference: str = "measured"
    calibration_images: int = 128

    def __post_init__(self) -> None:
        if self.adc_range not in (None, "per_layer", "fixed"):
            raise AccuracyError(f"adc_range must be 'per_layer' or 'fixed', got {self.adc_range!r}")
        if self.gdc_reference not in ("measured", "exact"):
            raise AccuracyError(f"gdc_reference must be 'measured' or 'exact', got {self.gdc_reference!r}")
        if self.calibration_images < MIN_GDC_VECTORS:
            raise AccuracyError(f"calibration_images must be >= {MIN_GDC_VECTORS} (GDC vectors per layer), "
                                f"got {self.calibration_images}")
        for c in self.compensations:
            if c not in COMPENSATIONS:
                raise AccuracyError(f"unknown compensation {c!r}; expected one of {', '.join(COMPENSATIONS)}")
        for p in self.placements:
            if p not in PLACEMENTS:
                raise AccuracyError(f"unknown placement {p!r}; expected one of {', '.join(PLACEMENTS)}")
        if self.digital_precision not in ("int8", "fp32"):
            raise AccuracyError(f"digital_precision must be 'int8' or 'fp32', got {self.digital_precision!r}")
        if self.draws < 1:
            raise AccuracyError(f"draws must be >= 1, got {self.draws}")
        if not self.times_s or any(not (math.isfinite(t) and t >= 0) for _, t in self.times_s):
            raise AccuracyError("times_s must be a non-empty list of times >= 0 s")
        if self.adabs_images is not None and self.adabs_images < 2:
            raise AccuracyError(f"adabs_images must be >= 2, got {self.adabs_images}")
        if self.scale_images < 1:
            raise AccuracyError(f"scale_images must be >= 1, got {self.scale_images}")

        for p, c in self.only_settings or ():
            if p not in PLACEMENTS or c not in COMPENSATIONS:
                raise AccuracyError(f"unknown setting ({p!r}, {c!r})")

    @property
    def settings(self) -> list[tuple[str, str]]:
        """(placement, compensation) pairs evaluated, in report order."""
        if self.only_settings is not None:
            return list(self.only_settings)
        return [(p, c) for p in self.placements for c in self.compensations]


# ----------------------------------------------------------------------------- stages
@dataclass
class Stage:
    """One step of the integer inference: a matrix layer (with its folded BN / fused ReLU), a pool, add, concat or reshape."""

    kind: str   # "matrix", "add", "concat", "lut", "maxpool", "avgpool", "global_avgpool", "flatten", "relu", "identity"
    layer: Layer
    bn: Layer | None = None
    relu: bool = False
    out_name: str = ""               # last IR layer of the stage (its output scale)
    matrix_index: int = -1
    inputs: tuple[str, ...] = ()     # IR layers the stage reads (default: ``layer.inputs``)

    def __post_init__(self) -> None:
        self.inputs = self.inputs or tuple(self.layer.inputs)


#: Stages whose int8 output has its own calibrated scale; every other stage passes its input's scale on.
_RESCALING = ("matrix", "add", "concat", "lut")


def _build_stages(network: Network) -> list[Stage]:
    """Fuse the layers into stages, in layer (topological) order; branches and merges allowed.

    A batch-norm (and then a ReLU) is fused into the stage before it only when it
    is the one reader of that stage's output; a ReLU is fused into an add/concat
    the same way.
    """
    layers = network.layers
    readers: dict[str, int] = {}
    for layer in layers:
        for name in layer.inputs:
            readers[name] = readers.get(name, 0) + 1

    def fusable(j: int, op: str) -> bool:
        prev = layers[j - 1].name
        return (j < len(layers) and layers[j].op == op and layers[j].inputs == (prev,) and readers.get(prev) == 1
                and (op != "activation" or layers[j].attrs["kind"] == "relu"))

    stages: list[Stage] = []
    i, m = 1, 0
    while i < len(layers):
        layer = layers[i]
        if layer.is_matrix_layer:
            st = Stage("matrix", layer, matrix_index=m)
            m += 1
            j = i + 1
            if fusable(j, "batchnorm"):
                st.bn = layers[j]
                j += 1
            if fusable(j, "activation"):
                st.relu = True
                j += 1
            st.out_name = layers[j - 1].name
            stages.append(st)
            i = j
        elif layer.op in ("add", "concat"):
            st = Stage(layer.op, layer)
            j = i + 1
            if fusable(j, "activation"):
                st.relu = True
                j += 1
            st.out_name = layers[j - 1].name
            stages.append(st)
            i = j
        elif layer.op in ("maxpool", "avgpool", "global_avgpool", "flatten"):
            stages.append(Stage(layer.op, layer, out_name=layer.name))
            i += 1
        elif layer.op == "activation" and layer.attrs["kind"] in ("relu", "identity"):
            stages.append(Stage(layer.attrs["kind"], layer, out_name=layer.name))
            i += 1
        elif layer.op == "activation" and layer.attrs["kind"] != "softmax":  # element-wise: a 256-entry table
            stages.append(Stage("lut", layer, out_name=layer.name))
            i += 1
        elif layer.op == "reshape":  # int8 codes keep their order (C-order reshape of each image)
            stages.append(Stage("reshape", layer, out_name=layer.name))
            i += 1
        else:
            what = layer.op if layer.op != "activation" else f"activation {layer.attrs['kind']}"
            hint = " (batch-norm must follow a conv/linear layer)" if layer.op == "batchnorm" else ""
            raise AccuracyError(f"layer {layer.name!r}: {what} is not supported by the int8 accuracy evaluation"
                                + hint)
    if m == 0:
        raise AccuracyError(f"network {network.name!r} has no conv or linear layer")
    return stages


def _resolve_digital(names: Sequence[str], matrix_layers: list[Layer]) -> set[int]:
    try:
        return resolve_digital_layers(names, matrix_layers)
    except NetworkError as exc:
        raise AccuracyError(f"digital layer {exc.layer!r} is not a conv/linear layer of the network "
                            f"(expected 'first', 'last' or one of {', '.join(l.name for l in matrix_layers)})") from None


# ----------------------------------------------------------------------------- preparation
@dataclass
class PreparedNetwork:
    """Everything a draw needs that does not depend on the draw (deterministic).

    Members
    -------
    spec, network, options
    params : dict
        Trained float32 parameters ``{layer: {param: array}}``.
    stages : list
        Fused stages (see module docstring).
    scales : dict
        Real value of one int8 step at the input (key ``network.input_name``) and
        after every stage (key: the stage's last IR layer).
    digital : set of int
        Matrix-layer indices kept digital by ``digital_first_last``.
    x_adabs : ndarray
        Training images of AdaBS.
    matrices : list of ndarray
        (K, N) float64 weight matrix per matrix layer.
    cal_rows : list of ndarray
        Per matrix layer: int8 MVM input rows (B, K) of the calibration images on
        the all-int8 digital network (ADC ranging and GDC vectors; assumed as the
        chip's calibration activations -- the analog layers before it would add
        their noise).
    adc_range : str
        ``"per_layer"`` or ``"fixed"`` in effect.
    calibration_index, adabs_index : ndarray of int
        Indices (into ``train_index`` of :func:`prepare`, i.e. the data set) of the
        calibration and AdaBS images.
    w_int8 : dict
        Cache: matrix-layer index -> (int8 weights as float64 (K, N), weight scale) of
        the int8 digital layers (filled on first use).
    coeff_cache : dict
        Cache of :meth:`NetworkInstance.run`'s per-layer multipliers and affine
        coefficients, keyed by every input they are computed from (a pure cache: the
        same settings at several times, digital layers, repeated draws' ``none``
        setting meet the same inputs; cleared beyond 4,096 entries).
    """

    spec: ChipSpec
    network: Network
    params: dict[str, dict[str, np.ndarray]]
    options: AccuracyOptions
    stages: list[Stage]
    scales: dict[str, float]
    digital: set[int]
    x_adabs: np.ndarray
    matrices: list[np.ndarray] = field(default_factory=list)   # (K, N) float64 weight matrix per matrix layer
    cal_rows: list[np.ndarray] = field(default_factory=list)
    adc_range: str = "fixed"
    calibration_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    adabs_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    w_int8: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict, repr=False)
    coeff_cache: dict[tuple, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def matrix_layers(self) -> list[Layer]:
        return [s.layer for s in self.stages if s.kind == "matrix"]


def prepare(spec: ChipSpec, network: Network, params: Mapping[str, Mapping[str, np.ndarray]],
            x_train: np.ndarray, options: AccuracyOptions | None = None,
            train_index: np.ndarray | None = None) -> PreparedNetwork:
    """Fuse the stages and calibrate the int8 activation scales on training images.

    Parameters
    ----------
    spec : ChipSpec
    network : Network
        Sequential network (conv/linear [+ batchnorm] [+ relu], pools, flatten).
    params : mapping
        Trained parameters for every conv, linear and batchnorm layer.
    x_train : ndarray, (N, \\*input_shape)
        Training images: the first ``scale_images`` calibrate the activation
        scales, the first ``adabs_images`` are the AdaBS calibration set.
    options : AccuracyOptions, optional
    train_index : ndarray of int, (N,), optional
        Data-set index of every training image (for the report; default 0..N-1).
        The first ``calibration_images`` are the calibration images.

    Raises
    ------
    AccuracyError
        Unsupported network, unknown digital layer, missing parameters.
    """
    opts = options or AccuracyOptions()
    stages = _build_stages(network)
    p = {k: {kk: np.asarray(vv, dtype=np.float32) for kk, vv in v.items()} for k, v in params.items()}
    for layer in network.layers:
        if layer.is_matrix_layer and "weight" not in p.get(layer.name, {}):
            raise AccuracyError(f"layer {layer.name!r} has no trained weight")
    x_train = np.asarray(x_train, dtype=np.float32)
    acts = forward(network, x_train[: opts.scale_images], p, return_all=True)
    scales: dict[str, float] = {}
    for name in [network.input_name] + [s.out_name for s in stages if s.kind in _RESCALING]:
        m = float(np.max(np.abs(acts[name])))
        scales[name] = m / _ACT_MAX if m > 0 else 1.0
    for st in stages:  # pools, flatten, ReLU: int8 codes unchanged in meaning, the input's scale
        if st.kind not in _RESCALING:
            scales[st.out_name] = scales[st.inputs[0]]
    matrix_layers = [s.layer for s in stages if s.kind == "matrix"]
    names = opts.digital_layers if opts.digital_layers is not None else (spec.digital.digital_layers or ("first", "last"))
    digital = _resolve_digital(names, matrix_layers)
    n_adabs = opts.adabs_images if opts.adabs_images is not None else spec.calibration.adabs_images
    mats = [_full_matrix(l, p[l.name]["weight"]) for l in matrix_layers]
    idx = np.arange(len(x_train)) if train_index is None else np.asarray(train_index, dtype=np.int64)
    n_cal = min(opts.calibration_images, len(x_train))
    prep = PreparedNetwork(spec, network, p, opts, stages, scales, digital, x_train[:n_adabs], mats,
                           adc_range=opts.adc_range or spec.calibration.adc_range,
                           calibration_index=idx[:n_cal].copy(), adabs_index=idx[:n_adabs].copy())
    prep.cal_rows = layer_inputs(prep, x_train[:n_cal], ["int8"] * len(mats), [None] * len(mats))
    return prep


def layer_inputs(prep: PreparedNetwork, x: np.ndarray, modes: list[str],
                 matrices: list[AnalogMatrix | None]) -> list[np.ndarray]:
    """int8 MVM input rows (B·P, K) of every matrix layer when ``x`` runs through the network in ``modes``."""
    n = len(prep.matrices)
    inst = NetworkInstance(prep, modes, matrices, [1.0] * n)
    captured: dict[int, np.ndarray] = {}
    original = inst._accumulate

    def spy(k: int, st: Stage, x_int: np.ndarray, image_index: int) -> tuple[np.ndarray, int]:
        captured[k] = mvm_rows(st.layer, x_int)[0]
        return original(k, st, x_int, image_index)

    inst._accumulate = spy  # type: ignore[method-assign]
    inst.run(x)
    return [captured[k] for k in range(n)]


def _full_matrix(layer: Layer, weight: np.ndarray) -> np.ndarray:
    """(K, N) float64 matrix of a layer on the :func:`mvm_rows` rows (tap-major); a grouped conv is block-diagonal.

    conv: ``W[(i·kw + j)·C + c, o] = w[o, c - g·C_g, i, j]`` when input channel
    ``c`` and output ``o`` are in the same group ``g`` (``C_g = C/groups``), else 0
    (one matrix per layer, programmed with zero conductance there; assumed,
    docs/design.md); with one group it is
    :func:`archmodel.golden.digital.kernel_matrix`. linear: ``weight.T``.
    """
    if layer.op == "linear":
        return np.asarray(layer.weight_matrix(weight=weight), dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    if layer.groups == 1:
        return kernel_matrix(w)
    kh, kw = layer.attrs["kernel_size"]
    c, n, g_count = layer.in_channels, layer.out_channels, layer.groups
    cg, ng = c // g_count, n // g_count
    out = np.zeros((kh, kw, c, n))
    for g in range(g_count):
        out[:, :, g * cg:(g + 1) * cg, g * ng:(g + 1) * ng] = w[g * ng:(g + 1) * ng].transpose(2, 3, 1, 0)
    return out.reshape(kh * kw * c, n)


def activation_table(layer: Layer, in_scale: float, out_scale: float) -> np.ndarray:
    """The 256-entry int8 → int8 table of an element-wise activation (index ``code + 128``).

    ``table[c + 128] = saturate(round_half_up(f(c · in_scale) / out_scale))`` with
    ``f`` the float reference (:func:`archmodel.network.forward.activation`), in
    float64 (docs/design.md, "Grouped and dilated convolutions, other activations": a lookup table in the
    digital periphery; assumed).
    """
    codes = np.arange(-128, 128, dtype=np.float64)
    return _quantize_act(activation(codes * in_scale, layer.attrs), out_scale)


# ----------------------------------------------------------------------------- integer helpers
def _quantize_act(x: np.ndarray, scale: float) -> np.ndarray:
    """Real -> int8: round half up, saturate to [-128, 127]."""
    return np.clip(np.floor(np.asarray(x, dtype=np.float64) / scale + 0.5), -128, 127).astype(np.int8)


def _pool_int(x: np.ndarray, layer: Layer, kind: str) -> np.ndarray:
    kh, kw = layer.attrs["kernel"]
    sh, sw = layer.attrs["stride"]
    pt, pl, pb, pr = layer.attrs["padding"]
    _, ho, wo = layer.output_shape
    fill = -128 if kind == "maxpool" else 0
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill) if pt or pb or pl or pr else x
    # the kh·kw taps as strided views of the padded map (no window copy): max of int8 exactly in int8,
    # sums in int64 -- the same integers as the max / sum over the windows
    taps = [xp[..., i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw] for i in range(kh) for j in range(kw)]
    if kind == "maxpool":
        out = np.array(taps[0], dtype=np.int8)
        for t in taps[1:]:
            np.maximum(out, t, out=out)
        return out
    total = taps[0].astype(np.int64)
    for t in taps[1:]:
        total += t
    if layer.attrs["count_include_pad"]:
        count = np.full(total.shape[-2:], kh * kw, dtype=np.int64)
    else:
        ones = np.pad(np.ones(x.shape[2:], dtype=np.int64), ((pt, pb), (pl, pr)))
        count = strided_windows(ones, (kh, kw), (sh, sw), (1, 1), (ho, wo)).sum(axis=(0, 1))
    return ((2 * total + count) // (2 * count)).astype(np.int8)  # round half up of the mean (assumed)


def _key(value: Any) -> tuple:
    """A hashable key of a float or an ndarray's exact value (dtype, shape, bytes); None stays None."""
    if value is None:
        return (None,)
    a = np.asarray(value)
    return (a.dtype.str, a.shape, a.tobytes())


def _affine_by_table(acc: np.ndarray, coeff: Any, levels: int) -> np.ndarray:
    """``affine_requantize_trusted(acc, coeff...).astype(int8)`` for accumulators in ``[-levels, levels)``, by lookup.

    The affine unit's output depends only on (accumulator value, column); with
    ``acc`` one array's ADC codes there are ``2·levels`` values per column, so the
    table ``T[col, a + levels]`` is the same arithmetic
    (:func:`archmodel.golden.affine.affine_requantize_trusted`) applied to every
    possible value, and the layer's output is one gather from it: the same
    integers (bit-identical by construction) for 2 passes over the (B, N)
    accumulators instead of 6. The caller guarantees the range (ADC saturation).

    Parameters
    ----------
    acc : ndarray of int64, (B, N)
        ADC codes in ``[-levels, levels)``.
    coeff : AffineCoefficients
        Per-column ``scale``, ``offset`` (N,), ``shift``, ``relu``.
    levels : int
        ``2^(adc_bits-1)``.

    Returns
    -------
    ndarray of int8, (B, N)
    """
    flat, base = _affine_table(coeff, levels, acc.shape[-1])
    # every index is in range by construction (the caller's guarantee): mode "wrap" skips take's error path
    return flat.take(acc + base, mode="wrap")


def _affine_table(coeff: Any, levels: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The table of :func:`_affine_by_table`: ``(flat, base)`` with ``flat[col · 2·levels + a + levels]`` the
    affine unit's int8 output for accumulator value ``a`` in column ``col`` (``flat`` int8, (2·levels·n,)),
    ``base = col · 2·levels + levels`` (int64, (n,)). A pure function of (coeff, levels, n): the evaluator
    caches it with the coefficients."""
    codes = np.broadcast_to(np.arange(-levels, levels, dtype=np.int64)[:, None], (2 * levels, n))
    table = affine_requantize_trusted(codes, coeff.scale, coeff.offset, coeff.shift, coeff.relu).astype(np.int8)
    # flat index of (a, col) in table.T: col · 2·levels + a + levels
    return table.T.ravel(), np.arange(levels, levels + 2 * levels * n, 2 * levels, dtype=np.int64)


def requantize_sum(xs: Sequence[np.ndarray], in_scales: Sequence[float], out_scale: float, *, relu: bool,
                   scale_bits: int, max_shift: int) -> np.ndarray:
    """Residual add (or one concat piece) of int8 tensors with different scales, as the affine unit does it.

    The rule (docs/design.md, "Residual adds and concat"): the real factors
    ``m_i = in_scale_i / out_scale`` are quantized together by
    :func:`archmodel.golden.coefficients.quantize_affine` (one shift, one
    ``scale_bits`` integer ``q_i`` per input, no offset); then, exactly in integers,
    ``acc = Σ_i q_i · x_i``, ``acc = max(acc, 0)`` if ``relu``, and
    ``out = saturate(round_shift(acc, shift), 8)`` (round half up,
    :func:`archmodel.fixedpoint.round_shift`) -- the affine unit's
    multiply / add / shift / round / saturate / ReLU sequence
    (:func:`archmodel.golden.affine.affine_requantize`) with the second addend in
    place of the offset.

    Parameters
    ----------
    xs : sequence of int8 ndarray, equal shapes
    in_scales : sequence of float
        Real value of one int8 step of every input.
    out_scale : float
        Real value of one int8 step of the output.
    relu : bool
    scale_bits, max_shift : int
        Affine-unit scale width and largest shift.

    Returns
    -------
    ndarray of int8, the shape of ``xs[0]``
    """
    coeff = quantize_affine(np.asarray(in_scales, np.float64) / out_scale, 0.0, scale_bits=scale_bits,
                            max_shift=max_shift)
    acc = np.zeros(np.shape(xs[0]), dtype=np.int64)
    for q, x in zip(coeff.scale, xs, strict=True):
        acc = acc + int(q) * np.asarray(x, dtype=np.int64)
    if relu:
        acc = np.maximum(acc, 0)
    return saturate(round_shift(acc, coeff.shift), ACT_BITS).astype(np.int8)


def tap_major_order(layer: Layer) -> np.ndarray | None:
    """Row permutation from the float reference's channel-major rows to the chip's tap-major rows.

    Row ``(i·kw + j)·C + c`` of the tap-major matrix (:func:`_full_matrix`,
    :func:`archmodel.golden.digital.kernel_matrix`) is row ``perm[(i·kw + j)·C + c]
    = (c·kh + i)·kw + j`` of the channel-major one
    (:meth:`archmodel.network.ir.Layer.weight_matrix`, ``windows.im2col``), so
    ``W_tap = W_channel_major[perm]`` and ``mvm_rows(..., tap_major=False)[:, perm]
    == mvm_rows(...)``. None for a linear layer (no windows). The accuracy path no
    longer needs it (its matrices are tap-major); for testbenches that build a
    matrix in the channel-major order.
    """
    if layer.op == "linear":
        return None
    kh, kw = layer.attrs["kernel_size"]
    c = layer.in_channels  # all input channels: a grouped conv's rows span every group (_full_matrix)
    return np.arange(c * kh * kw).reshape(c, kh * kw).T.reshape(-1)


#: Reused buffers of :func:`mvm_rows` with ``_scratch_rows=True`` (key: shape, dtype; a pure cache of
#: allocations: fresh multi-MB arrays cost page faults on every call; at most _SCRATCH_MAX kept, none above
#: _SCRATCH_BYTES). One evaluation per process at a time (the accuracy workers are processes, not threads).
_ROWS_SCRATCH: dict[tuple, np.ndarray] = {}
_SCRATCH_MAX = 16
_SCRATCH_BYTES = 64 << 20


def _scratch(shape: tuple[int, ...], dtype: Any, zero: bool) -> np.ndarray:
    """A reused buffer of ``shape``/``dtype`` (zero-filled when first made if ``zero``)."""
    key = (shape, np.dtype(dtype).str, zero)
    buf = _ROWS_SCRATCH.get(key)
    if buf is None:
        if math.prod(shape) * np.dtype(dtype).itemsize > _SCRATCH_BYTES:
            return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
        if len(_ROWS_SCRATCH) >= _SCRATCH_MAX:
            _ROWS_SCRATCH.pop(next(iter(_ROWS_SCRATCH)))
        buf = _ROWS_SCRATCH[key] = np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    return buf


def mvm_rows(layer: Layer, x: np.ndarray, dtype: Any = None, *, tap_major: bool = True,
             _scratch_rows: bool = False) -> tuple[np.ndarray, int]:
    """MVM input rows (B·P, K) in the chip's tap-major im2col order, and P (output pixels per image).

    Row ``b·P + oh·W_out + ow`` holds image b's window at (oh, ow); column
    ``(i·kw + j)·C + c`` (kernel tap outermost, input channel innermost; ``C =
    layer.in_channels``, all groups: a grouped conv is one block-diagonal matrix,
    :func:`_full_matrix`) -- the order of :func:`archmodel.golden.digital.im2col`
    (a test checks it) and of the rows of every conv matrix on the chip
    (docs/design.md §4.8, "im2col order"), built with one copy from
    :func:`archmodel.network.windows.window_view`. ``dtype`` (default: ``x``'s):
    the rows' dtype; the (small) input is cast before the windows are copied, so
    the rows are written once, already in the dtype the matmul needs (a pure
    gather: exact for integer codes). ``tap_major=False``: the channel-major
    columns ``(c·kh + i)·kw + j`` of the float reference
    (:func:`archmodel.network.windows.im2col`), for comparisons only.
    ``_scratch_rows`` (private, the evaluator's ``_accumulate_now``): tap-major rows
    written into reused buffers (module-level, bounded) -- the result is overwritten
    by the next such call, so only a caller that consumes it at once may ask.

    Returns
    -------
    rows : ndarray, (B·P, K)
    p : int
        Output pixels per image (1 for a linear layer).
    """
    if layer.op == "linear":
        x = x if dtype is None else x.astype(dtype, copy=False)
        return x.reshape(x.shape[0], -1), 1
    a = layer.attrs
    kh, kw = a["kernel_size"]
    sh, sw = a["stride"]
    dh, dw = a["dilation"]
    pt, pl, pb, pr = a["padding"]
    _, ho, wo = layer.output_shape
    n, c, h, w = x.shape
    if tap_major:
        dt = x.dtype if dtype is None else dtype
        xt_shape = (n, h + pt + pb, w + pl + pr, c)
        # _scratch_rows (the accuracy evaluator, which consumes the rows at once): both arrays reused across
        # calls; the padded map's border is never written, so it stays zero
        xt = _scratch(xt_shape, dt, True) if _scratch_rows else np.zeros(xt_shape, dtype=dt)
        xt[:, pt:pt + h, pl:pl + w, :] = x.transpose(0, 2, 3, 1)  # channels-last: the copy below is ~4x faster
        win = window_view(np.moveaxis(xt, 3, 1), (kh, kw), (sh, sw), (dh, dw), (ho, wo))  # (N, C, Ho, Wo, kh, kw)
        win = win.transpose(0, 2, 3, 4, 5, 1)
        if _scratch_rows:
            rows = _scratch(win.shape, dt, False)
            np.copyto(rows, win)
        else:
            rows = np.ascontiguousarray(win)
        return rows.reshape(n * ho * wo, c * kh * kw), ho * wo
    xp = np.zeros((n, c, h + pt + pb, w + pl + pr), dtype=x.dtype if dtype is None else dtype)
    xp[:, :, pt:pt + h, pl:pl + w] = x  # zero padding and the dtype cast in one pass
    win = window_view(xp, (kh, kw), (sh, sw), (dh, dw), (ho, wo))  # (N, C, Ho, Wo, kh, kw)
    rows = np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * ho * wo, c * kh * kw)
    return rows, ho * wo


def mvm_unrows(layer: Layer, y: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`mvm_rows`: MVM outputs (n·H·W, C) back to (n, C, H, W) for a conv, unchanged for linear."""
    if layer.op == "linear":
        return y
    c, ho, wo = layer.output_shape
    return y.reshape(n, ho * wo, c).transpose(0, 2, 1).reshape(n, c, ho, wo)


# ----------------------------------------------------------------------------- one network instance
class NetworkInstance:
    """The network on one draw's hardware at one time, with one compensation."""

    def __init__(self, prep: PreparedNetwork, modes: list[str], matrices: list[AnalogMatrix | None],
                 alphas: list[np.ndarray | float], memo: dict | None = None) -> None:
        self.prep, self.modes, self.matrices, self.alphas = prep, modes, matrices, alphas
        # Accumulator values depend only on (layer, mode, input codes) while the conductances are fixed:
        # settings evaluated at the same time share them through ``memo`` (a pure cache).
        self.memo = memo
        self.bn_stats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        spec = prep.spec
        self.acc_bits_analog = spec.periphery.accumulator_bits
        self.acc_bits_digital = spec.digital.accumulator_bits
        self.w_int8: dict[int, tuple[np.ndarray, float]] = {}
        for k, mode in enumerate(modes):
            if mode == "int8":
                if k not in prep.w_int8:  # a pure function of the weights: computed once per prepared network
                    wm = prep.matrices[k]
                    ws = float(np.max(np.abs(wm))) / _ACT_MAX
                    ws = ws if ws > 0 else 1.0
                    prep.w_int8[k] = (np.clip(np.floor(wm / ws + 0.5), -128, 127), ws)  # int8 values as float64
                self.w_int8[k] = prep.w_int8[k]

    def _bn(self, st: Stage) -> tuple[np.ndarray | None, ...]:
        if st.bn is None:
            return None, None, None, None, 1e-5
        p = self.prep.params[st.bn.name]
        mean, var = self.bn_stats.get(st.bn.name, (p["mean"], p["var"]))
        return p["gamma"], p["beta"], mean, var, st.bn.attrs["eps"]

    def _real_multiplier(self, k: int, in_scale: float) -> np.ndarray:
        """Factor from accumulator units to real pre-BN units (out_scale = 1, no BN)."""
        mode = self.modes[k]
        if mode == "analog":
            a, spec = self.prep.spec.array, self.prep.spec
            return analog_affine_multiplier(
                in_scale=in_scale, out_scale=1.0, w_abs_max=self.matrices[k].w_abs_max,  # type: ignore[union-attr]
                g_max_us=spec.device.g_max_us, v_read_v=a.v_read_v, array_rows=a.rows, adc_bits=a.adc_bits,
                dac_bits=a.dac_bits, adc_full_scale_fraction=self.matrices[k].adc_full_scale_fraction,  # type: ignore[union-attr]
                gdc_alpha=self.alphas[k])
        return np.asarray(in_scale * self.w_int8[k][1])

    def _coefficients(self, st: Stage, m0: np.ndarray, bn: tuple, bias: np.ndarray | None, out_scale: float,
                      acc_bits: int) -> AffineCoefficients:
        """The affine unit's coefficients of matrix stage ``st``: multiplier ``m0`` (accumulator units to real
        pre-BN units), the batch norm ``bn`` (:meth:`_bn`) and bias folded, quantized (``quantize_affine``)."""
        gamma, beta, mean, var, eps = bn
        spec = self.prep.spec
        bn_factor = 1.0 if gamma is None else gamma / np.sqrt(np.asarray(var, np.float64) + eps)
        mult = m0 * bn_factor / out_scale
        off = folded_offset(bias, gamma, beta, mean, var, eps, out_scale=out_scale)
        mult, off = np.broadcast_arrays(np.atleast_1d(mult), np.atleast_1d(off))
        if mult.size == 1:
            mult = np.full(st.layer.out_channels, float(mult[0]))
            off = np.full(st.layer.out_channels, float(off[0]))
        return quantize_affine(mult, off, relu=st.relu, scale_bits=spec.periphery.affine_scale_bits,
                               offset_bits=spec.periphery.affine_offset_bits,
                               max_shift=min(31, acc_bits + spec.periphery.affine_scale_bits - 1))

    def _matrix_key(self, k: int) -> tuple:
        """What of layer ``k``'s analog matrix its multiplier depends on (empty for a digital layer)."""
        m = self.matrices[k]
        if self.modes[k] != "analog" or m is None:
            return ()
        return (m.adc_full_scale_fraction, _key(m.w_abs_max))

    def _cached(self, key: tuple, compute: Any, *args: Any) -> Any:
        """``compute(*args)`` through the prepared network's ``coeff_cache`` (a pure cache: ``key`` holds every
        input of ``compute`` that is not fixed per prepared network and layer)."""
        cache = self.prep.coeff_cache
        value = cache.get(key)
        if value is None:
            if len(cache) >= 4096:
                cache.clear()
            value = cache[key] = compute(*args)
        return value

    def _adc_code_sums(self, k: int) -> bool:
        """True when layer ``k``'s accumulator values are one array's ADC codes (one row block, quantizing
        periphery): every value is then in ``[-2^(adc_bits-1), 2^(adc_bits-1))`` (the ADC saturates)."""
        m = self.matrices[k]
        return m is not None and m.n_row_blocks == 1 and not m.ideal_periphery

    def _accumulate(self, k: int, st: Stage, x_int: np.ndarray, image_index: int) -> tuple[np.ndarray, int]:
        if self.memo is None:
            return self._accumulate_now(k, st, x_int, image_index)
        key = (k, self.modes[k], image_index, x_int.shape, hashlib.blake2b(np.ascontiguousarray(x_int).data).digest())
        if key not in self.memo:
            self.memo[key] = self._accumulate_now(k, st, x_int, image_index)
        return self.memo[key]

    def _accumulate_now(self, k: int, st: Stage, x_int: np.ndarray, image_index: int) -> tuple[np.ndarray, int]:
        if self.modes[k] == "analog":
            mat = self.matrices[k]
            # DAC codes of the (int8, range-checked) feature map, then the windows: the DAC map is
            # elementwise and maps the zero padding to 0, so this equals dac_codes of the im2col rows.
            dac_bits = self.prep.spec.array.dac_bits
            d = x_int if dac_bits == ACT_BITS else dac_codes(x_int, dac_bits)  # 8-bit DAC: code = x (dac_codes)
            rows, p = mvm_rows(st.layer, d, np.float64, _scratch_rows=True)  # tap-major: the matrix's row order
            # MVM of image i, output pixel q has output-noise key base + i·P + q (batch-independent)
            return mat.mvm_partial_sums_trusted(rows, image_index * p), p  # type: ignore[union-attr]
        # int8 x int8 sums in a float64 matmul: every product and partial sum is an integer
        # below K·2^14 < 2^53, so the result is exact whatever the summation order -- bit-identical
        # to golden.digital.digital_conv2d / digital_linear (tests/test_accuracy.py checks it).
        rows, p = mvm_rows(st.layer, x_int, np.float64, _scratch_rows=True)
        return (rows @ self.w_int8[k][0]).astype(np.int64), p

    def run(self, x: np.ndarray, *, adapt_bn: bool = False, image_index: int = 0,
            trace: dict | None = None) -> np.ndarray:
        """Logits (int8 codes as float, or float32 for an FP32 last layer) of a batch of images.

        With ``adapt_bn`` every batch-norm layer's statistics are measured on this
        batch (after the already adapted layers) and stored in ``bn_stats`` (AdaBS).
        ``trace`` (a dict, filled in place; read-only use, e.g. the whole-network RTL
        golden ``tb.cnn_golden``): every stage's output under its ``out_name`` (int8
        codes; the input codes under ``network.input_name``), and per int8/analog
        matrix layer ``("acc", name)`` its accumulator values (B·P, N) and
        ``("affine", name)`` its :class:`~archmodel.golden.coefficients.AffineCoefficients`.
        """
        prep = self.prep
        net = prep.network
        h: np.ndarray = _quantize_act(x, prep.scales[net.input_name])
        vals = {net.input_name: h}  # int8 codes (float logits after an FP32 last layer) of every stage output
        n = x.shape[0]
        is_float = False
        n_matrix = len(prep.matrices)
        for st in prep.stages:
            h, scale = vals[st.inputs[0]], prep.scales[st.inputs[0]]
            if st.kind in ("add", "concat"):
                h = self._merge(st, [vals[i] for i in st.inputs])
            elif st.kind == "matrix":
                k = st.matrix_index
                out_scale = prep.scales[st.out_name]
                last = k == n_matrix - 1
                layer = st.layer
                bias = prep.params[layer.name].get("bias") if layer.attrs["bias"] else None
                if self.modes[k] == "fp32":
                    xr = h.astype(np.float64) * scale if not is_float else h
                    rows, p = mvm_rows(layer, xr)
                    z = rows @ prep.matrices[k] + (0.0 if bias is None else bias)
                    if adapt_bn and st.bn is not None:
                        self.bn_stats[st.bn.name] = (z.mean(axis=0), z.var(axis=0))
                    gamma, beta, mean, var, eps = self._bn(st)
                    if gamma is not None:
                        z = (z - mean) * (gamma / np.sqrt(var + eps)) + beta
                    if st.relu:
                        z = np.maximum(z, 0.0)
                    y = z if last else _quantize_act(z, out_scale)
                    is_float = last
                    h = mvm_unrows(layer, y, n)
                else:
                    acc, p = self._accumulate(k, st, h, image_index)
                    m0 = self._cached(("m0", k, self.modes[k], float(scale), _key(self.alphas[k]),
                                       *self._matrix_key(k)), self._real_multiplier, k, scale)
                    if adapt_bn and st.bn is not None:
                        z = acc * m0 + (0.0 if bias is None else bias)
                        self.bn_stats[st.bn.name] = (z.mean(axis=0), z.var(axis=0))
                    bn = self._bn(st)
                    acc_bits = self.acc_bits_analog if self.modes[k] == "analog" else self.acc_bits_digital
                    ckey = ("coeff", k, self.modes[k], _key(m0), *(_key(v) for v in bn), _key(bias),
                            float(out_scale), st.relu, acc_bits)
                    coeff = self._cached(ckey, self._coefficients, st, m0, bn, bias, out_scale, acc_bits)
                    # operands in range by construction (ADC model, quantize_affine): the affine unit's
                    # arithmetic without re-checking them (golden.affine.affine_requantize_trusted); only a
                    # digital accumulator that int8 x int8 sums could overflow is checked (boundary).
                    if self.modes[k] != "analog" and layer.matrix_shape[0] << 14 > (1 << (acc_bits - 1)) - 1:
                        check_range(acc, acc_bits, "p")
                    if self.modes[k] == "analog" and self._adc_code_sums(k):
                        # _affine_by_table, its table cached with the coefficients (same key, same coeff)
                        flat, base = self._cached(("table", *ckey[1:]), _affine_table, coeff,
                                                  1 << (prep.spec.array.adc_bits - 1), acc.shape[-1])
                        y = flat.take(acc + base, mode="wrap")  # in range: the ADC saturates (_adc_code_sums)
                    else:
                        y = affine_requantize_trusted(acc, coeff.scale, coeff.offset, coeff.shift,
                                                      coeff.relu).astype(np.int8)
                    if trace is not None:
                        trace[("acc", layer.name)], trace[("affine", layer.name)] = acc, coeff
                    h = mvm_unrows(layer, y, n)
            elif st.kind == "lut":
                if is_float:  # after an FP32 last layer: the float function
                    h = activation(h, st.layer.attrs)
                else:
                    h = activation_table(st.layer, scale, prep.scales[st.out_name])[h.astype(np.int64) + 128]
            elif st.kind in ("maxpool", "avgpool"):
                h = _pool_int(h, st.layer, st.kind)
            elif st.kind == "global_avgpool":
                hw = h.shape[2] * h.shape[3]
                h = ((2 * h.astype(np.int64).sum(axis=(2, 3)) + hw) // (2 * hw)).astype(np.int8)
            elif st.kind == "flatten":
                h = h.reshape(n, -1)
            elif st.kind == "reshape":
                h = h.reshape((n,) + tuple(st.layer.output_shape))
            elif st.kind == "relu":
                h = np.maximum(h, 0)
            vals[st.out_name] = h
        if trace is not None:
            trace.update(vals)
        return np.asarray(h, dtype=np.float64)

    def _merge(self, st: Stage, xs: list[np.ndarray]) -> np.ndarray:
        """Add or concat stage on int8 codes (:func:`requantize_sum`)."""
        spec = self.prep.spec
        kw = {"out_scale": self.prep.scales[st.out_name], "relu": st.relu,
              "scale_bits": spec.periphery.affine_scale_bits,
              "max_shift": min(31, self.acc_bits_digital + spec.periphery.affine_scale_bits - 1)}
        in_scales = [self.prep.scales[i] for i in st.inputs]
        if st.kind == "add":
            return requantize_sum(xs, in_scales, **kw)
        axis = st.layer.attrs["axis"] % (xs[0].ndim - 1) + 1
        return np.concatenate([requantize_sum([x], [s], **kw) for x, s in zip(xs, in_scales, strict=True)],
                              axis=axis)


def predict_labels(inst: NetworkInstance, x: np.ndarray, batch: int = 1024) -> np.ndarray:
    """Top-1 labels (N,) of images ``x`` (N, C, H, W) through ``inst``, in batches (image indices key the noise)."""
    out = []
    for b0 in range(0, len(x), batch):
        logits = inst.run(x[b0:b0 + batch], image_index=b0)
        out.append(logits.argmax(axis=1))
    return np.concatenate(out)


def with_options(options: AccuracyOptions, **changes: Any) -> AccuracyOptions:
    """``dataclasses.replace`` for :class:`AccuracyOptions` (validated)."""
    return replace(options, **changes)
