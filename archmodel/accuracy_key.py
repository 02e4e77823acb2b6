"""The part of a chip description an accuracy evaluation reads, found by recording it.

A design-space sweep (``aimc sweep``) caches accuracy results by the hash of
the *accuracy sub-description*: the chip-description fields the accuracy path
actually reads. Points that differ only in fields accuracy does not read (tile
grid, clock, energy and area constants, ...) then share one evaluation.

The sub-description is **derived, not hand-kept**: :func:`recorded_reads` runs
the evaluation once on a :class:`SpecRecorder`, a read-only stand-in for the
:class:`~archmodel.spec.ChipSpec` that records the dotted path of every leaf
field read (``array.adc_bits``, ``device.drift_scale``, ...). Derived figures
(``adc_full_scale_ua``, ``Array.dac_passes``, ``ChipSpec.cycles`` ...) are
evaluated on the recorder, so the fields *they* read are recorded too; a
pydantic method such as ``model_dump`` marks the whole section as read
(conservative). The caller passes the evaluation as a function of the spec, so
the recording follows the accuracy code as it is, including future changes.

Branches: a field read only in a branch the recording run did not take is not
recorded, but the field choosing the branch is; the recording therefore runs on
the point's own spec (:func:`accuracy_subdescription`), and the sub-description
is exact for that spec's branches.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import types
from collections.abc import Callable
from functools import cached_property
from typing import Any

from pydantic import BaseModel

from archmodel.spec import ChipSpec

__all__ = ["SpecRecorder", "accuracy_subdescription", "recorded_reads", "subdescription_hash"]


class SpecRecorder:
    """Read-only stand-in for a ChipSpec (or one of its sections) that records every field read.

    Parameters
    ----------
    model : pydantic BaseModel
        The ChipSpec or section to stand in for.
    reads : set of str
        Receives the dotted paths of the fields read (shared by nested recorders).
    prefix : str
        Dotted path of ``model`` inside the ChipSpec ("" at the top).
    """

    def __init__(self, model: BaseModel, reads: set[str], prefix: str = "") -> None:
        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_reads", reads)
        object.__setattr__(self, "_prefix", prefix)

    def __getattr__(self, name: str) -> Any:
        model: BaseModel = object.__getattribute__(self, "_model")
        reads: set[str] = object.__getattribute__(self, "_reads")
        prefix: str = object.__getattribute__(self, "_prefix")
        path = f"{prefix}{name}"
        cls = type(model)
        static = inspect.getattr_static(cls, name, None)
        if name in cls.model_fields:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                return SpecRecorder(value, reads, path + ".")
            reads.add(path)
            return value
        if isinstance(static, property) and static.fget is not None:
            return static.fget(self)  # derived figure: record the fields it reads
        if isinstance(static, cached_property):
            return static.func(self)
        owner = next((k for k in cls.__mro__ if name in k.__dict__), None)
        if isinstance(static, types.FunctionType) and owner is not None and owner.__module__ == ChipSpec.__module__:
            return types.MethodType(static, self)  # our own method: evaluate on the recorder
        # anything else (pydantic methods such as model_dump): the whole (sub)section counts as read
        reads.add(prefix.rstrip(".") or "*")
        return getattr(model, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a chip description is immutable")


def recorded_reads(spec: ChipSpec, evaluate: Callable[[Any], Any]) -> frozenset[str]:
    """Dotted paths of the fields of ``spec`` read by ``evaluate(spec)``.

    Parameters
    ----------
    spec : ChipSpec
    evaluate : callable
        Runs the evaluation on the given spec (a :class:`SpecRecorder`); its
        result is discarded.

    Returns
    -------
    frozenset of str
        E.g. ``{"array.adc_bits", "device.g_max_us", ...}``; ``"*"`` if the
        whole description was read, ``"section"`` if a whole section was.
    """
    reads: set[str] = set()
    evaluate(SpecRecorder(spec, reads))
    return frozenset(reads)


def _value_at(data: dict[str, Any], dotted: str) -> Any:
    if dotted == "*":
        return data
    node: Any = data
    for k in dotted.split("."):
        node = node[k]
    return node


def accuracy_subdescription(spec: ChipSpec, evaluate: Callable[[Any], Any]) -> dict[str, Any]:
    """The accuracy sub-description of ``spec``: ``{dotted path: value}`` of every field ``evaluate`` reads.

    ``evaluate`` should be the accuracy evaluation itself run on a small
    workload (same code path, few images, one draw). Source notes
    (``sources``) are never part of it unless the whole section is read.
    """
    data = spec.model_dump(mode="json")
    return {p: _value_at(data, p) for p in sorted(recorded_reads(spec, evaluate))}


def subdescription_hash(sub: dict[str, Any], **extra: Any) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of ``sub`` plus ``extra`` (network, options, seed)."""
    blob = json.dumps({"spec": sub, **extra}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
