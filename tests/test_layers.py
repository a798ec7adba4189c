"""The import-linter contracts of pyproject.toml hold, and they catch an import across the layers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGES = ("robo_common", "robo_brain", "robo_cerebellum", "robo_sim", "robo_system", "robo_eval", "robo_cli")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run ``lint-imports`` with ``root``'s pyproject.toml and ``root``'s packages first on the path."""
    exe = Path(sys.executable).with_name("lint-imports")
    if not exe.is_file():
        pytest.fail(f"lint-imports not installed beside {sys.executable} (requirements/python.txt pins import-linter)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([str(exe), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture()
def tree(tmp_path: Path, repo_root: Path) -> Path:
    """A copy of the repository's Python packages and pyproject.toml."""
    for pkg in PACKAGES:
        shutil.copytree(repo_root / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(repo_root / "pyproject.toml", tmp_path)
    return tmp_path


def test_every_package_is_in_the_contracts(repo_root: Path) -> None:
    on_disk = {p.parent.name for p in repo_root.glob("robo_*/__init__.py")}
    assert on_disk == set(PACKAGES)


def test_the_repository_keeps_its_contracts(repo_root: Path) -> None:
    out = lint_imports(repo_root)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 kept, 0 broken" in out.stdout


CEREBELLUM = "the cerebellum imports neither the simulator nor the brain"


@pytest.mark.parametrize("module, line, contract", [
    ("robo_cerebellum/monitor.py", "import robo_sim.world", CEREBELLUM),
    ("robo_brain/checks.py", "from robo_cerebellum import safety", "brain, cerebellum and simulator are independent"),
    ("robo_sim/scene.py", "import robo_system.closed_loop", "robo_stack layers import downwards only"),
    ("robo_common/geometry.py", "import robo_brain.planner", "robo_stack layers import downwards only"),
])
def test_a_forbidden_import_breaks_a_contract(tree: Path, module: str, line: str, contract: str) -> None:
    path = tree / module
    path.write_text(path.read_text() + f"\n\ndef _leak() -> None:\n    {line}  # noqa: F401\n")  # a lazy import counts
    out = lint_imports(tree)
    assert out.returncode != 0
    assert f"{contract} BROKEN" in out.stdout
    importer = module.removesuffix(".py").replace("/", ".")
    imported = line.split()[1]
    assert f"{importer} -> {imported}" in out.stdout, out.stdout
