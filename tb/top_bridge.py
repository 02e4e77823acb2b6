"""Array bridge of the top-level co-simulation (one job): the PCM bridge that also checks each layer's DAC codes.

:class:`CheckingBridge` (built by :func:`checking_bridge_class` on first use,
because :mod:`tb.bridge` needs a running simulator) serves one tile's array
port like :class:`tb.bridge.PCMArrayBridge` and compares the DAC codes of every
MVM with the golden input of its layer, so intermediate results routed over the
mesh are checked too. Counts go to the run's :class:`tb.top_checker.NetResult`.
"""

from __future__ import annotations

import numpy as np

from archmodel.golden.tile_controller import dac_codes
from tb.top_checker import NetResult

__all__ = ["checking_bridge_class"]


def checking_bridge_class():
    """:class:`CheckingBridge` (built on first use: :mod:`tb.bridge` needs a running simulator)."""
    global _CHECKING_BRIDGE
    if _CHECKING_BRIDGE is None:
        from tb.bridge import PCMArrayBridge

        class CheckingBridge(PCMArrayBridge):
            """:class:`tb.bridge.PCMArrayBridge` that also compares each MVM's DAC codes with the golden input.

            Parameters (besides those of the base class)
            ----------
            inputs : ndarray (B, K)
                The layer's int8 input vectors in the golden run; vector ``v``'s DAC
                codes are ``dac_codes(inputs[v])``.
            result : NetResult
                Counts ``dac_compared`` / ``dac_mismatches`` there.
            layer : int
                Layer number (messages).
            """

            def __init__(self, dut, clock, spec, matrix, inputs, result: NetResult, *, layer: int, **kwargs):
                super().__init__(dut, clock, spec, matrix, **kwargs)
                self.want = dac_codes(np.asarray(inputs, dtype=np.int64), spec.array.dac_bits)
                self.result, self.layer = result, layer

            def answer(self, beats: list[dict], mvm: int) -> list[dict]:
                p = self.params
                step = self.schedule[mvm % len(self.schedule)]
                vector = mvm // len(self.schedule)
                r0 = step.row_block * p.array_rows
                rows = min(p.array_rows, self.k - r0)
                got = [c for b in beats for c in b["codes"]][:rows]
                res = self.result
                if vector >= self.want.shape[0]:
                    res.dac_mismatches += 1
                    res.first_mismatches.append(f"layer {self.layer}: MVM {mvm} beyond the "
                                                f"{self.want.shape[0]} vectors")
                else:
                    exp = [int(c) for c in self.want[vector, r0:r0 + rows]]
                    res.dac_compared += rows
                    bad = sum(int(g != e) for g, e in zip(got, exp, strict=False)) + abs(len(got) - len(exp))
                    for r, (g, e) in enumerate(zip(got, exp, strict=False)):
                        if g != e and [self.layer, r0 + r] not in res.dac_mismatch_at:
                            res.dac_mismatch_at.append([self.layer, r0 + r])
                    if bad:
                        res.dac_mismatches += bad
                        if len(res.first_mismatches) < 10:
                            res.first_mismatches.append(f"layer {self.layer} vector {vector}: DAC codes {got} "
                                                        f"!= {exp}")
                return super().answer(beats, mvm)

        _CHECKING_BRIDGE = CheckingBridge
    return _CHECKING_BRIDGE


_CHECKING_BRIDGE = None
