"""EQA scoring: a pure function of the round, the truth and a lab's response.

Scoring (ESP lung EQA style, ../shared/reference section 3): per sample and biomarker, the round's
`points_correct` for a correct call, none for an error (false positive, false negative, wrong
variant) or a call not reported; a technical failure (failed, equivocal) scores nothing and is
counted apart.

Sub-schemes: each biomarker is scored and passed separately (ESP: EGFR, ALK FISH, ALK IHC, ...);
the truth file may name the sub-scheme per line in an optional `scheme` column (for example
"ALK IHC" and "ALK FISH" for the same biomarker tested by method). Pass mark by number of cases:
the standard's [eqa] pass_share_by_cases (ESP: >= 88% when only nine cases are scored), else the
round's announced pass share (>= 90%). A lab passes the round when it passes every sub-scheme.

Persistent poor performance (EMQN): poor (any sub-scheme failed) in at least 2 of the 3 most
recent rounds the lab took part in, the current one included.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from protos.rarenet.v1 import eqa_pb2 as epb

Truth = dict[tuple[str, str], tuple[str, str]]
ERROR_OUTCOMES = ("false_positive", "false_negative", "wrong_variant")


class EqaError(ValueError):
    """An EQA file (truth, samples) cannot be used; the message says which line and why."""


def commitment(salt: bytes, truth: bytes) -> str:
    return hashlib.sha256(salt + truth).hexdigest()


def _rows(data: bytes) -> list[tuple[int, dict[str, str]]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EqaError(f"the truth file is not UTF-8 text: {exc}") from exc
    return list(enumerate(csv.DictReader(io.StringIO(text)), start=2))


def parse_truth(data: bytes) -> Truth:
    """CSV with columns sample_id, biomarker, result, variant: {(sample, biomarker): (result, variant)}."""
    truth: Truth = {}
    for line, row in _rows(data):
        key = ((row.get("sample_id") or "").strip(), (row.get("biomarker") or "").strip())
        result = (row.get("result") or "").strip()
        if not all(key) or result not in ("positive", "negative"):
            raise EqaError(
                f"truth file line {line}: needs sample_id, biomarker and result positive/negative"
            )
        truth[key] = (result, (row.get("variant") or "").strip())
    return truth


def parse_schemes(data: bytes) -> dict[tuple[str, str], str]:
    """The optional `scheme` column of the truth file: {(sample, biomarker): sub-scheme}."""
    return {
        ((row.get("sample_id") or "").strip(), (row.get("biomarker") or "").strip()): scheme
        for _, row in _rows(data)
        if (scheme := (row.get("scheme") or "").strip())
    }


def _variant(text: str) -> str:
    return " ".join(text.casefold().split())


def score(
    round_: epb.EqaRound,
    truth: Truth,
    site_id: str,
    response: epb.EqaResponse | None,
    leaf_index: int = -1,
    pass_mark: Callable[[int], float] | None = None,
    schemes: dict[tuple[str, str], str] | None = None,
) -> epb.EqaScoreSheet:
    """The score sheet of one lab. `passed` is true when every sub-scheme passes at its pass mark
    (pass_mark(cases); by default the round's pass share)."""
    calls: dict[tuple[str, str], epb.EqaCall] = {}
    if response is not None:
        for answered in response.calls:
            calls[(answered.sample_id, answered.biomarker)] = answered  # the last call counts
    sheet = epb.EqaScoreSheet(
        round_id=round_.round_id,
        site_id=site_id,
        pass_share=round_.pass_share,
        response_leaf_index=leaf_index,
    )
    points = round_.points_correct
    for sample in round_.samples:
        for biomarker in sample.biomarkers:
            expected, expected_variant = truth.get((sample.sample_id, biomarker), ("negative", ""))
            call = calls.get((sample.sample_id, biomarker))
            line = epb.EqaScoreLine(
                sample_id=sample.sample_id,
                biomarker=biomarker,
                expected_result=expected,
                expected_variant=expected_variant,
            )
            if call is None:
                line.outcome = "not_reported"
            else:
                line.reported_result, line.reported_variant = call.result, call.variant
                if call.result in ("failed", "equivocal"):
                    line.outcome = "technical_failure"
                elif call.result != expected:
                    line.outcome = (
                        "false_positive" if call.result == "positive" else "false_negative"
                    )
                elif (
                    expected == "positive"
                    and expected_variant
                    and call.variant
                    and _variant(call.variant) != _variant(expected_variant)
                ):
                    line.outcome = "wrong_variant"
                else:
                    line.outcome, line.points = "correct", points
            sheet.lines.append(line)
    sheet.max_points = points * len(sheet.lines)
    sheet.points = sum(line.points for line in sheet.lines)
    sheet.score = sheet.points / sheet.max_points if sheet.max_points else 0.0
    parts = subschemes(sheet, pass_mark or (lambda _cases: round_.pass_share), schemes)
    sheet.passed = bool(parts) and all(p.passed for p in parts.values())
    sheet.errors = sum(line.outcome in ERROR_OUTCOMES for line in sheet.lines)
    sheet.technical_failures = sum(line.outcome == "technical_failure" for line in sheet.lines)
    return sheet


@dataclass
class SubScheme:
    cases: int = 0
    points: int = 0
    max_points: int = 0
    errors: int = 0
    technical_failures: int = 0
    pass_share: float = 0.9
    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def score(self) -> float:
        return self.points / self.max_points if self.max_points else 0.0

    @property
    def passed(self) -> bool:
        return self.max_points > 0 and self.score >= self.pass_share - 1e-12

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "points": self.points,
            "max_points": self.max_points,
            "score": self.score,
            "pass_share": self.pass_share,
            "passed": self.passed,
            "errors": self.errors,
            "technical_failures": self.technical_failures,
        }


def subschemes(
    sheet: epb.EqaScoreSheet,
    pass_mark: Callable[[int], float],
    schemes: dict[tuple[str, str], str] | None = None,
) -> dict[str, SubScheme]:
    """The sheet's lines grouped by sub-scheme (the biomarker unless the truth names one)."""
    parts: dict[str, SubScheme] = defaultdict(SubScheme)
    for line in sheet.lines:
        name = (schemes or {}).get((line.sample_id, line.biomarker), line.biomarker)
        part = parts[name]
        part.cases += 1
        part.points += line.points
        part.errors += line.outcome in ERROR_OUTCOMES
        part.technical_failures += line.outcome == "technical_failure"
        part.outcomes[f"{line.sample_id}/{line.biomarker}"] = line.outcome
    points = sheet.max_points // len(sheet.lines) if sheet.lines else 0
    for part in parts.values():
        part.max_points = points * part.cases
        part.pass_share = pass_mark(part.cases)
    return dict(sorted(parts.items()))


def persistent_poor(history: list[bool | None], poor: int = 2, window: int = 3) -> bool:
    """history: per round, oldest first, True when the lab performed poorly, None when it did not
    take part. Persistent poor performance: poor in `poor` of the last `window` rounds taken."""
    taken = [h for h in history if h is not None][-window:]
    return sum(taken) >= poor
