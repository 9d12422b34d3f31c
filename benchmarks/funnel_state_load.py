"""How long stage 2 takes to load its partitions from its state table after a rebalance.

    python -m benchmarks.funnel_state_load [--orders 1000000] [--partitions 8] [--runs 3]

The table (`funnel-state`, streams/funnel/agent.py) holds every order ever seen beside
each partition's open windows; loading has to pass over all of it. Timed: `_load` of every
partition at once (one pass, what the agent does) against one `_load` per partition (the
naive way: a pass each), on a dict table of `--orders` orders and 500 open windows per
partition. In process, no broker. Prints min / median / max of `--runs`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import faust
import orjson

from streams.funnel.agent import FunnelStage
from streams.funnel.aggregates import WindowAggregate
from streams.funnel.orders import OrderState
from streams.runtime.metrics import Metrics
from streams.runtime.settings import load_settings
from streams.runtime.topics import Topics

WINDOWS_PER_PARTITION = 500


def _stage(orders: int, partitions: int) -> FunnelStage:
    config = load_settings(partitions=partitions)
    app = faust.App("funnel-state-load", broker="kafka://127.0.0.1:1", store="memory://")
    stage = FunnelStage(app, config, Topics.declare(app, config), Metrics())
    order = OrderState().encode()
    table = {f"o|s{n % 1000}|o{n}": order for n in range(orders)}
    window = orjson.dumps([5, WindowAggregate().to_dict()])
    for p in range(partitions):
        for w in range(WINDOWS_PER_PARTITION):
            table[f"w|{p}|s{w}|app|{60_000 * (w % 10)}"] = window
    stage.state_table = table
    return stage


def _timed(stage: FunnelStage, loads: list[set[int]]) -> float:
    stage.partitions.clear()
    start = time.perf_counter()
    for partitions in loads:
        stage._load(partitions)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    stage = _stage(args.orders, args.partitions)
    every = set(range(args.partitions))
    one_pass, pass_each = [], []
    for _ in range(args.runs):
        one_pass.append(_timed(stage, [every]))
        pass_each.append(_timed(stage, [{p} for p in every]))
    print(
        f"{args.orders:,} orders, {args.partitions} partitions x {WINDOWS_PER_PARTITION} windows;"
        f" seconds to load every partition, min / median / max of {args.runs}:"
    )
    for name, times in (("one pass (the agent)", one_pass), ("a pass per partition", pass_each)):
        print(f"  {name:22} {min(times):.2f} / {statistics.median(times):.2f} / {max(times):.2f}")


if __name__ == "__main__":
    main()
