"""Versioned testing standards: TOML data with a source for every rule, not code."""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from coordinator.errors import CoordinatorError

DEFAULT_STANDARD = Path(__file__).parent / "standards" / "rarenet-nsclc-2026.1.toml"


class StandardError(CoordinatorError):
    pass


@dataclass(frozen=True)
class Standard:
    id: str
    version: str
    text: str
    data: dict

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.id} {self.version}"

    def section(self, name: str) -> dict:
        return self.data[name]

    def source(self, name: str) -> str:
        return self.data[name].get("source", "")

    @property
    def target_days(self) -> int:
        return int(self.data["turnaround"]["target_working_days"])

    @property
    def tat_goal(self) -> float:
        return float(self.data["turnaround"]["goal_share_within"])

    @property
    def required_panel(self) -> list[str]:
        return list(self.data["panel"]["required"])

    def max_failure(self, specimen: str) -> float | None:
        value = self.data["failure_rate"].get(specimen)
        return float(value) if isinstance(value, (int, float)) else None

    def positivity(self, biomarker: str) -> dict | None:
        return self.data["positivity"].get(biomarker)

    @property
    def concordance(self) -> dict:
        return self.data["concordance"]

    @property
    def funnel(self) -> dict:
        return self.data["funnel"]


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


def parse(text: str, origin: str = "standard") -> Standard:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StandardError(f"{origin} is not valid TOML: {exc}") from exc
    missing = [s for s in REQUIRED_SECTIONS if s not in data]
    if missing:
        raise StandardError(
            f"{origin} lacks section(s) {missing}; start from {DEFAULT_STANDARD.name}"
        )
    for name in REQUIRED_SECTIONS[1:]:
        section = data[name]
        if name == "positivity":
            for biomarker, rule in section.items():
                if (
                    not rule.get("source")
                    or not 0 <= rule.get("low", -1) <= rule.get("high", -1) <= 1
                ):
                    raise StandardError(
                        f"{origin}: [positivity.{biomarker}] needs 0 <= low <= high <= 1 and a source"
                    )
        elif not section.get("source"):
            raise StandardError(
                f"{origin}: [{name}] has no source; every rule must name its source"
            )
    try:
        return Standard(data["standard"]["id"], str(data["standard"]["version"]), text, data)
    except KeyError as exc:
        raise StandardError(f"{origin}: [standard] needs id and version") from exc


def load(path: Path) -> Standard:
    try:
        return parse(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError as exc:
        raise StandardError(f"no standard at {path}") from exc
