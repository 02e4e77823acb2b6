"""The digital node's input join + global pool at the top level (issue 18): tb.test_digital_join_cosim on the
tiny chip's Icarus build (the Verilog of tests/test_top_cosim.py's Icarus build with 1 affine lane, so the
simulator build is shared through the runner's cache), back-pressure on, against numpy written out in the
scenario (requantize_sum by hand, ``(2·sum + hw) // (2·hw)``, ``digital_linear``)."""

from __future__ import annotations

import pytest

from archmodel.spec import load_spec

pytestmark = pytest.mark.cosim


def test_join_pool_job_expectation_matches_the_model():
    """The scenario's hand-written join equals archmodel.accuracy.requantize_sum and its pool the model's global
    average pool formula on the same values (so the cocotb run checks the RTL against both)."""
    import numpy as np

    from archmodel.accuracy import requantize_sum
    from rtl.params import TileParams
    from rtl.pool import JOIN_MAX_SHIFT
    from tb.test_digital_join_cosim import _join_pool_job

    spec = load_spec("tiny")
    pn, extra = _join_pool_job(spec, 1)
    (_, ta, a), (_, tb_, b), (_, th, host) = pn.host_streams
    assert (ta, tb_, th) == (2, 3, 4)
    tp = TileParams.from_spec(spec)
    am, bm = (x.reshape(2, 4, 4, 16).transpose(0, 3, 1, 2) for x in (a, b))
    s = requantize_sum([am, bm], [0.04, 0.03], 0.05, relu=True, scale_bits=tp.scale_bits,
                       max_shift=JOIN_MAX_SHIFT(tp)).astype(np.int64)
    np.testing.assert_array_equal((2 * s.sum(axis=(2, 3)) + 16) // 32, np.asarray(extra["pooled"]))
    np.testing.assert_array_equal(pn.inputs[0][:, 16:], host)
    assert pn.expected.shape == (2, 10) and len(set(pn.expected.ravel().tolist())) > 3


@pytest.mark.slow
def test_digital_join_pool_on_icarus(tmp_path):
    """20 scores compared, 0 mismatches, no status flag, m_axis stalled (asserted in the cocotb test too)."""
    from rtl.export import write_verilog
    from rtl.top import Coprocessor
    from tb.cosim import run_cocotb_tests
    from tb.tile_env import resolve_spec
    from tb.top_env import TOP_NAME

    changes = {"periphery.affine_lanes": 1}
    spec = resolve_spec("tiny", changes)
    src = write_verilog(Coprocessor(spec), TOP_NAME, tmp_path / "rtl" / "icarus", spec, icarus=True)
    outs = run_cocotb_tests("icarus", src, TOP_NAME, "tb.test_digital_join_cosim", tmp_path,
                            ["test_digital_join_pool"], arch="tiny", changes=changes, seed=1)
    out = outs["test_digital_join_pool"]
    assert out.passed, out.message
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 20 and d["mismatches"] == 0, d
    assert d["out_stall_cycles"] > 0 and d["axil_errors"] == 0
