"""``aimc`` imports only the command it runs (issue 22), with the same ``--help`` as the eager parser."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mapping.cli.main import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parent.parent


def test_lazy_top_level_help_is_the_eager_one():
    """The lazy parser (stubs from :data:`COMMANDS`) prints the same top-level help as the eager one."""
    assert build_parser([]).format_help() == build_parser(None).format_help()
    eager = build_parser(None)._subparsers._group_actions[0]  # the sub-parsers action
    helps = {a.dest: a.help for a in eager._choices_actions}
    assert helps == {name: help_line for name, (_, help_line) in COMMANDS.items()}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_lazy_command_parser_is_the_eager_one(command):
    def sub_help(parser):
        return parser._subparsers._group_actions[0].choices[command].format_help()

    assert sub_help(build_parser([command, "--help"])) == sub_help(build_parser(None))


def test_map_imports_neither_the_other_commands_nor_matplotlib():
    code = ("import sys; from mapping.cli.main import build_parser; build_parser(['map', '--arch', 'fig11']); "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith(('mapping.cli.', 'matplotlib', "
            "'archmodel.drift', 'archmodel.accuracy', 'onnx', 'rtl', 'tb')))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["mapping.cli.common", "mapping.cli.main", "mapping.cli.map"]
