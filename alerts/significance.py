"""One-sided tests for the window detectors, and the per-test alpha they use.

Exact tails (no normal approximation, so small windows are judged right):
- a window's proportion against the baseline's: Fisher's exact test (hypergeometric),
  which counts the baseline's own uncertainty: 53 carts from 193 clicks is a rough
  estimate, and a busy window must not be "significantly" below its noise;
- against a rate known in advance (a reference profile): binomial;
- a window's count against an expected level: Poisson.
Tails are summed from the observed value outwards, where terms shrink geometrically, so a
call costs a few dozen steps at most volumes. No scipy: the worker image stays small.
"""

from __future__ import annotations

import math
from collections.abc import Callable

__all__ = [
    "binom_cdf",
    "binom_sf",
    "fisher_greater",
    "fisher_less",
    "hyper_cdf",
    "hyper_sf",
    "per_test_alpha",
    "poisson_cdf",
    "proportion_p_value",
]

_EPS = 1e-17


def _tail(
    first: float, ratio_at: Callable[[int], float], start: int, stop: int | None, step: int
) -> float:
    """Sum pmf(start), pmf(start + step), ... up to `stop` (inclusive; None: no end), with
    pmf(i + step) = pmf(i) * ratio_at(i), stopping once the terms no longer count."""
    total = term = first
    i = start
    while i != stop:
        term *= ratio_at(i)
        i += step
        total += term
        if term <= total * _EPS:
            break
    return min(1.0, total)


def _binom_log_pmf(k: int, n: int, p: float) -> float:
    return (
        math.lgamma(n + 1)
        - math.lgamma(k + 1)
        - math.lgamma(n - k + 1)
        + k * math.log(p)
        + (n - k) * math.log1p(-p)
    )


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p): how unlikely a count this LOW is."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    if k > n * p:
        return max(0.0, 1.0 - binom_sf(k + 1, n, p))
    odds = (1.0 - p) / p
    first = math.exp(_binom_log_pmf(k, n, p))
    return _tail(first, lambda i: i / (n - i + 1) * odds, k, 0, -1)


def binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p): how unlikely a count this HIGH is."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if k < n * p:
        return max(0.0, 1.0 - binom_cdf(k - 1, n, p))
    odds = p / (1.0 - p)
    first = math.exp(_binom_log_pmf(k, n, p))
    return _tail(first, lambda i: (n - i) / (i + 1) * odds, k, n, 1)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _hyper_log_pmf(x: int, total: int, k: int, n: int) -> float:
    return _log_comb(k, x) + _log_comb(total - k, n - x) - _log_comb(total, n)


def hyper_sf(x: int, total: int, k: int, n: int) -> float:
    """P(X >= x), X ~ Hypergeometric: successes in n draws from total with k successes."""
    low, high = max(0, n - (total - k)), min(n, k)
    if x <= low:
        return 1.0
    if x > high:
        return 0.0
    if x < n * k / total:
        return max(0.0, 1.0 - hyper_cdf(x - 1, total, k, n))
    first = math.exp(_hyper_log_pmf(x, total, k, n))
    return _tail(first, lambda i: (k - i) * (n - i) / ((i + 1) * (total - k - n + i + 1)),
                 x, high, 1)  # fmt: skip


def hyper_cdf(x: int, total: int, k: int, n: int) -> float:
    """P(X <= x), X ~ Hypergeometric (as hyper_sf)."""
    low, high = max(0, n - (total - k)), min(n, k)
    if x < low:
        return 0.0
    if x >= high:
        return 1.0
    if x > n * k / total:
        return max(0.0, 1.0 - hyper_sf(x + 1, total, k, n))
    first = math.exp(_hyper_log_pmf(x, total, k, n))
    return _tail(first, lambda i: i * (total - k - n + i) / ((k - i + 1) * (n - i + 1)),
                 x, low, -1)  # fmt: skip


def fisher_greater(x1: int, n1: int, x0: int, n0: int) -> float:
    """One-sided Fisher exact test: P(at least x1 of the window's n1) if the window's rate
    were the baseline's (x0 of n0). Small: the window's rate is significantly higher."""
    x1, x0 = min(x1, n1), min(x0, n0)
    if n1 == 0 or n0 == 0:
        return 1.0
    return hyper_sf(x1, n0 + n1, x0 + x1, n1)


def fisher_less(x1: int, n1: int, x0: int, n0: int) -> float:
    """One-sided Fisher exact test: P(at most x1 of n1), as fisher_greater. Small: the
    window's rate is significantly lower."""
    x1, x0 = min(x1, n1), min(x0, n0)
    if n1 == 0 or n0 == 0:
        return 1.0
    return hyper_cdf(x1, n0 + n1, x0 + x1, n1)


def proportion_p_value(x: int, n: int, baseline: tuple[int, int] | float, higher: bool) -> float:
    """One-sided p-value of x successes in n trials being higher (or lower) than the
    baseline: counts (successes, trials) -> Fisher; a known rate -> binomial."""
    if isinstance(baseline, tuple):
        x0, n0 = baseline
        return fisher_greater(x, n, x0, n0) if higher else fisher_less(x, n, x0, n0)
    return binom_sf(x, n, baseline) if higher else binom_cdf(x, n, baseline)


def poisson_cdf(k: int, lam: float) -> float:
    """P(X <= k) for X ~ Poisson(lam)."""
    if k < 0:
        return 0.0
    if lam <= 0.0:
        return 1.0
    if k > lam:
        # 1 - P(X >= k + 1), summed upwards from k + 1
        first = math.exp((k + 1) * math.log(lam) - lam - math.lgamma(k + 2))
        upper = _tail(first, lambda i: lam / (i + 1), k + 1, None, 1)
        return max(0.0, 1.0 - upper)
    first = math.exp(k * math.log(lam) - lam - math.lgamma(k + 1))
    return _tail(first, lambda i: i / lam, k, 0, -1)


def per_test_alpha(alpha: float, tests: int, fire_k: int, fire_n: int) -> float:
    """The significance level of one window's test, so that a key fires falsely with
    probability at most `alpha` over `tests` window tests (e.g. a day of windows x stages).

    An alert needs `fire_k` significant windows among the last `fire_n`; by the union
    bound a noise-only key fires at a given window with probability at most
    C(fire_n - 1, fire_k - 1) * a**fire_k (the window itself and k - 1 of the n - 1 before
    it), so a = (alpha / (tests * C(fire_n - 1, fire_k - 1))) ** (1 / fire_k).
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError("alpha must be in (0, 1)")
    if tests < 1 or not 1 <= fire_k <= fire_n:
        raise ValueError("need tests >= 1 and 1 <= fire_k <= fire_n")
    combinations = math.comb(fire_n - 1, fire_k - 1)
    return float((alpha / (tests * combinations)) ** (1.0 / fire_k))
