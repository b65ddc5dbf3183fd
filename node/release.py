"""What may be released, across everything the site has released before.

A summary is one table among linked ones: a month and its quarter, version 1 and version 2 of a
period, the same period under two standards. Their differences are released too. So, before a
summary is signed:

- its period kind must be one the policy names ([disclosure] period_kinds, default quarters), and
  it must not overlap a period of another kind the site already signed (Q2 minus May minus June
  would be April);
- a period already signed is signed again with new data (a revision) only when the results of at
  least revision_min_changes distinct patients changed a released figure since (a revision's
  difference with the last version is itself released: fewer patients, or changes that move no
  figure, would let that difference show a few patients' results). Otherwise it is held, and the
  reason is given;
- a period already signed is signed under a new standard only when the lab ran `rarenet-node
  standards accept`, and then from what its last release counted (the snapshot below), with the
  panel population it was first released with: a new standard changes how the same records are
  tabulated, never which records or which patients (late results still go through the gate).

What a period's last release counted is kept as a snapshot of its results' values
(released_records), with the panel population of its release, so the changes since are exact,
whatever the ingest order, and the period can be rebuilt as it was released.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import sqlite3
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from node import store
from node.config import NodeConfig
from node.errors import NodeError
from node.standard import TURNAROUND_BINS, NodeStandard
from node.workdays import WorkingDays
from protos import wire
from protos.periods import Period
from protos.periods import parse as parse_period
from protos.rarenet.v1 import summary_pb2 as pb

ACCEPTED_STANDARD = "accepted_standard"  # state key: the version `standards accept` approved
POPULATION = "\x1fpanel population"  # released_records key of a release's panel population
_SEP = "char(31)"
_KEY = f"test_id || {_SEP} || biomarker || {_SEP} || method"
_COLUMNS = (
    "patient_key",
    "received_date",
    "reported_date",
    "specimen",
    "histology",
    "result",
    "vaf",
)
_VALUES = " || char(31) || ".join(f"COALESCE({c}, '')" for c in _COLUMNS)
_CURRENT = (
    f"SELECT {_KEY} AS k, {_VALUES} AS v FROM results"
    " WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL"
)
Records = dict[str, tuple[str, ...]]  # test, biomarker, method -> the values metrics read


class PeriodRefused(NodeError):
    """The policy does not release this period (kind, or overlap with a released one)."""


def check_period(conn: sqlite3.Connection, config: NodeConfig, period: Period) -> None:
    kinds = config.disclosure.period_kinds
    if period.kind not in kinds:
        raise PeriodRefused(
            f"{period.label} is a {period.kind}; this node's policy releases only "
            f"{', '.join(k + 's' for k in kinds)} ([disclosure] period_kinds in node.toml)"
        )
    for (label,) in conn.execute(
        "SELECT DISTINCT period FROM outbox WHERE payload_type = ?", (wire.SITE_SUMMARY,)
    ):
        other = parse_period(label)
        if other.kind != period.kind and other.start <= period.end and period.start <= other.end:
            raise PeriodRefused(
                f"{period.label} overlaps {other.label}, already released: their difference "
                "would release the results of the part they do not share. Nothing was signed"
            )


def _split(rows: Iterable[tuple[str, str]]) -> Records:
    return {k: tuple(v.split("\x1f")) for k, v in rows if k != POPULATION}


def current_records(conn: sqlite3.Connection, period: Period) -> Records:
    return _split(conn.execute(_CURRENT, (period.start.isoformat(), period.end.isoformat())))


def released_records(conn: sqlite3.Connection, period: Period) -> Records:
    return _split(
        conn.execute("SELECT k, v FROM released_records WHERE period = ?", (period.label,))
    )


def _figures(records: Records, standard: NodeStandard, workdays: WorkingDays) -> Records:
    """Each record as the released figures see it: its patient (record keys, panel), specimen,
    result, VAF bin if positive, its test's turnaround bin for the specimen, and whether its
    patient is in the panel population. Two versions of a record with the same figures move no
    released count (a histology refined within the population, a VAF within its bin)."""
    spans: dict[tuple[str, str], list[str]] = {}
    population = set()
    for k, (patient, received, reported, specimen, histology, _, _) in records.items():
        span = spans.setdefault((k.split("\x1f")[0], specimen), [received, reported])
        span[0], span[1] = min(span[0], received), max(span[1], reported)
        if histology in standard.non_squamous:
            population.add(patient)
    days: dict[tuple[str, str], int] = {}
    edges = standard.vaf_edges
    out: Records = {}
    for k, (patient, _, _, specimen, _, result, vaf) in records.items():
        received, reported = spans[(k.split("\x1f")[0], specimen)]
        if (received, reported) not in days:
            days[received, reported] = min(
                workdays.between(dt.date.fromisoformat(received), dt.date.fromisoformat(reported)),
                TURNAROUND_BINS - 1,
            )
        vaf_bin = bisect_right(edges, float(vaf)) - 1 if vaf and result == "positive" else -1
        out[k] = (
            patient,
            specimen,
            result,
            str(vaf_bin),
            str(days[received, reported]),
            str(patient in population),
        )
    return out


@dataclasses.dataclass(frozen=True)
class Changes:
    results: int  # added, changed or removed since the last release
    moving: int  # of which change a released figure
    patients: int  # distinct patients of those


def changes_since_release(
    conn: sqlite3.Connection, config: NodeConfig, standard: NodeStandard, period: Period
) -> Changes:
    """What changed in the period since its last release, and whose."""
    old, new = released_records(conn, period), current_records(conn, period)
    results = sum(1 for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    workdays = WorkingDays(config.country, config.subdivision)
    before, after = _figures(old, standard, workdays), _figures(new, standard, workdays)
    moving = [k for k in before.keys() | after.keys() if before.get(k) != after.get(k)]
    patients = {f[0] for k in moving for f in (before.get(k), after.get(k)) if f is not None}
    return Changes(results, len(moving), len(patients))


def has_snapshot(conn: sqlite3.Connection, period: Period) -> bool:
    return (
        conn.execute(
            "SELECT 1 FROM released_records WHERE period = ? LIMIT 1", (period.label,)
        ).fetchone()
        is not None
        or conn.execute(
            "SELECT 1 FROM released_periods WHERE period = ?", (period.label,)
        ).fetchone()
        is not None
    )


def snapshot(conn: sqlite3.Connection, period: Period, standard: NodeStandard) -> None:
    """Inside the caller's transaction: what this release counted, and its panel population."""
    conn.execute("DELETE FROM released_records WHERE period = ?", (period.label,))
    conn.execute(
        f"INSERT INTO released_records (period, k, v) SELECT ?, k, v FROM ({_CURRENT})",
        (period.label, period.start.isoformat(), period.end.isoformat()),
    )
    population = {"histologies": standard.non_squamous, "panel": standard.required_panel}
    conn.execute(
        "INSERT INTO released_records (period, k, v) VALUES (?, ?, ?)",
        (period.label, POPULATION, json.dumps(population)),
    )
    conn.execute("INSERT OR IGNORE INTO released_periods (period) VALUES (?)", (period.label,))


