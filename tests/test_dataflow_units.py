"""Chips without issue 18's dataflow units (``interconnect.line_buffers`` / ``pool_units`` / ``residual_joins``
false; the FPGA prototype's ``tiny-fpga``): no registers, no hardware, one-line refusals in the compiler."""

from __future__ import annotations

import pytest

from archmodel.network.builder import NetworkBuilder
from archmodel.spec import ChipSpec, load_spec
from rtl.register_compiler import MissingUnitError, analog_layer, conv_layer, residual_join, with_pool
from rtl.regmap import build_regmap, dataflow_units, regmap_markdown, units_code


def test_tiny_fpga_register_map_is_tinys_without_the_units():
    tiny, fpga = build_regmap(load_spec("tiny")), build_regmap(load_spec("tiny-fpga"))
    a = {r.name: (r.address, r.fields) for r in tiny.registers}
    b = {r.name: (r.address, r.fields) for r in fpga.registers}
    gone = set(a) - set(b)
    # every register kept at its address with the same fields; chip.id differs only in its constant units field
    assert set(b) <= set(a) and all(a[n] == b[n] for n in b if n != "chip.id")
    assert a["chip.id"][0] == b["chip.id"][0] == 0x0
    # per tile: 4 join + 7 line-buffer + 5 pool registers; the digital node's 5 pool registers on its results,
    # its input join's 4 (en, q0, q1, shift), the 5 of the pool after that join, its line buffer's 7
    assert len(gone) == 4 * (4 + 7 + 5) + 5 + 4 + 5 + 7
    assert {n.split(".")[1] for n in gone} == {"add", "lb", "pool", "ipool"}
    assert dataflow_units(load_spec("tiny-fpga")) == {"lb": False, "pool": False, "add": False}
    assert dataflow_units(load_spec("proto")) == {"lb": True, "pool": True, "add": True}


def test_chip_id_tells_which_units_the_chip_has():
    """chip.id (map v8) = units << 24 | version << 16 | 0xA1C0, hand-packed: tiny 0x0708A1C0, tiny-fpga
    0x0008A1C0, a chip with only line buffers 0x0108A1C0; regmap.md names the absent units."""
    for name, units, word in (("tiny", 0b111, 0x0708A1C0), ("tiny-fpga", 0, 0x0008A1C0)):
        rm = build_regmap(load_spec(name))
        assert units_code(load_spec(name)) == units
        assert sum(f.value << f.offset for f in rm.register("chip.id").fields) == word
        assert rm.decode("chip.id", word) == {"magic": 0xA1C0, "version": 8, "units": units}
    data = load_spec("tiny-fpga").model_dump(mode="json", exclude_defaults=False)
    data["interconnect"]["line_buffers"] = True
    assert units_code(ChipSpec.model_validate(data)) == 0b001
    md = regmap_markdown(load_spec("tiny-fpga"))
    assert ("Dataflow units (`chip.id.units` = 0b000): none; absent, with no registers: line buffers "
            "(interconnect.line_buffers: false), pool units (interconnect.pool_units: false), residual joins "
            "(interconnect.residual_joins: false).") in md
    assert "Dataflow units (`chip.id.units` = 0b111): line buffers, pool units, residual joins." in \
        regmap_markdown(load_spec("tiny"))


