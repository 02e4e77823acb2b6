"""The mapper's placement as plain data: per layer where it sits and what cycles it is predicted to take.

:func:`mapping.mapper.map_network` produces it
(:meth:`mapping.mapper.MappingResult.placement`); the testbenches, the
co-simulation and the register compiler read it, so none of them runs or
imports the mapper (docs/design.md, "Folders and the direction of dependencies").
"""

from __future__ import annotations

from dataclasses import dataclass

from archmodel.errors import AimcError

__all__ = ["LayerPlacement", "Placement", "PlacementError"]


class PlacementError(AimcError, ValueError):
    """A layer index that the placement does not have (one clear line)."""


@dataclass(frozen=True)
class LayerPlacement:
    """One conv/linear layer as the mapper placed it (one copy; units in the names).

    Attributes
    ----------
    index : int
        0-based row of the map report's layer table (conv/linear layers in order).
    name : str
    shape : str
        The layer's shape as the map report prints it.
    kind : str
        ``"analog"`` (PCM tiles) or ``"digital"`` (the digital datapath).
    matrix_rows, matrix_cols, groups : int
        Flattened matrix K x N (im2col rows, outputs) and convolution groups.
    row_blocks, col_blocks : int
        Array-sized blocks of the matrix (``ceil(K / array.rows)``, ``ceil(N / array.cols)``).
    arrays : int
        Arrays of one copy (0 for a digital layer).
    first_tile : int
        Global index of the first copy's home tile (-1: the digital datapath).
    vector_cycles : int
        Predicted cycles per input vector (output pixel), ``archmodel.timing``.
    cycles : int
        Predicted stage time per inference, cycles.
    groups_per_array : int
        Groups of a grouped convolution packed block-diagonally on one array
        (:func:`mapping.mapper.groups_per_array`; 1 = not packed).
    """

    index: int
    name: str
    shape: str
    kind: str
    matrix_rows: int
    matrix_cols: int
    groups: int
    row_blocks: int
    col_blocks: int
    arrays: int
    first_tile: int
    vector_cycles: int
    cycles: int
    groups_per_array: int = 1


@dataclass(frozen=True)
class Placement:
    """A network's placement on a chip description: one :class:`LayerPlacement` per conv/linear layer."""

    spec_name: str
    network_name: str
    replicate: bool
    layers: tuple[LayerPlacement, ...]

    def layer(self, index: int) -> LayerPlacement:
        """Layer ``index`` (the map report's row). Raises :class:`PlacementError` out of range."""
        if not 0 <= index < len(self.layers):
            raise PlacementError(f"layer {index} is out of range: network '{self.network_name}' has "
                                 f"{len(self.layers)} conv/linear layers (0..{len(self.layers) - 1})")
        return self.layers[index]
