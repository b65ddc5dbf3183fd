"""False-discovery control across many providers and indicators.

Benjamini & Hochberg (JRSS B 1995) step-up q-values, as proposed for comparing health-care
providers by Jones, Ohlssen & Spiegelhalter (J Clin Epidemiol 2008;61:232-240):
q_(i) = min over j >= i of m p_(j) / j, capped at 1 (statsmodels `multipletests(method="fdr_bh")`).
A test is flagged at level "alarm" when q <= alarm_q and "alert" when q <= alert_q.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def bh_qvalues(pvalues: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the order given."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    if m == 0:
        return []
    p = np.where(np.isfinite(p), np.clip(p, 0.0, 1.0), 1.0)
    order = np.argsort(p, kind="mergesort")
    ranked = p[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m)
    q[order] = np.minimum(ranked, 1.0)
    return [float(v) for v in q]


def level(q: float, alert_q: float, alarm_q: float) -> str | None:
    if q <= alarm_q:
        return "alarm"
    if q <= alert_q:
        return "alert"
    return None
