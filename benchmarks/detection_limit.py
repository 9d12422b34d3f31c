"""The best any detector can do against a rate surge within a delay, at the per-series level.

    python -m benchmarks.detection_limit [--base-rate 0.03] [--factor 5] [--windows 3]
        [--per-minute 50 75 100 150 200 300]

A rate of successes per trial (refund requests per paid order: 3%) jumps by `--factor` (x5,
the simulator's refund wave) at a uniformly random point of a window. "Caught within N
windows" means some test at the close of window 1, 2, ... or N fired (1: the window in which
the surge began). With the default thresholds each window's tests of a series share the
level `alerts.detectors.base.Context.level` (an alert that may page: `significance.alpha`)
or `Context.warning_level` (a warning-only alert such as RefundSurge:
`significance.warning_alpha`), so all tests up to window N together have size at most
N x level. By the Neyman-Pearson lemma no rule of that size detects the surge more
often than the likelihood-ratio test of an oracle that knows the baseline rate exactly,
when the surge began and how big it is: the binomial upper tail on exactly the surge's
trials up to window N, at N x level. Its miss rate is therefore a floor for every detector
that keeps the budget (Fisher's test against a learnt baseline, pooling, mid-p or
unconditional tests, CUSUM alike). Trials per window are Poisson; the start point is
averaged over 40 points of the window. Exact sums, no simulation.

Prints, at both budgets, the oracle's miss rate per trials a minute and the chance that it
is never late over 20 incidents (the alert backtest's seeds).
"""

from __future__ import annotations

import argparse
import math

from alerts.detectors.base import Context
from alerts.significance import binom_cdf, binom_sf
from alerts.thresholds import Thresholds

WINDOW_MS = 60_000
START_POINTS = 40  # points of the first window the surge may begin at
SEEDS = 20  # incidents per cell of the alert backtest


def _poisson_pmf(k: int, lam: float) -> float:
    return math.exp(k * math.log(lam) - lam - math.lgamma(k + 1))


def _critical(n: int, rate: float, level: float) -> int:
    """The smallest count whose upper tail under the baseline rate is below the level."""
    return next(c for c in range(n + 2) if binom_sf(c, n, rate) < level)


def oracle_miss(
    per_minute: float, base_rate: float, factor: float, windows: int, level: float
) -> float:
    """Chance that the oracle's test at the close of window `windows` does not fire."""
    surge_rate = min(1.0, base_rate * factor)
    missed = 0.0
    for point in range(START_POINTS):
        offset = (point + 0.5) / START_POINTS  # where in window 1 the surge begins
        lam = per_minute * WINDOW_MS / 60_000 * (windows - offset)
        spread = 8 * math.sqrt(lam) + 8
        for n in range(max(0, int(lam - spread)), int(lam + spread) + 1):
            weight = _poisson_pmf(n, lam)
            missed += weight * binom_cdf(_critical(n, base_rate, level) - 1, n, surge_rate)
    return missed / START_POINTS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-rate", type=float, default=0.03, help="usual rate (0.03)")
    parser.add_argument("--factor", type=float, default=5.0, help="the surge (x5)")
    parser.add_argument("--windows", type=int, default=3, help="delay allowed (3)")
    parser.add_argument("--per-minute", type=float, nargs="+",
                        default=[50, 75, 100, 150, 200, 300], help="trials a minute")  # fmt: skip
    args = parser.parse_args()
    ctx = Context(Thresholds(), WINDOW_MS)
    significance = ctx.thresholds.significance
    budgets = {
        f"paging (alpha {significance.alpha:g})": args.windows * ctx.level,
        f"warning (warning_alpha {significance.warning_alpha:g})": args.windows * ctx.warning_level,
    }
    print(
        f"# oracle: rate {args.base_rate:g} x{args.factor:g}, caught within {args.windows}"
        f" windows of 60 s; tests of size {args.windows} x the window's level: "
        + ", ".join(f"{name} {size:.3g}" for name, size in budgets.items())
        + "\n"
    )
    print(
        "| trials/min | "
        + " | ".join(f"{name}: misses | never late over {SEEDS}" for name in budgets)
        + " |"
    )
    print("|---:|" + "---:|---:|" * len(budgets))
    for per_minute in args.per_minute:
        cells = []
        for size in budgets.values():
            miss = oracle_miss(per_minute, args.base_rate, args.factor, args.windows, size)
            cells.append(f"{miss:.1%} | {(1 - miss) ** SEEDS:.0%}")
        print(f"| {per_minute:g} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
