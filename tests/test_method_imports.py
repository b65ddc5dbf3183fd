"""The method is pure and the auditor independent: neither imports the coordinator (or the node),
and the method imports nothing that touches a database, the network or HTML."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_FOR_METHOD = {"protos", "method", "numpy", "scipy", "__future__"}


def imported(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "auditor").glob("*.py")), ids=lambda p: p.name)
def test_the_auditor_imports_nothing_from_the_coordinator(path: Path) -> None:
    assert not imported(path) & {"coordinator", "node"}, path


@pytest.mark.parametrize("path", sorted((ROOT / "method").glob("*.py")), ids=lambda p: p.name)
def test_the_method_imports_only_protos_the_standard_library_numpy_and_scipy(path: Path) -> None:
    # benchmark.json's one encoding (report_bytes.py) is written by orjson, an encoder only
    allowed = ALLOWED_FOR_METHOD | ({"orjson"} if path.name == "report_bytes.py" else set())
    outside = {
        name
        for name in imported(path)
        if name not in allowed and name not in sys.stdlib_module_names
    }
    assert not outside, f"{path.name} imports {outside}"
    assert not imported(path) & {"sqlite3", "grpc", "jinja2", "socket", "http", "urllib"}, path


def test_the_scan_sees_a_coordinator_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from coordinator.benchmark import compute\n")
    assert "coordinator" in imported(bad)


def test_running_the_method_does_not_import_scipy_stats() -> None:
    """scipy.stats costs ~0.7 CPU s to import in every process that runs the method (quarter
    closes, the benchmark, an auditor's recomputation): method/distributions.py gives its
    numbers from scipy.special. The check runs in a fresh interpreter."""
    import subprocess

    code = "import sys, method.benchmark; print('scipy.stats' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
