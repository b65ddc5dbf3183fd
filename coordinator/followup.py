"""What a report adds to the benchmark from the ledger: metadata (generation time, data cut-off,
submitting and missing labs, volumes, the tree head), each lab's flags over the last periods, the
persistent-outlier marks, corrective actions and the testing-assistance directory.

Persistent (as EMQN marks persistent poor performance in EQA): a lab flagged for the same
indicator in at least 2 of the last 3 consecutive periods, the current one included. Both
positivity rules (against the network and against the expected range) are one indicator, the
biomarker's positivity."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Mapping

from coordinator import actions, benchmark, directory, flag_store
from coordinator.standards import Standard
from protos.periods import parse as parse_period

HISTORY_PERIODS = 4
WINDOW, PERSISTENT_AT = 3, 2


def indicator(rule: str) -> str:
    return "positivity" if rule in ("positivity_funnel", "positivity_below_expected") else rule


def persistent_marks(
    flag_history: dict[str, dict[str, list[dict]]], periods: list[str]
) -> list[dict]:
    """Labs flagged for the same indicator in at least PERSISTENT_AT of the last WINDOW periods
    (`periods` oldest first; the last is the report's)."""
    window = periods[-WINDOW:]
    seen: dict[tuple[str, str, str], set[str]] = {}
    for period in window:
        for site, flags in flag_history.get(period, {}).items():
            for f in flags:
                seen.setdefault((site, indicator(f["rule"]), f["subject"]), set()).add(period)
    return [
        {
            "site_id": site,
            "indicator": ind,
            "subject": subject,
            "periods": window,
            "flagged_in": [p for p in window if p in flagged],
        }
        for (site, ind, subject), flagged in sorted(seen.items())
        if len(flagged) >= PERSISTENT_AT
    ]


def earlier_periods(period: str, count: int = HISTORY_PERIODS) -> list[str]:
    """The periods before `period` (a label) whose flags a report's history shows, oldest first."""
    return [p.label for p in benchmark.periods_for_trends(parse_period(period), count)][:-1]


def kept_flags(
    conn: sqlite3.Connection, period: str, standard: Standard
) -> flag_store.SiteFlags | None:
    """A period's flags without computing anything: none ({}) for a period without summaries,
    those kept for its current inputs (flag_store), else None (its benchmark must be computed)."""
    if not conn.execute("SELECT 1 FROM summaries WHERE period = ? LIMIT 1", (period,)).fetchone():
        return {}
    return flag_store.find(conn, period, benchmark.stored_fingerprint(conn, period, standard))


def period_flags(
    conn: sqlite3.Connection,
    period: str,
    standard: Standard,
    compute: Callable[[str], dict] | None = None,
    decoded: benchmark.Decoded | None = None,
    progress: Callable[[str], None] | None = None,
) -> flag_store.SiteFlags:
    """A period's flags by site: those kept for its current inputs (flag_store), else from its
    benchmark, computed by `compute` (e.g. a cache, if given) or here (and then kept)."""
    kept = kept_flags(conn, period, standard)
    if kept is not None:
        return kept
    if compute is not None:
        return flag_store.by_site(compute(period))
    return benchmark.period_flags(conn, period, standard, progress=progress, decoded=decoded)


def flag_history(
    conn: sqlite3.Connection,
    current: dict,
    standard: Standard,
    count: int = HISTORY_PERIODS,
    compute: Callable[[str], dict] | None = None,
    decoded: benchmark.Decoded | None = None,
    progress: Callable[[str], None] | None = None,
    known: Mapping[str, flag_store.SiteFlags] | None = None,
) -> tuple[list[str], dict[str, dict[str, list[dict]]]]:
    """(periods oldest first, {period: {site: flags}}) over the last `count` periods, each earlier
    period's flags as its own signed summaries give them (`period_flags`). `decoded` (this run's
    decoded summaries) lets the earlier periods' windows decode no summary twice. `known`: earlier
    periods' flags already found for their current inputs (coordinator/earlier_flags.py computes
    them in a second process); the others are found here."""
    periods = earlier_periods(current["period"], count) + [current["period"]]
    decoded = {} if decoded is None else decoded
    known = {} if known is None else known
    history = {current["period"]: flag_store.by_site(current)}
    for label_ in periods[:-1]:
        if label_ in known:
            history[label_] = known[label_]
        else:
            history[label_] = period_flags(conn, label_, standard, compute, decoded, progress)
    return periods, {p: history[p] for p in periods}


def metadata(conn: sqlite3.Connection, current: dict, now: dt.datetime) -> dict:
    leaves = [s["leaf_index"] for s in current["sites"].values()]
    cutoff = None
    if leaves:
        marks = ",".join("?" * len(leaves))
        (cutoff,) = conn.execute(
            f"SELECT MAX(received_at) FROM ledger WHERE leaf_index IN ({marks})", leaves
        ).fetchone()
    enrolled = [
        r[0]
        for r in conn.execute("SELECT site_id FROM sites WHERE status = 'active' ORDER BY site_id")
    ]
    head = conn.execute(
        "SELECT tree_size, root_hash FROM tree_heads ORDER BY tree_size DESC LIMIT 1"
    ).fetchone()
    per_site = {
        site: max(
            [e["turnaround"].get("tests", 0)] + [p["valid"] for p in e["positivity"].values()]
        )
        for site, e in current["sites"].items()
    }
    return {
        "generated_at": now.isoformat(timespec="seconds"),
        "data_cutoff": cutoff,
        "submitting": sorted(current["sites"]),
        "missing": [s for s in enrolled if s not in current["sites"]],
        "volumes": {"total": sum(per_site.values()), "sites": per_site},
        "tree_head": {"size": head[0], "root": bytes(head[1]).hex()} if head else None,
    }


def gather(
    conn: sqlite3.Connection,
    current: dict,
    standard: Standard,
    now: dt.datetime | None = None,
    progress: Callable[[str], None] | None = None,
    compute: Callable[[str], dict] | None = None,
    decoded: benchmark.Decoded | None = None,
    known: Mapping[str, flag_store.SiteFlags] | None = None,
) -> dict:
    """Everything the report shows beyond benchmark.json (written as followup.json). `decoded`:
    the summaries this run already decoded (benchmark.Decoded), e.g. for the current period.
    `known`: earlier periods' flags already found (see flag_history)."""
    moment = now or dt.datetime.now(dt.UTC)
    if progress:
        progress("flags of the earlier periods, corrective actions, directory")
    periods, history = flag_history(
        conn, current, standard, compute=compute, decoded=decoded, progress=progress, known=known
    )
    return {
        "meta": metadata(conn, current, moment),
        "flag_history": history,
        "persistent": persistent_marks(history, periods),
        "actions": actions.latest(conn),
        "directory": directory.entries(conn, current),
    }
