"""What may be released, across everything the site has released before.

A summary is one table among linked ones: a month and its quarter, version 1 and version 2 of a
period, the same period under two standards. Their differences are released too. So, before a
summary is signed:

- its period kind must be one the policy names ([disclosure] period_kinds, default quarters), and
  it must not overlap a period of another kind the site already signed (Q2 minus May minus June
  would be April);
- a period already signed is signed again (a revision) only when at least revision_min_changes of
  its results changed since (a smaller revision releases those few results as a difference), and
  only under the standard it was signed with unless the lab ran `rarenet-node standards accept`.
  Otherwise the revision is held, and the reason is given.

What a period's last release counted is kept as a snapshot of its results' values
(released_records), so the number of results changed since is exact, whatever the ingest order.
"""

from __future__ import annotations

import json
import sqlite3

from node import store
from node.config import NodeConfig
from node.errors import NodeError
from node.standard import NodeStandard
from protos import wire
from protos.periods import Period
from protos.periods import parse as parse_period
from protos.rarenet.v1 import summary_pb2 as pb

ACCEPTED_STANDARD = "accepted_standard"  # state key: the version `standards accept` approved
_SEP = "char(31)"
_KEY = f"test_id || {_SEP} || biomarker || {_SEP} || method"


def _current(standard: NodeStandard, period: Period) -> tuple[str, list[object]]:
    """The period's records as the tables see them: a change the tables cannot see (a histology
    refined within the panel's population, a VAF within its bin, a VAF on a negative) is not a
    change. Returns the SELECT and its parameters (the standard's words are bound, never
    pasted into SQL: the standard comes from the coordinator)."""
    histologies = sorted(standard.non_squamous)
    edges = list(standard.vaf_edges)
    bins = " ".join(f"WHEN vaf < ? THEN '{i}'" for i in range(len(edges)))
    values = " || char(31) || ".join(
        (
            "patient_key",
            "received_date",
            "reported_date",
            "specimen",
            f"CASE WHEN histology IN ({', '.join('?' * len(histologies))}) THEN 'panel' "
            "ELSE 'out' END",
            "result",
            f"CASE WHEN result != 'positive' OR vaf IS NULL THEN '' {bins} ELSE 'above' END",
        )
    )
    sql = (
        f"SELECT {_KEY} AS k, {values} AS v FROM results"
        " WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL"
    )
    return sql, [*histologies, *edges, period.start.isoformat(), period.end.isoformat()]


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


def changes_since_release(conn: sqlite3.Connection, period: Period, standard: NodeStandard) -> int:
    """Patients with a result of the period added, changed or removed since its last release
    (patients, not results: one late panel of eleven biomarkers is one patient's)."""
    current, parameters = _current(standard, period)
    (count,) = conn.execute(
        f"""WITH cur AS ({current}),
                 old AS (SELECT k, v FROM released_records WHERE period = ?)
            SELECT COUNT(DISTINCT substr(v, 1, instr(v, char(31)) - 1)) FROM (
                SELECT * FROM (SELECT k, v FROM cur EXCEPT SELECT k, v FROM old)
                UNION ALL
                SELECT * FROM (SELECT k, v FROM old EXCEPT SELECT k, v FROM cur))""",
        (*parameters, period.label),
    ).fetchone()
    return int(count)


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


def shape(standard: NodeStandard) -> str:
    """What of a standard decides which records a table counts (not its version or targets)."""
    return json.dumps(
        {
            "panel_histologies": sorted(standard.non_squamous),
            "panel": list(standard.required_panel),
            "vaf_edges": list(standard.vaf_edges),
            "reference_order": {k: list(v) for k, v in sorted(standard.reference_order.items())},
        },
        sort_keys=True,
    )


def snapshot(conn: sqlite3.Connection, period: Period, standard: NodeStandard) -> None:
    """Inside the caller's transaction: what this release counted, and under what shape."""
    store.set_state(conn, f"released_shape:{period.label}", shape(standard))
    conn.execute("DELETE FROM released_records WHERE period = ?", (period.label,))
    current, parameters = _current(standard, period)
    conn.execute(
        f"INSERT INTO released_records (period, k, v) SELECT ?, k, v FROM ({current})",
        (period.label, *parameters),
    )
    conn.execute("INSERT OR IGNORE INTO released_periods (period) VALUES (?)", (period.label,))


def revision_held(
    conn: sqlite3.Connection,
    config: NodeConfig,
    standard: NodeStandard,
    period: Period,
    previous: pb.SiteSummary,
) -> str | None:
    """Why a new version of an already released period must not be signed now, or None."""
    new_standard = previous.standard_version != standard.version
    if new_standard and store.get_state(conn, ACCEPTED_STANDARD) != standard.version:
        return (
            f"{period.label} was released under standard {previous.standard_version}; it is "
            f"not released again under {standard.version} unless the lab approves: "
            "`rarenet-node standards accept`"
        )
    if new_standard and store.get_state(conn, f"released_shape:{period.label}") != shape(standard):
        return (
            f"standard {standard.version} counts other records than {previous.standard_version} "
            f"did (panel histologies or biomarkers, VAF edges, reference methods): {period.label} "
            "signed again under it would release the difference, the records of the histology "
            "or bin that changed. It stays as released; later periods use the new standard"
        )
    if not has_snapshot(conn, period):  # released by an earlier version: count from now on
        conn.execute("BEGIN IMMEDIATE")
        snapshot(conn, period, standard)
        conn.execute("COMMIT")
    changed = changes_since_release(conn, period, standard)
    needed = config.disclosure.revision_min_changes
    if new_standard and changed == 0:
        return None  # the same results under an accepted standard: the lab approved that table
    if changed < needed:
        return (
            f"{period.label}: results of {changed} patient(s) changed since it was released; a "
            f"revision is held until those of at least {needed} have ([disclosure] "
            "revision_min_changes), so that it does not release a few patients' results as a "
            "difference"
        )
    return None
