"""The binomial's pmf, CDF, survival function and quantile and the beta's quantile, as
scipy.stats.binom and scipy.stats.beta compute them, without importing scipy.stats.

scipy.stats (0.7 CPU s to import, in every process that runs the method) evaluates these through
the Boost ufuncs of scipy.special (`_binom_pmf`, `_binom_cdf`, `_binom_sf`, `_binom_ppf`,
`_beta_ppf`) after checking the arguments and the support. The functions here do the same checks
and call the same ufuncs, element by element: the same numbers (tests/test_method_distributions.py
holds them to scipy.stats). Arguments broadcast together; a 0-d result is returned as a numpy
scalar, as scipy.stats does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import _ufuncs

Floats = NDArray[np.float64]


def _binomial_args(
    k: ArrayLike, n: ArrayLike, p: ArrayLike
) -> tuple[Floats, Floats, Floats, NDArray[np.bool_]]:
    """k, n, p broadcast together, and where (n, p) are a binomial's parameters (n a whole
    number at least 0, p in [0, 1])."""
    k_, n_, p_ = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (k, n, p)))
    valid: NDArray[np.bool_] = (n_ >= 0) & (n_ == np.round(n_)) & (p_ >= 0) & (p_ <= 1)
    return k_, n_, p_, valid


def _result(out: Floats) -> Any:
    return out[()] if out.ndim == 0 else out


def binom_pmf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> Any:
    """scipy.stats.binom.pmf(k, n, p)."""
    k_, n_, p_, valid = _binomial_args(k, n, p)
    use = valid & (k_ >= 0) & (k_ <= n_) & (np.floor(k_) == k_)
    out = np.zeros(k_.shape)
    out[~valid | np.isnan(k_)] = np.nan
    out[use] = np.clip(_ufuncs._binom_pmf(k_[use], n_[use], p_[use]), 0, 1)
    return _result(out)


def binom_cdf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> Any:
    """scipy.stats.binom.cdf(k, n, p): P(X <= k)."""
    k_, n_, p_, valid = _binomial_args(k, n, p)
    use = valid & (k_ >= 0) & (k_ < n_) & np.isfinite(k_)
    out = np.zeros(k_.shape)
    out[k_ >= n_] = 1.0
    out[np.isneginf(k_)] = 0.0
    out[~valid | np.isnan(k_)] = np.nan
    out[use] = np.clip(_ufuncs._binom_cdf(np.floor(k_[use]), n_[use], p_[use]), 0, 1)
    return _result(out)


def binom_sf(k: ArrayLike, n: ArrayLike, p: ArrayLike) -> Any:
    """scipy.stats.binom.sf(k, n, p): P(X > k)."""
    k_, n_, p_, valid = _binomial_args(k, n, p)
    use = valid & (k_ >= 0) & (k_ < n_) & np.isfinite(k_)
    out = np.zeros(k_.shape)
    out[~valid | np.isnan(k_)] = np.nan
    out[((k_ < 0) | np.isneginf(k_)) & valid] = 1.0
    out[use] = np.clip(_ufuncs._binom_sf(np.floor(k_[use]), n_[use], p_[use]), 0, 1)
    return _result(out)


def binom_ppf(q: ArrayLike, n: ArrayLike, p: ArrayLike) -> Any:
    """scipy.stats.binom.ppf(q, n, p): the smallest k with P(X <= k) >= q."""
    q_, n_, p_, valid = _binomial_args(q, n, p)
    use = valid & (q_ > 0) & (q_ < 1)
    out = np.full(q_.shape, np.nan)
    out[(q_ == 0) & valid] = -1.0
    top = (q_ == 1) & valid
    out[top] = n_[top]
    out[use] = _ufuncs._binom_ppf(q_[use], n_[use], p_[use]) + 0.0
    return _result(out)


def beta_ppf(q: ArrayLike, a: ArrayLike, b: ArrayLike) -> Any:
    """scipy.stats.beta.ppf(q, a, b): the q-quantile of Beta(a, b)."""
    q_, a_, b_ = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (q, a, b)))
    valid = (a_ > 0) & (b_ > 0)
    use = valid & (q_ > 0) & (q_ < 1)
    out = np.full(q_.shape, np.nan)
    out[valid & (q_ == 0)] = 0.0
    out[valid & (q_ == 1)] = 1.0
    out[use] = _ufuncs._beta_ppf(q_[use], a_[use], b_[use]) * 1.0 + 0.0
    return _result(out)
