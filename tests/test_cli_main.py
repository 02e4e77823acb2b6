"""The error policy of ``aimc`` (mapping/cli/main.py): user errors one line, bugs one line, AIMC_DEBUG=1 tracebacks."""

from __future__ import annotations

import pytest

from archmodel.errors import AimcError
from mapping.cli import main as cli_main


def _failing_spec(monkeypatch, exc: BaseException) -> None:
    import mapping.cli.spec as spec_cmd

    def boom(args):
        raise exc

    register = spec_cmd.register

    def register_boom(sub):
        register(sub)
        sub.choices["spec"].set_defaults(func=boom)

    monkeypatch.setattr(spec_cmd, "register", register_boom)


def test_user_error_is_one_line(monkeypatch, capsys):
    monkeypatch.delenv("AIMC_DEBUG", raising=False)
    _failing_spec(monkeypatch, AimcError("bad input\nsecond line"))
    assert cli_main.main(["spec"]) == 1
    assert capsys.readouterr().err.splitlines() == ["aimc: error: bad input"]


def test_bug_is_one_line_internal_error(monkeypatch, capsys):
    monkeypatch.delenv("AIMC_DEBUG", raising=False)
    _failing_spec(monkeypatch, KeyError("oops"))
    assert cli_main.main(["spec"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        "aimc: internal error: KeyError: 'oops' (set AIMC_DEBUG=1 for the traceback)"]


@pytest.mark.parametrize("exc", [AimcError("bad input"), KeyError("oops")])
def test_aimc_debug_shows_the_traceback(monkeypatch, exc):
    monkeypatch.setenv("AIMC_DEBUG", "1")
    _failing_spec(monkeypatch, exc)
    with pytest.raises(type(exc)):
        cli_main.main(["spec"])


def test_no_command_prints_help_exit_2(capsys):
    assert cli_main.main([]) == 2
    assert "usage: aimc" in capsys.readouterr().err