def released_standard(
    conn: sqlite3.Connection, period: Period, standard: NodeStandard
) -> NodeStandard:
    """`standard`, with the panel population and panel list the period was released with (a
    standard that adds a histology must not add its patients to an already released panel: the
    panel cells that moved would be theirs). A period not released yet takes the standard's."""
    row = conn.execute(
        "SELECT v FROM released_records WHERE period = ? AND k = ?", (period.label, POPULATION)
    ).fetchone()
    if row is None:
        return standard
    population = json.loads(row[0])
    return dataclasses.replace(
        standard,
        non_squamous=tuple(population["histologies"]),
        required_panel=tuple(population["panel"]),
    )


def new_standard(previous: pb.SiteSummary, standard: NodeStandard) -> bool:
    return previous.standard_version != standard.version


@contextmanager
def as_released(conn: sqlite3.Connection, period: Period, standard: NodeStandard) -> Iterator[None]:
    """Inside: the period's results are what its last release counted (a temporary `results`
    table, which SQLite reads before the main one), so that the period can be rebuilt under an
    accepted standard without the results that arrived since."""
    if not has_snapshot(conn, period):  # released by an earlier version: from now on
        conn.execute("BEGIN IMMEDIATE")
        snapshot(conn, period, standard)
        conn.execute("COMMIT")
    rows = released_records(conn, period)
    conn.execute(
        "CREATE TEMP TABLE results (test_id TEXT, biomarker TEXT, method TEXT, "
        + ", ".join(f"{c} {'REAL' if c == 'vaf' else 'TEXT'}" for c in _COLUMNS)
        + ", eqa_round TEXT)"
    )
    try:
        conn.executemany(
            f"INSERT INTO temp.results VALUES (?, ?, ?, {', '.join('?' for _ in _COLUMNS)}, NULL)",
            ((*k.split("\x1f"), *v[:-1], float(v[-1]) if v[-1] else None) for k, v in rows.items()),
        )
        yield
    finally:
        conn.execute("DROP TABLE temp.results")


def revision_held(
    conn: sqlite3.Connection,
    config: NodeConfig,
    standard: NodeStandard,
    period: Period,
    previous: pb.SiteSummary,
) -> str | None:
    """Why a new version of an already released period must not be signed now, or None. Under a
    new standard the lab has not accepted it is held; under an accepted one the caller rebuilds
    the period as released (`as_released`), and nothing here applies."""
    if new_standard(previous, standard):
        if store.get_state(conn, ACCEPTED_STANDARD) != standard.version:
            return (
                f"{period.label} was released under standard {previous.standard_version}; it is "
                f"not released again under {standard.version} unless the lab approves: "
                "`rarenet-node standards accept`"
            )
        return None
    if not has_snapshot(conn, period):  # released by an earlier version: count from now on
        conn.execute("BEGIN IMMEDIATE")
        snapshot(conn, period, standard)
        conn.execute("COMMIT")
    changes = changes_since_release(conn, config, standard, period)
    needed = config.disclosure.revision_min_changes
    if changes.patients < needed:
        return (
            f"{period.label}: {changes.results} result(s) changed since it was released, "
            f"{changes.moving} of them moving a released figure, from {changes.patients} "
            f"patient(s); a revision is held until the results of at least {needed} patients "
            "move released figures ([disclosure] revision_min_changes), so that the difference "
            "between two versions does not show a few patients' results"
        )
    return None
