"""ports.md: the Verilog ports of every block with the bit layout of packed stream payloads."""

from __future__ import annotations

import re

from archmodel.spec import load_spec
from mapping.cli.main import main
from rtl.export import export_verilog, ports_markdown


def test_ports_doc_matches_exported_verilog(tmp_path):
    # independent check: every documented port's direction and width equals the Verilog declaration
    spec = load_spec("tiny")
    md = ports_markdown(spec)
    files = {p.stem: p.read_text() for p in export_verilog(spec, tmp_path)}
    sections = re.split(r"^## `(\w+)`", md, flags=re.M)
    compared = 0
    for name, body in zip(sections[1::2], sections[2::2], strict=True):
        top = re.search(rf"^module {name}\(.*?^endmodule", files[name], flags=re.M | re.S).group(0)  # the block's own module
        decl = {m.group(3): (m.group(1), int(m.group(2) or 0) + 1)
                for m in re.finditer(r"^\s*(input|output)\s*(?:\[(\d+):0\])?\s*(\w+);", top, flags=re.M)}
        for row in re.finditer(r"^\| `(\w+)` \| (in|out) \| (\d+) ", body, flags=re.M):
            direction, width = decl[row.group(1)]
            assert (direction[:-3] if direction == "output" else "in", width) == (row.group(2), int(row.group(3)))
            compared += 1
        # every Verilog port except clk/rst is documented
        assert set(decl) - {"clk", "rst"} == set(re.findall(r"^\| `(\w+)` \|", body, flags=re.M))
    assert compared > 300


def test_dac_payload_bit_layout_hand_computed():
    # tiny: rows_per_dac_beat = 8 codes of dac_bits = 8 -> codes in bits [8i+7:8i], `last` at bit 64
    md = ports_markdown(load_spec("tiny"))
    tc = md.split("## `tile_controller`")[1].split("## ")[0]
    assert "| `dac__payload` | out | 65 | codes[i], i = 0..7 | [8i+7:8i] | signed(8) |" in tc
    assert "| | | | last | [64] | unsigned(1) |" in tc
    dac4 = ports_markdown(load_spec("tiny").replace(**{"array.dac_bits": 4}))
    tc4 = dac4.split("## `tile_controller`")[1].split("## ")[0]
    assert "| `dac__payload` | out | 33 | codes[i], i = 0..7 | [4i+3:4i] | signed(4) |" in tc4


def test_cli_verilog_writes_ports_md(tmp_path, capsys):
    assert main(["verilog", "--arch", "tiny", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "ports.md").read_text()
    assert text.startswith("# Verilog ports of the aimc blocks for chip description 'tiny'")
    assert "ports.md" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers
