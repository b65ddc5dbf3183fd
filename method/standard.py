"""Versioned testing standards: TOML data with a source for every rule, not code.

Parsing is pure (text in, Standard out). Keys added by method 2026.2 are optional with the defaults
below, so standards written before it still parse and give the same targets:

[funnel]  alert, alarm          two-sided levels of the drawn funnel limits (0.95, 0.998)
          alert_q, alarm_q      false-discovery levels of flags (0.05, 0.01)
          overdispersion        true: test for it and apply it when the test says so
          overdispersion_min_sites, overdispersion_test_level (10, 0.05)
[pooling] window_quarters       rolling window for rare drivers (4)
          rare_drivers          biomarkers pooled over the window (those with expected high <= 5%)
          rna_methods           methods that make a site RNA-capable for a biomarker
[eqa]     pass_share            pass mark (0.90)
          pass_share_by_cases   {"9" = 0.88}: a different pass mark for a sub-scheme of that many cases
          persistent_poor       poor in this many of the last `persistent_window` rounds (2 of 3)
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass
from typing import Any

REQUIRED_SECTIONS = (
    "standard",
    "panel",
    "turnaround",
    "failure_rate",
    "positivity",
    "reference_methods",
    "concordance",
    "eqa",
    "funnel",
)
DEFAULT_RNA_METHODS = ("ngs_rna", "ngs_dna_rna")


class StandardError(ValueError):
    """The standard's text is not a valid standard; the message says what to fix."""


def _fraction(section: dict[str, Any], key: str, default: float, origin: str, name: str) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise StandardError(f"{origin}: [{name}] {key} must be a number between 0 and 1")
    return float(value)


@dataclass(frozen=True)
class Standard:
    id: str
    version: str
    text: str
    data: dict[str, Any]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.id} {self.version}"

    def section(self, name: str) -> dict[str, Any]:
        value = self.data.get(name, {})
        return value if isinstance(value, dict) else {}

    def source(self, name: str) -> str:
        return str(self.section(name).get("source", ""))

    @property
    def target_days(self) -> int:
        return int(self.data["turnaround"]["target_working_days"])

    @property
    def tat_goal(self) -> float:
        return float(self.data["turnaround"]["goal_share_within"])

    @property
    def required_panel(self) -> list[str]:
        return list(self.data["panel"]["required"])

    @property
    def panel_target(self) -> float:
        return float(self.section("panel").get("target_share_all_required", 0.9))

    def max_failure(self, specimen: str) -> float | None:
        value = self.data["failure_rate"].get(specimen)
        return (
            float(value)
            if isinstance(value, (int, float)) and not isinstance(value, bool)
            else None
        )

    def positivity(self, biomarker: str) -> dict[str, Any] | None:
        rule = self.data["positivity"].get(biomarker)
        return rule if isinstance(rule, dict) else None

    @property
    def concordance(self) -> dict[str, Any]:
        return self.section("concordance")

    @property
    def funnel(self) -> dict[str, Any]:
        return self.section("funnel")

    @property
    def funnel_levels(self) -> tuple[float, float]:
        f = self.funnel
        return float(f.get("alert", 0.95)), float(f.get("alarm", 0.998))

    @property
    def q_levels(self) -> tuple[float, float]:
        """(alert_q, alarm_q): a flag's q-value must be at or below these."""
        f = self.funnel
        return float(f.get("alert_q", 0.05)), float(f.get("alarm_q", 0.01))

    @property
    def overdispersion(self) -> tuple[bool, int, float]:
        f = self.funnel
        return (
            bool(f.get("overdispersion", False)),
            int(f.get("overdispersion_min_sites", 10)),
            float(f.get("overdispersion_test_level", 0.05)),
        )

    @property
    def window_quarters(self) -> int:
        return int(self.section("pooling").get("window_quarters", 4))

    @property
    def rare_drivers(self) -> list[str]:
        listed = self.section("pooling").get("rare_drivers")
        if isinstance(listed, list):
            return [str(b) for b in listed]
        return sorted(
            b
            for b, rule in self.data["positivity"].items()
            if isinstance(rule, dict) and float(rule.get("high", 1)) <= 0.05
        )

    @property
    def rna_methods(self) -> tuple[str, ...]:
        listed = self.section("pooling").get("rna_methods")
        return tuple(str(m) for m in listed) if isinstance(listed, list) else DEFAULT_RNA_METHODS

    def eqa_pass_share(self, cases: int, announced: float | None = None) -> float:
        """The pass mark for a sub-scheme of `cases` cases: the standard's rule by number of cases,
        else the round's announced pass share, else the standard's."""
        rules = self.section("eqa")
        by_cases = rules.get("pass_share_by_cases", {})
        if isinstance(by_cases, dict) and str(cases) in by_cases:
            return float(by_cases[str(cases)])
        if announced:
            return float(announced)
        return float(rules.get("pass_share", 0.9))

    @property
    def persistent_poor(self) -> tuple[int, int]:
        rules = self.section("eqa")
        return int(rules.get("persistent_poor", 2)), int(rules.get("persistent_window", 3))


def parse(text: str, origin: str = "standard") -> Standard:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StandardError(f"{origin} is not valid TOML: {exc}") from exc
    missing = [s for s in REQUIRED_SECTIONS if not isinstance(data.get(s), dict)]
    if missing:
        raise StandardError(f"{origin} lacks section(s) {missing}")
    for name in REQUIRED_SECTIONS[1:]:
        section = data[name]
        if name == "positivity":
            for biomarker, rule in section.items():
                ok = isinstance(rule, dict) and rule.get("source")
                low, high = (rule.get("low", -1), rule.get("high", -1)) if ok else (-1, -1)
                if (
                    not ok
                    or not all(isinstance(v, (int, float)) for v in (low, high))
                    or not (0 <= low <= high <= 1)
                ):
                    raise StandardError(
                        f"{origin}: [positivity.{biomarker}] needs 0 <= low <= high <= 1 and a source"
                    )
        elif not section.get("source"):
            raise StandardError(
                f"{origin}: [{name}] has no source; every rule must name its source"
            )
    funnel = data["funnel"]
    for key, default in (("alert", 0.95), ("alarm", 0.998), ("alert_q", 0.05), ("alarm_q", 0.01)):
        _fraction(funnel, key, default, origin, "funnel")
    if not funnel.get("alert", 0.95) < funnel.get("alarm", 0.998):
        raise StandardError(f"{origin}: [funnel] alert must be a lower level than alarm")
    if not funnel.get("alarm_q", 0.01) <= funnel.get("alert_q", 0.05):
        raise StandardError(f"{origin}: [funnel] alarm_q must not exceed alert_q")
    _fraction(data["eqa"], "pass_share", 0.9, origin, "eqa")
    window = data.get("pooling", {}).get("window_quarters", 4)
    if not isinstance(window, int) or not 1 <= window <= 8:
        raise StandardError(
            f"{origin}: [pooling] window_quarters must be a whole number from 1 to 8"
        )
    for key in ("target_working_days", "goal_share_within"):
        value = data["turnaround"].get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise StandardError(f"{origin}: [turnaround] needs {key}")
    try:
        return Standard(data["standard"]["id"], str(data["standard"]["version"]), text, data)
    except KeyError as exc:
        raise StandardError(f"{origin}: [standard] needs id and version") from exc
