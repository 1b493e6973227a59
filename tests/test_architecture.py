"""The package tree is the architecture: the import contracts in pyproject.toml must hold.

Layers import only downward, the pure rule layers do no I/O, the webhook never
loads the writer, and no package has an import cycle (``[tool.importlinter]``).
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    assert f"Contracts: {len(contracts)} kept, 0 broken." in out.stdout


def test_every_package_of_app_is_a_declared_layer() -> None:
    """A new top-level package must be placed in the layer order, not slip past the contract."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")
    declared = {name.strip() for layer in layers["layers"] for name in layer.split("|")}
    packages = {p.parent.name for p in (ROOT / "app").glob("*/__init__.py")}
    assert packages - {"samples"} == declared
