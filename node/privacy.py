"""Optional differential privacy: two-sided geometric noise on released stratum counts, within a
local privacy budget.

The two-sided geometric mechanism adds X with P(X = k) proportional to alpha^|k|, alpha = exp(-epsilon/D),
where D bounds how much one patient can change the released counts (L1 sensitivity): each result a
patient has in the period counts once in its per-method stratum and once in its per-test stratum,
each time in `tests` and in one cell, so D = 4 x the most results any one patient has. Noise goes on
the cells; `tests` is their noisy sum (post-processing keeps the summary consistent and costs no
privacy). The noise is drawn from a generator keyed by the site secret, period and sequence, so the
preview shows exactly what will be signed; the budget is spent only when a summary is signed.

Off by default: at a useful epsilon the noise is larger than the rare-mutation counts the network
exists to see (a site's 3 MET exon 14 positives become 3 +/- dozens).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import random
import sqlite3

from node.errors import NodeError
from protos.rarenet.v1 import summary_pb2 as pb

CELLS = ("positive", "negative", "failed", "equivocal")


class BudgetExhausted(NodeError):
    pass


def two_sided_geometric(rng: random.Random, alpha: float) -> int:
    """One draw with P(k) proportional to alpha^|k| (the difference of two geometric variables)."""
    if alpha <= 0.0:
        return 0
    log_alpha = math.log(alpha)

    def geometric() -> int:  # failures before the first success, success probability 1 - alpha
        return int(math.floor(math.log(1.0 - rng.random()) / log_alpha))

    return geometric() - geometric()


def noise_variance(alpha: float) -> float:
    return 2 * alpha / (1 - alpha) ** 2


def sensitivity(conn: sqlite3.Connection, start: str, end: str) -> int:
    (most,) = conn.execute(
        "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM results WHERE reported_date BETWEEN ? AND ?"
        " AND eqa_round IS NULL GROUP BY patient_key)",
        (start, end),
    ).fetchone()
    return 4 * max(most or 1, 1)


def spent(conn: sqlite3.Connection) -> float:
    return conn.execute("SELECT COALESCE(SUM(epsilon), 0) FROM privacy_budget").fetchone()[0]


def check_budget(conn: sqlite3.Connection, epsilon: float, total: float) -> None:
    used = spent(conn)
    if used + epsilon > total + 1e-12:
        raise BudgetExhausted(
            f"the privacy budget is spent: {used:g} of {total:g} used, this summary needs {epsilon:g}. "
            "Nothing was signed. Raise epsilon_total in node.toml only if your privacy officer agrees"
        )


def record_spend(conn: sqlite3.Connection, sequence: int, period: str, epsilon: float) -> None:
    """Inside the caller's transaction: the spend is stored with the envelope or not at all."""
    conn.execute(
        "INSERT INTO privacy_budget (sequence, period, epsilon, spent_at) VALUES (?, ?, ?, ?)",
        (sequence, period, epsilon, dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
    )


def _content(summary: pb.SiteSummary) -> bytes:
    """The summary's counts before noise, without its sequence number: the noise is a function of
    the data, so an unchanged period is never re-released with fresh noise (which would spend budget
    again and let repeated draws be averaged away)."""
    plain = pb.SiteSummary()
    plain.CopyFrom(summary)
    plain.sequence = 0
    return plain.SerializeToString(deterministic=True)


def apply(summary: pb.SiteSummary, epsilon: float, sensitivity_bound: int, secret: bytes) -> None:
    """Add noise to every released stratum cell, in place, and record the parameters."""
    scale = sensitivity_bound / epsilon
    alpha = math.exp(-1.0 / scale)
    seed = hmac.new(secret, b"dp:" + _content(summary), hashlib.sha256).digest()
    rng = random.Random(seed)
    for stratum in summary.strata:
        if stratum.withheld:
            continue
        for cell in CELLS:
            if cell not in stratum.suppressed_cells:
                setattr(
                    stratum, cell, max(0, getattr(stratum, cell) + two_sided_geometric(rng, alpha))
                )
        stratum.tests = sum(getattr(stratum, c) for c in CELLS)
    summary.policy.differential_privacy.CopyFrom(
        pb.DifferentialPrivacy(
            enabled=True, mechanism="geometric", epsilon=epsilon, noise_scale=scale
        )
    )