def test_compiler_refuses_units_the_chip_lacks_in_one_line():
    import numpy as np

    spec = load_spec("tiny-fpga")
    b = NetworkBuilder("u", (8, 4, 4))
    b.conv("c1", b.input, 8, 3, padding=1)
    b.maxpool("p", b.input, 2)
    net = b.build()
    w = np.random.default_rng(1).standard_normal((72, 8))
    layer = analog_layer(spec, w[:32], tile=0, dest=(1, 0), in_scale=1 / 64, out_scale=0.1, name="c1")
    with pytest.raises(MissingUnitError) as e:
        conv_layer(spec, net.layer("c1"), [layer])
    assert str(e.value) == ("layer 'c1' needs a line buffer; chip 'tiny-fpga' has none "
                            "(interconnect.line_buffers: false)")
    with pytest.raises(MissingUnitError, match=r"'c1' needs a pool unit; .*interconnect.pool_units: false"):
        with_pool(spec, net.layer("p"), layer)
    with pytest.raises(MissingUnitError, match=r"needs a residual join; .*interconnect.residual_joins: false"):
        residual_join(spec, layer, src_a=1, src_b=2, scale_a=1.0, scale_b=1.0, out_scale=1.0, relu=True)
    # the same calls on tiny pass the unit check (tiny keeps every unit)
    with_pool(load_spec("tiny"), net.layer("p"), analog_layer(load_spec("tiny"), w[:32], tile=0, dest=(1, 0),
                                                               in_scale=1 / 64, out_scale=0.1, name="c1"))


def test_coprocessor_without_units_has_no_pool_join_or_line_buffer():
    """The elaborated top of tiny-fpga instantiates no Pool / ResidualJoin / PatchBuffer; tiny's does."""
    from rtl.top import Coprocessor

    def kinds(name):
        subs = Coprocessor(load_spec(name)).elaborate(None)._named_submodules
        subs = {k: (v[0] if isinstance(v, tuple) else v) for k, v in subs.items()}
        seen = {type(sub).__name__ for sub in subs.values()}
        return seen | ({"PatchBuffer"} if subs["tile0"].pb is not None else set())
    units = {"Pool", "ResidualJoin", "PatchBuffer"}
    assert units <= kinds("tiny")
    assert not units & kinds("tiny-fpga")


