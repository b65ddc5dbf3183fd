"""The parts of the network's testing standard a node needs to compute its metrics.

The standard is served by the coordinator (GetStandards), signed, and cached in D/standard.toml so
that `summarize` works offline. The node reads only what shapes its metrics.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from node.errors import ConfigError

DEFAULT_ORDER = ("ngs_dna_rna", "ngs_rna", "fish", "ngs_dna", "ddpcr", "pcr", "ihc", "other")


@dataclass(frozen=True)
class NodeStandard:
    version: str
    target_days: int
    required_panel: tuple[str, ...]
    non_squamous: tuple[str, ...]
    reference_order: dict[str, tuple[str, ...]]
    vaf_edges: tuple[float, ...]
    text: str

    def rank(self, biomarker: str, method: str) -> int:
        """Lower is a better reference method for this biomarker."""
        order = self.reference_order.get(
            biomarker, self.reference_order.get("default", DEFAULT_ORDER)
        )
        return order.index(method) if method in order else len(order)


def parse(text: str) -> NodeStandard:
    try:
        data = tomllib.loads(text)
        return NodeStandard(
            version=data["standard"]["version"],
            target_days=int(data["turnaround"]["target_working_days"]),
            required_panel=tuple(data["panel"]["required"]),
            non_squamous=tuple(data["panel"]["histologies"]),
            reference_order={
                k: tuple(v) for k, v in data["reference_methods"].items() if k != "source"
            },
            vaf_edges=tuple(
                float(e)
                for e in data.get("vaf", {}).get("edges", (0, 1, 2, 5, 10, 20, 50, 100.0001))
            ),
            text=text,
        )
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ConfigError(
            f"the cached testing standard cannot be read ({exc}); run `rarenet-node standards fetch`"
        ) from exc


def load_cached(path: Path) -> NodeStandard:
    try:
        return parse(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(
            "no testing standard is cached yet; run `rarenet-node enroll` or `rarenet-node standards fetch`"
        ) from exc
