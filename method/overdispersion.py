"""Between-lab variation beyond chance: multiplicative phi and additive random effects.

Following Spiegelhalter (Qual Saf Health Care 2005;14:347-351) and the nhs-r-community
FunnelPlotR package (R/od_adjustment.R) for proportions:

- each site's rate on the arcsine scale, y_i = asin(sqrt(x_i/n_i)), target y0 = asin(sqrt(theta)),
  standard error s_i = 1/(2 sqrt(n_i)); z_i = (y_i - y0)/s_i;
- z-scores winsorised at their 10th and 90th percentiles; phi = mean(z^2);
- test: I phi ~ chi^2 on I - 1 degrees of freedom (I sites);
- DerSimonian-Laird additive variance tau^2 = max(0, (I phi - (I - 1)) / (sum w - sum w^2 / sum w)),
  w_i = 1/s_i^2 = 4 n_i.

Applied only when the test rejects at the stated level AND at least `min_sites` sites contribute.
To leave no jump at the test's threshold, the variance applied is the excess over the test's
critical value, tau2_applied = max(0, (I phi - chi2_crit) / (sum w - sum w^2 / sum w)): zero exactly
where the test stops rejecting, growing continuously above it (the DL estimate is reported beside
it). On the probability scale the between-lab variance is 4 theta (1 - theta) tau^2 (delta
method), i.e. an intra-class correlation rho = 4 tau^2, so the reference distribution of a
site's count becomes beta-binomial(n, theta, rho): the binomial itself at rho = 0, always at
least as wide, never a switch to normal limits.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.special import chdtrc, chdtri

MAX_RHO = 0.5


@dataclass(frozen=True)
class Overdispersion:
    sites: int
    phi: float
    chi2: float
    df: int
    p: float | None
    tau2_dl: float
    tau2: float
    rho: float
    applied: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def phi_winsorised(xs: list[int], ns: list[int], theta: float) -> float:
    """phi from winsorised z-scores on the proportion scale (Spiegelhalter, Stat Med 2005): reported."""
    pairs = [(x, n) for x, n in zip(xs, ns) if n > 0]
    if len(pairs) < 3 or not 0 < theta < 1:
        return 1.0
    z = np.array([(x / n - theta) / math.sqrt(theta * (1 - theta) / n) for x, n in pairs])
    lo, hi = np.percentile(z, [10, 90])
    z = np.clip(z, lo, hi)
    return float(np.mean(z * z))


def estimate(
    xs: list[int], ns: list[int], theta: float, min_sites: int = 10, test_level: float = 0.05
) -> Overdispersion:
    """The arcsine-scale phi, its chi-square test, tau^2 (DL and applied) and rho."""
    pairs = [(min(x, n), n) for x, n in zip(xs, ns) if n > 0]
    sites = len(pairs)
    if sites < 2 or not 0 < theta < 1:
        return Overdispersion(
            sites,
            1.0,
            0.0,
            max(sites - 1, 0),
            None,
            0.0,
            0.0,
            0.0,
            False,
            "fewer than two sites or a rate of 0 or 1",
        )
    x = np.array([p[0] for p in pairs], dtype=float)
    n = np.array([p[1] for p in pairs], dtype=float)
    y = np.arcsin(np.sqrt(x / n))
    y0 = math.asin(math.sqrt(theta))
    z = (y - y0) * 2.0 * np.sqrt(n)
    if sites >= 3:
        lo, hi = np.percentile(z, [10, 90])
        z = np.clip(z, lo, hi)
    phi = float(np.mean(z * z))
    chi2 = sites * phi
    df = sites - 1
    p = float(chdtrc(df, chi2))
    w = 4.0 * n
    denominator = float(w.sum() - (w * w).sum() / w.sum())
    tau2_dl = max(0.0, (chi2 - df) / denominator) if denominator > 0 else 0.0
    critical = float(chdtri(df, test_level))
    reason = (
        f"fewer than {min_sites} sites: not applied"
        if sites < min_sites
        else f"no overdispersion at the {test_level:g} level"
        if p >= test_level or denominator <= 0
        else None
    )
    if reason is not None:
        return Overdispersion(sites, phi, chi2, df, p, tau2_dl, 0.0, 0.0, False, reason)
    tau2 = max(0.0, (chi2 - critical) / denominator)
    rho = min(4.0 * tau2, MAX_RHO)
    return Overdispersion(
        sites,
        phi,
        chi2,
        df,
        p,
        tau2_dl,
        tau2,
        rho,
        rho > 0,
        f"overdispersion (p = {p:.3g}): additive random effects applied",
    )
