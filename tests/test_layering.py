"""The dependency rule (docs/architecture.md) as import-linter contracts.

``archmodel`` imports none of the others; ``rtl`` only ``archmodel``; ``tb``
only ``rtl`` and ``archmodel``; ``mapping`` outside ``mapping.cli`` only
``archmodel``. The contracts live in ``pyproject.toml``; this test runs them on
the tree, shows that adding a forbidden import makes them fail, and checks the
one thing import-linter cannot see: string imports (``importlib`` /
``__import__``) of project modules outside the command-line package.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("archmodel", "rtl", "tb", "mapping")


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    if not Path(exe).exists() and shutil.which(exe) is None:
        pytest.fail("lint-imports (import-linter) is not installed; `make setup` installs it")
    env = dict(os.environ, PYTHONPATH=str(root))
    return subprocess.run([exe, "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_hold():
    res = _lint_imports(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 kept, 0 broken" in res.stdout


@pytest.mark.parametrize(("victim", "line", "contract"), [
    ("archmodel/spec.py", "import mapping.mapper\n", "archmodel imports none of the other packages"),
    ("rtl/regmap.py", "import tb.runner\n", "rtl imports only archmodel"),
    ("tb/runner.py", "import mapping.costs\n", "tb imports only rtl and archmodel"),
    ("mapping/mapper.py", "import rtl.regmap\n", "mapping, except its command-line package, imports only archmodel"),
])
def test_a_forbidden_import_breaks_its_contract(tmp_path, victim, line, contract):
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "*.onnx"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    path = tmp_path / victim
    text = path.read_text()
    # after the module docstring and __future__ import, where an import may stand
    anchor = "from __future__ import annotations\n"
    assert anchor in text, f"{victim} has no __future__ import to anchor the injected line"
    path.write_text(text.replace(anchor, anchor + line, 1))
    res = _lint_imports(tmp_path)
    assert res.returncode != 0
    # (an import into archmodel also breaks rtl's and tb's contracts indirectly)
    assert re.search(re.escape(contract) + r"\s+BROKEN", res.stdout), res.stdout


def test_no_string_imports_of_project_modules_outside_the_cli():
    pattern = re.compile(r"importlib\.import_module|__import__\(|importlib\.util\.spec_from")
    offenders = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel.startswith("mapping/cli/"):
                continue
            for no, text in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(text):
                    offenders.append(f"{rel}:{no}: {text.strip()}")
    assert offenders == []
