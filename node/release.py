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
_VALUES = " || char(31) || ".join(
    f"COALESCE({c}, '')"
    for c in (
        "patient_key",
        "received_date",
        "reported_date",
        "specimen",
        "histology",
        "result",
        "vaf",
    )
)
_CURRENT = (
    f"SELECT {_KEY} AS k, {_VALUES} AS v FROM results"
    " WHERE reported_date BETWEEN ? AND ? AND eqa_round IS NULL"
)


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


def changes_since_release(conn: sqlite3.Connection, period: Period) -> int:
    """Results of the period added, changed or removed since its last release."""
    bounds = (period.start.isoformat(), period.end.isoformat())
    (count,) = conn.execute(
        f"""WITH cur AS ({_CURRENT}),
                 old AS (SELECT k, v FROM released_records WHERE period = ?)
            SELECT COUNT(DISTINCT k) FROM (
                SELECT * FROM (SELECT k, v FROM cur EXCEPT SELECT k, v FROM old)
                UNION ALL
                SELECT * FROM (SELECT k, v FROM old EXCEPT SELECT k, v FROM cur))""",
        (*bounds, period.label),
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


def snapshot(conn: sqlite3.Connection, period: Period) -> None:
    """Inside the caller's transaction: what this release counted."""
    conn.execute("DELETE FROM released_records WHERE period = ?", (period.label,))
    conn.execute(
        f"INSERT INTO released_records (period, k, v) SELECT ?, k, v FROM ({_CURRENT})",
        (period.label, period.start.isoformat(), period.end.isoformat()),
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
    if previous.standard_version != standard.version:
        if store.get_state(conn, ACCEPTED_STANDARD) != standard.version:
            return (
                f"{period.label} was released under standard {previous.standard_version}; it is "
                f"not released again under {standard.version} unless the lab approves: "
                "`rarenet-node standards accept`"
            )
        return None
    if not has_snapshot(conn, period):  # released by an earlier version: count from now on
        conn.execute("BEGIN IMMEDIATE")
        snapshot(conn, period)
        conn.execute("COMMIT")
    changed = changes_since_release(conn, period)
    needed = config.disclosure.revision_min_changes
    if changed < needed:
        return (
            f"{period.label}: {changed} result(s) changed since it was released; a revision is "
            f"held until at least {needed} have ([disclosure] revision_min_changes), so that it "
            "does not release a few results as a difference"
        )
    return None
