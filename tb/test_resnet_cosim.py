"""cocotb: ``digits-resnet`` on the co-processor top level in ONE run of the chip, checked bit for bit (issue 18;
tb/resnet_env.py). The driver is digits-cnn's (:func:`tb.test_top_cosim._cnn`, which plays any network
:func:`tb.cnn_env.prepare_cnn` prepares); these two tests give the residual network its own names and time-outs.

Run by :func:`tb.cnn_env.cosim_cnn` (``aimc cosim --network digits-resnet --images N``). Environment as
``tb.test_top_cosim.test_cnn_network``: ``AIMC_PLACEMENT``, ``AIMC_CNN_IMAGES`` (default 2), ``AIMC_CNN_WEIGHTS``
(``seeded`` / ``trained``), ``AIMC_CNN_WEIGHT_SEED`` (default 3 for a residual network), ``AIMC_CNN_T_INF``
(default 3600 s).
"""

from __future__ import annotations

import cocotb

from tb.test_top_cosim import _cnn


@cocotb.test(timeout_time=4000, timeout_unit="ms")
async def test_resnet_network(dut):
    """The whole digits-resnet in one run, no fault: every class score and the two taps (b2_conv2_bn, b2_proj_bn
    mirrored to the host while they go to the digital node's input join) compared, 0 mismatches; every analog
    tile's DAC beats (b1_add's output at b2_conv1's and b2_proj's joins among them) compared, 0 mismatches; no
    status flag; RTL top-1 = the model's (:func:`tb.test_top_cosim._cnn`)."""
    await _cnn(dut, "none", "test_resnet_network")


@cocotb.test(timeout_time=4000, timeout_unit="ms")
async def test_resnet_fault(dut):
    """digits-resnet with the stem's weight flit 1 negated on its way to the chip (golden untouched): DAC
    mismatches, the first (in layer order) at b1_conv1's tiles, the first layer reading the stem's results."""
    await _cnn(dut, "weight", "test_resnet_fault")
