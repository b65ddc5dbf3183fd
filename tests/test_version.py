"""One source for the version: pyproject.toml, read back from the installed package's metadata."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from click.testing import CliRunner

from auditor.cli import main as audit_cli
from coordinator.cli import main as coordinator_cli
from node import summary
from node.cli import main as node_cli
from node.standard import load_cached
from protos.version import VERSION
from tests.conftest import PERIOD

ROOT = Path(__file__).resolve().parent.parent
TEXT = {".py", ".pyi", ".toml", ".md", ".yaml", ".yml", ".sh", ".service", ".html", ".cfg", ""}


def test_the_version_is_pyprojects() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert VERSION == version("rarenet") == declared
    for cli in (node_cli, coordinator_cli, audit_cli):
        shown = CliRunner().invoke(cli, ["--version"])
        assert shown.exit_code == 0 and VERSION in shown.output


def test_no_other_file_writes_the_version() -> None:
    literal = re.compile(rf"(?<![\d.]){re.escape(VERSION)}(?![\d.])")
    found = []
    for folder in (
        "protos",
        "node",
        "coordinator",
        "auditor",
        "method",
        "bench",
        "demo",
        "deploy",
        "docs",
    ):
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and path.suffix in TEXT and "_pb2" not in path.name:
                if literal.search(path.read_text(errors="replace")):
                    found.append(str(path.relative_to(ROOT)))
    if literal.search((ROOT / "README.md").read_text()):
        found.append("README.md")
    assert found == [], f"version {VERSION} written outside pyproject.toml (and CHANGELOG.md)"


def test_the_signed_summary_records_the_installed_version(node_factory, synthetic_csv) -> None:
    node = node_factory("lab-a")
    node.ingest(synthetic_csv("lab-a"))
    message, payload = summary.build(
        node.conn, node.config, load_cached(node.config.standard_path), PERIOD, 1
    )
    assert message.software_version == f"rarenet-node {version('rarenet')}"
    assert f'"software_version": "rarenet-node {VERSION}"'.encode() in payload
