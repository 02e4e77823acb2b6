"""``aimc cosim --images N`` (the whole network, issue 15): option errors in one line, before any build;
a placement the whole-network co-simulation cannot play refused in one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from archmodel.placement import LayerPlacement, Placement
from archmodel.spec import load_spec
from archmodel.zoo import load_network


@pytest.mark.parametrize(("args", "message"), [
    (["--layer", "1", "--images", "2"], "give one of --layer K (one layer on one tile) or --images N "
                                        "(the whole network)"),
    (["--images", "0"], "--images must be in 1..512, got 0"),
])
def test_cosim_images_options(args, message):
    r = subprocess.run([sys.executable, "-m", "mapping.cli", "cosim", "--arch", "tiny", "--network", "digits-mlp",
                        *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"aimc: error: {message}"]


def test_prepare_placed_refuses_other_shapes():
    from tb.network_env import CosimNetworkError, prepare_placed

    spec = load_spec("tiny")
    lp = LayerPlacement(0, "fc1", "64->64", "analog", 64, 64, 1, 2, 2, 4, 0, 32, 32)
    with pytest.raises(CosimNetworkError, match=r"plays digital -> analog -> digital linear layers; this placement "
                                                r"is \['analog'\]"):
        prepare_placed(spec, Placement("tiny", "x", False, (lp,)), load_network("digits-mlp"),
                       np.zeros((1, 64), np.int64), seed=1)
