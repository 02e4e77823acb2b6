"""Tiling plan of one matrix layer (docs/design.md section 12, steps 3-4): the arrays of each group,
block-diagonal packing of small groups (:func:`groups_per_array`) and the reprogramming rounds
(:func:`program_rounds`) of ``--schedule reprogram``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from archmodel.network.ir import Layer
from archmodel.spec import ChipSpec

__all__ = ["Plan", "groups_per_array", "program_rounds"]


@dataclass
class Plan:
    layer: Layer
    index: int
    digital: bool
    k: int
    n: int
    g: int
    nrb: int
    ncb: int
    pixels: int
    arrays: list[tuple[int, int, int, int, int]]  # (group, cb, rb, rows_used, cols_used)
    tiles_per_copy: int
    t_pixel: int
    gpa: int = 1  # groups per array (block-diagonal packing, groups_per_array)
    r: int = 1
    tiles: list[list[int]] = field(default_factory=list)  # per copy: global tile indices

    def stage_cycles(self, spec: ChipSpec) -> int:
        if self.digital:
            return self.pixels * self.t_pixel  # timing.digital_matrix_cycles per output pixel
        return -(-self.pixels // self.r) * self.t_pixel


def program_rounds(plans: Sequence[Plan], tiles: int, apt: int
                    ) -> list[list[tuple[Plan, list[tuple[int, int, int, int, int]]]]]:
    """Split the analog layers' arrays, in layer order, into rounds that fit ``tiles`` tiles.

    A tile holds arrays of one layer (``apt`` per tile); a layer larger than what is left of a round
    continues in the next one (its partial sums wait in the tiles' SRAM, not costed).
    """
    rounds: list[list[tuple[Plan, list[tuple[int, int, int, int, int]]]]] = []
    cur: list[tuple[Plan, list[tuple[int, int, int, int, int]]]] = []
    free = tiles
    for p in plans:
        if p.digital:
            continue
        i = 0
        while i < len(p.arrays):
            if free == 0:
                rounds.append(cur)
                cur, free = [], tiles
            take = min(len(p.arrays) - i, free * apt)
            cur.append((p, p.arrays[i:i + take]))
            free -= -(-take // apt)
            i += take
    if cur:
        rounds.append(cur)
    return rounds


def groups_per_array(k: int, n: int, groups: int, rows: int, cols: int) -> int:
    """Groups of a grouped convolution packed on one array (block-diagonal packing).

    A group's matrix is ``k`` rows × ``n`` columns (``k = kh·kw·C_in/groups``,
    ``n = C_out/groups``). When it fits one ``rows`` × ``cols`` array, the array
    holds ``m = min(floor(rows/k), floor(cols/n), groups)`` groups on its diagonal:
    group ``i`` of the array drives rows ``i·k .. i·k+k-1`` and is read on columns
    ``i·n .. i·n+n-1``; the off-diagonal devices stay RESET (no weight), so every
    group's outputs see only its own inputs (exact). A group that needs more than
    one array (``k > rows`` or ``n > cols``) is not packed (1). Rule chosen here
    (docs/design.md section 12), not taken from a paper.

    Returns
    -------
    int
        Groups per array, >= 1; 1 for ``groups == 1``.
    """
    if groups <= 1 or k > rows or n > cols:
        return 1
    return max(1, min(rows // k, cols // n, groups))
