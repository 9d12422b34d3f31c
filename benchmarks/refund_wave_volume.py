"""How many paid orders a minute a store needs for RefundSurge to catch a x5 refund wave
within 3 windows, with and without the other stores' prior (alerts.fleet).

    python -m benchmarks.refund_wave_volume [--trials 500] [--per-minute 50 75 100 150 200 300]
        [--seed 1]

The alert backtest judges 20 waves per store size, so its late waves are a handful of
noise draws. Here each wave is drawn many times, as the backtest's refund-wave run has it:
12 windows of 60 s at the usual rate (3% of paid orders), then x5 from a uniformly random
point of window 12 on every store for 6 minutes. Paid orders per window are Poisson,
refunds binomial. The windows go through `alerts.backtest.replay` (the worker's
evaluators, detectors and thresholds, defaults), once for the store alone (no other store:
its own history only) and once with the backtest's other five stores (0.7 to 365 paid
orders a minute: its clicks a minute x 0.073 paid orders per click, as its simulated
stores measure). Prints per volume and set-up: waves caught within 3 windows, the mean
delay of those caught, the chance that 20 waves in a row are all in time, and the store's
false RefundSurge warnings before the waves.
"""

from __future__ import annotations

import argparse
import random
import time
from typing import Any

from alerts.backtest import replay
from alerts.campaign import Calendar, CampaignFile
from alerts.detectors.base import FUNNEL
from benchmarks.alert_backtest import SIZES, TARGET_DELAY

WINDOW_MS = 60_000
START_MS = 1_794_326_400_000  # 2026-11-11 00:00 +08:00, any window start would do
WARMUP_WINDOWS = 12
WAVE_WINDOWS = 6
JUDGED_AFTER = 2  # windows after the wave
RATE = 0.03  # refunds per paid order
FACTOR = 5.0  # the simulator's refund wave
PAID_PER_CLICK = 0.073
JUDGED_STORE = SIZES.index(1000)  # the store whose place the store under test takes
SEEDS = 20  # waves per store size in the alert backtest


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's product method in chunks (exp(-lam) underflows for large lam)."""
    count = 0
    while lam > 0:
        step = min(lam, 30.0)
        lam -= step
        limit, product = 2.718281828459045**-step, rng.random()
        while product > limit:
            count += 1
            product *= rng.random()
    return count


def _binomial(rng: random.Random, n: int, p: float) -> int:
    return sum(rng.random() < p for _ in range(n))


def store_windows(
    rng: random.Random, store_id: str, per_minute: float, wave_at: float
) -> list[dict[str, Any]]:
    """One store's window records: normal, then the wave from `wave_at` (a share of window
    WARMUP_WINDOWS) for WAVE_WINDOWS windows."""
    records = []
    begin = WARMUP_WINDOWS + wave_at
    for i in range(WARMUP_WINDOWS + WAVE_WINDOWS + JUDGED_AFTER + 1):
        inside = max(0.0, min(i + 1, begin + WAVE_WINDOWS) - max(i, begin))  # share in the wave
        usual, waved = (_poisson(rng, per_minute * share) for share in (1 - inside, inside))
        refunds = _binomial(rng, usual, RATE) + _binomial(rng, waved, RATE * FACTOR)
        paid = usual + waved
        start = START_MS + i * WINDOW_MS
        records.append({
            "store_id": store_id, "channel": "app", "window_start": start,
            "window_end": start + WINDOW_MS, "counts": {**dict.fromkeys(FUNNEL, 0), "pay": paid},
            "paid_orders": paid, "payment_failed": 0, "refund_requested": refunds,
        })  # fmt: skip
    return records


def refund_delays(records: list[dict[str, Any]], store_id: str) -> tuple[int | None, int]:
    """(delay of the store's first RefundSurge after the wave began, in windows, 1: at the
    close of its first window; None: not caught) and the store's RefundSurge warnings that
    fired before the wave."""
    result = replay(records, Calendar.build(CampaignFile()))
    wave_ms = START_MS + WARMUP_WINDOWS * WINDOW_MS
    fired_ms = [e.fired_ms for e in result.episodes if e.key.alertname == "RefundSurge"
                and dict(e.key.labels)["store_id"] == store_id]  # fmt: skip
    early = sum(1 for ms in fired_ms if ms <= wave_ms)
    fired = [ms for ms in fired_ms if ms > wave_ms]
    if not fired:
        return None, early
    return (min(fired) - wave_ms) // WINDOW_MS, early


def trial(rng: random.Random, per_minute: float) -> dict[str, tuple[int | None, int]]:
    wave_at = rng.random()
    judged = store_windows(rng, "judged", per_minute, wave_at)
    others = [
        record
        for store, size in enumerate(SIZES)
        if store != JUDGED_STORE
        for record in store_windows(rng, f"other-{store}", size * PAID_PER_CLICK, wave_at)
    ]
    return {"alone": refund_delays(judged, "judged"),
            "with the fleet": refund_delays(judged + others, "judged")}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=500, help="waves per volume (500)")
    parser.add_argument("--per-minute", type=float, nargs="+",
                        default=[50, 75, 100, 150, 200, 300], help="paid orders/min")  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    began = time.monotonic()
    rng = random.Random(args.seed)
    rows = []
    for per_minute in args.per_minute:
        runs = [trial(rng, per_minute) for _ in range(args.trials)]
        for setup in ("alone", "with the fleet"):
            delays = [run[setup][0] for run in runs]
            in_time = sum(1 for d in delays if d is not None and d <= TARGET_DELAY)
            caught = [d for d in delays if d is not None]
            mean = sum(caught) / len(caught) if caught else float("nan")
            share = in_time / len(runs)
            early = sum(run[setup][1] for run in runs)
            rows.append(f"| {per_minute:g} | {setup} | {in_time} of {len(runs)} ({share:.1%}) |"
                        f" {mean:.2f} | {share**SEEDS:.0%} | {early} |")  # fmt: skip
    hours = args.trials * WARMUP_WINDOWS * WINDOW_MS / 3_600_000
    print(f"# refund waves x{FACTOR:g} at {RATE:.0%}: {args.trials} waves per volume, seed"
          f" {args.seed}, {time.monotonic() - began:.0f} s; false warnings counted over the"
          f" {hours:.0f} hours before the waves (per store set-up)\n")  # fmt: skip
    print(f"| paid orders/min | baseline | caught within {TARGET_DELAY} windows | mean delay |"
          f" {SEEDS} of {SEEDS} in time | false warnings before the wave |")  # fmt: skip
    print("|---:|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
