"""The software version: the installed package's metadata, whose one source is pyproject.toml.

Nothing else in the tree writes a version number. A node signs `rarenet-node VERSION` into every
summary and EQA response (their software_version field) so that an auditor can tell which
release computed the figures; `--version` of each command prints the same.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("rarenet")
except PackageNotFoundError:  # run from a source tree that was never installed
    VERSION = "0+unknown"


def software_version(program: str) -> str:
    """What a signed message records as its software: "rarenet-node" and the version."""
    return f"{program} {VERSION}"
