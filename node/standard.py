"""The parts of the network's testing standard a node needs to compute its metrics.

The standard is served by the coordinator (GetStandards), signed, and cached in D/standard.toml so
that `summarize` works offline. The node reads only what shapes its metrics.

Whatever shapes released data is bounded by the node's own policy (`check_bounds`): a standard
may make a release coarser, never finer. VAF edges must be a subset of the policy's; the panel's
histologies must include every histology of the policy's list (leaving one out would isolate
its patients); the panel lists only known biomarkers; the turnaround target is a bin the node
has. A standard outside these bounds is refused, with the reason, and not cached. A standard
that adds a histology changes the panel's population, which is not coarser: it applies to periods
not released yet, and a released period keeps the population it was released with
(node/release.py, `released_standard`).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from node.config import Disclosure
from node.errors import ConfigError, NodeError
from node.vocabulary import BIOMARKERS

TURNAROUND_BINS = 31  # node/metrics.py: 0..29 working days, then "30 or more"


class StandardRefused(NodeError):
    """The coordinator's standard asks for a finer release than the node's policy allows."""


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


def check_bounds(standard: NodeStandard, policy: Disclosure) -> None:
    """Refuse a standard that would make a release finer than the policy allows."""
    problems = []
    allowed = policy.vaf_edges
    finer = [e for e in standard.vaf_edges if not any(abs(e - a) < 1e-9 for a in allowed)]
    if len(standard.vaf_edges) < 2 or finer:
        problems.append(
            f"its VAF edges {list(standard.vaf_edges)} are not a subset of this node's "
            f"vaf_edges {list(allowed)} (edges {finer} would be finer bins)"
        )
    missing = sorted(set(policy.panel_histologies) - set(standard.non_squamous))
    if missing:
        problems.append(
            f"its panel histologies leave out {missing}, which this node's panel_histologies "
            "include (a population that leaves one histology out would isolate its patients)"
        )
    unknown = sorted(set(standard.required_panel) - set(BIOMARKERS))
    if unknown or len(set(standard.required_panel)) != len(standard.required_panel):
        problems.append(f"its panel names unknown or repeated biomarkers {unknown}")
    if not 0 <= standard.target_days < TURNAROUND_BINS - 1:
        problems.append(
            f"its turnaround target {standard.target_days} is not 0 to {TURNAROUND_BINS - 2} days"
        )
    if problems:
        raise StandardRefused(
            f"testing standard {standard.version} is refused: "
            + "; ".join(problems)
            + ". A standard may make what leaves coarser, never finer. Nothing was signed under "
            "it; tell the coordinating centre, or widen [disclosure] in node.toml only if your "
            "privacy officer agrees"
        )