def test_cosim_cli_refuses_missing_units_and_oversized_cnns_before_any_build(tmp_path, capsys):
    """``aimc cosim --images`` checks the chip before building a simulator or training (each one line, exit 1):
    a CNN on proto without line buffers, one that needs more tiles than one chip, a residual CNN with --emulate-arrays."""
    import yaml

    from archmodel.spec import load_spec
    from mapping.cli.main import main

    data = load_spec("proto").model_dump(mode="json", exclude_defaults=False)
    data["interconnect"]["line_buffers"] = False
    data["name"] = "proto-nolb"
    (tmp_path / "nolb.yaml").write_text(yaml.safe_dump(data))
    cases = [
        (["--arch", str(tmp_path / "nolb.yaml"), "--network", "digits-cnn"],
         "aimc: error: layer 'conv1' needs a line buffer; chip 'proto-nolb' has none (interconnect.line_buffers: "
         "false)"),
        (["--arch", "tiny", "--network", "digits-resnet"],
         "aimc: error: layer 'b1_conv1': tiles 0..4 exceed the 4 tiles of one 'tiny' chip (the RTL has no "
         "chip-to-chip link)"),
        (["--arch", "proto", "--network", "digits-resnet", "--emulate-arrays"],  # digits-cnn plays (issue 19)
         "aimc: error: --emulate-arrays plays digits-cnn's shape on the prototype; digits-resnet has a residual add "
         "(digits-resnet: run it with the Python arrays, without --emulate-arrays)"),
    ]
    # stop 12 (review): refused after a dry compile of the whole configuration, still before any build
    (tmp_path / "selfadd.yaml").write_text(
        "name: selfadd\ninput_shape: [1, 8, 8]\nlayers:\n"
        "  - {name: conv1, op: conv, out_channels: 8, kernel_size: 3, padding: 1, bias: false}\n"
        "  - {name: relu1, op: activation, kind: relu}\n  - {name: add1, op: add, inputs: [relu1, relu1]}\n"
        "  - {name: gap, op: global_avgpool}\n  - {name: fc, op: linear, out_features: 10}\n")
    (tmp_path / "c3.yaml").write_text(
        "name: c3\ninput_shape: [3, 8, 8]\nlayers:\n"
        "  - {name: conv1, op: conv, out_channels: 8, kernel_size: 3, padding: 1, bias: false}\n"
        "  - {name: relu1, op: activation, kind: relu}\n  - {name: gap, op: global_avgpool}\n"
        "  - {name: fc, op: linear, out_features: 10}\n")
    cases += [
        (["--arch", "proto", "--network", str(tmp_path / "c3.yaml")],
         "aimc: error: network 'c3' has input (3, 8, 8) and output (10,); the whole-network co-simulation feeds "
         "digits images: input (1, 8, 8), output (10,)"),
        (["--arch", "fig11", "--network", "digits-cnn"],
         "aimc: error: layer 'pool': 16 channels is not a multiple of rows_per_dac_beat = 64"),
        (["--arch", "fig11", "--network", "digits-resnet"],
         "aimc: error: layer 'b1_conv1': 144 rows fit one tile; the CNN co-simulation plays this layer as a "
         "partial-sum chain of >= 2 tiles (as on proto's 32-row arrays)"),
        (["--arch", "proto", "--network", str(tmp_path / "selfadd.yaml")],
         "aimc: error: layer 'add1': a residual add of 'relu1' with itself; the RTL's join takes two different "
         "producers"),
    ]
    # stop 13: an overlapping, padded pool; a CNN of neither supported shape (named layer by layer)
    head = ("input_shape: [1, 8, 8]\nlayers:\n"
            "  - {name: conv1, op: conv, out_channels: 16, kernel_size: 3, padding: 1, bias: false}\n"
            "  - {name: relu1, op: activation, kind: relu}\n")
    tail = ("  - {name: conv2, op: conv, out_channels: 32, kernel_size: 3, padding: 1, bias: false}\n"
            "  - {name: relu2, op: activation, kind: relu}\n")
    end = "  - {name: flatten, op: flatten}\n  - {name: fc, op: linear, out_features: 10}\n"
    (tmp_path / "ovl.yaml").write_text(
        "name: ovl\n" + head + "  - {name: pool, op: maxpool, kernel: 3, stride: 2, padding: 1}\n" + tail
        + tail.replace("conv2", "conv3").replace("relu2", "relu3") + end)
    (tmp_path / "two.yaml").write_text("name: two\n" + head + "  - {name: pool, op: maxpool, kernel: 2}\n" + tail + end)
    (tmp_path / "k1.yaml").write_text(  # conv2 1 x 1 on 16 channels: 16 rows, one tile of proto
        "name: k1\n" + head + "  - {name: pool, op: maxpool, kernel: 2}\n"
        + tail.replace("kernel_size: 3, padding: 1", "kernel_size: 1, padding: 0")
        + tail.replace("conv2", "conv3").replace("relu2", "relu3") + end)
    cases += [
        (["--arch", "proto", "--network", str(tmp_path / "ovl.yaml")],
         "aimc: error: layer 'pool': the pool unit runs non-overlapping windows without padding (stride = kernel), "
         "got kernel (3, 3), stride (2, 2), padding (1, 1, 1, 1)"),
        (["--arch", "proto", "--network", str(tmp_path / "two.yaml")],
         "aimc: error: network 'two': the CNN co-simulation plays digits-cnn's shape (digital conv -> maxpool -> "
         "analog conv -> analog conv -> flatten -> digital linear) or digits-resnet's; this one is conv1 (digital) "
         "-> pool (maxpool) -> conv2 (analog) -> flatten (flatten) -> fc (digital)"),
        (["--arch", "proto", "--network", str(tmp_path / "k1.yaml")],
         "aimc: error: layer 'conv2': 16 rows fit one tile; the CNN co-simulation plays this layer as a partial-sum "
         "chain of >= 2 tiles (as on proto's 32-row arrays)"),
    ]
    for args, want in cases:
        assert main(["cosim", *args, "--images", "1"]) == 1
        err = capsys.readouterr().err.strip()
        assert err == want
