"""Memory of the new-vs-returning buyer history (stage 3's `merge-buyers` table) at 10M users.

    python -m benchmarks.buyer_memory [--users 10000000] [--runs 3] [--window-payers 10000]

Each measurement runs in a fresh child process (RSS from /proc, Linux: its growth over the
build, the windows generated one start at a time and dropped) and builds the history of
`--users` buyers (one paid order each, over 4 stores) through the real code path,
`BuyerHistory.classify` on final windows of `--window-payers` paid orders:
- memory store: the table as Faust's memory store holds it (a dict of str key -> 24-byte
  entry);
- RocksDB store: the same writes into a RocksDB database opened with Faust's options
  (`faust.stores.rocksdb.RocksDBOptions`), keys JSON-encoded as Faust does; RSS while open
  and the size on disk;
- naive baseline, in the same runs: a dict of (store, user) -> list of every paid
  (ts, event_id) of the user, the obvious "remember their orders" representation.
Prints min / median / max of the RSS growth over the runs, and bytes per user.
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

MIB = 1024 * 1024
STORES = 4
T0 = 1_794_326_400_000
WINDOW_MS = 60_000


def rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1)) * 1024


def final_windows(users: int, per_window: int) -> Iterator[list[tuple[Any, Any]]]:
    """Per window start, the final windows (one per store) with their payers."""
    from streams.funnel.aggregates import WindowAggregate

    for first in range(0, users, per_window):
        start = T0 + (first // per_window) * WINDOW_MS
        by_store: dict[int, WindowAggregate] = {}
        for i in range(first, min(first + per_window, users)):
            window = by_store.setdefault(i % STORES, WindowAggregate())
            window.payers.append([f"u{i:09d}", start + i % WINDOW_MS, f"e{i}", None])
        yield [((f"store-{s:03d}", "app", start), agg) for s, agg in sorted(by_store.items())]


class _FaustRocksTable:
    """The two operations `BuyerHistory` uses, as Faust's RocksDB store does them."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def get(self, key: str) -> bytes | None:
        return self.db.get(orjson.dumps(key))  # type: ignore[no-any-return]

    def __setitem__(self, key: str, value: bytes) -> None:
        self.db.put(orjson.dumps(key), value)


def measure_store(kind: str, users: int, per_window: int) -> dict[str, float]:
    from streams.merge.buyers import BuyerHistory

    directory = Path(tempfile.mkdtemp(prefix="buyers-")) if kind == "rocksdb" else None
    table: Any
    if directory is not None:
        from faust.stores.rocksdb import RocksDBOptions

        db = RocksDBOptions().open(directory / "merge-buyers-0.db")
        table = _FaustRocksTable(db)
    else:
        table = {}
    history = BuyerHistory(table, lookback_ms=365 * 24 * 3600 * 1000)
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    new = 0
    for final in final_windows(users, per_window):  # one window start at a time
        new += sum(counts.new for counts in history.classify(final).values())
    elapsed = time.perf_counter() - started
    gc.collect()
    result = {"rss": rss_bytes() - before, "seconds": elapsed, "new": new}
    if directory is not None:
        db.flush()
        result["disk"] = sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
        db.close()
        shutil.rmtree(directory)
    return result


def measure_naive(users: int, per_window: int) -> dict[str, float]:
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    orders: dict[tuple[str, str], list[tuple[int, str]]] = {}
    new = 0
    for final in final_windows(users, per_window):
        for (store_id, _channel, _start), aggregate in final:
            for user_id, ts, event_id, _flag in aggregate.payers:
                history = orders.setdefault((store_id, user_id), [])
                new += not history
                history.append((ts, event_id))
    elapsed = time.perf_counter() - started
    gc.collect()
    return {"rss": rss_bytes() - before, "seconds": elapsed, "new": new}


def _child(target: Callable[..., dict[str, float]], args: tuple[Any, ...], queue: Any) -> None:
    queue.put(target(*args))


def in_child(target: Callable[..., dict[str, float]], *args: Any) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(target, args, queue))
    process.start()
    result: dict[str, float] = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--window-payers", type=int, default=10_000)
    args = parser.parse_args()
    variants: dict[str, Callable[[], dict[str, float]]] = {
        "salewatch, memory store": lambda: in_child(
            measure_store, "memory", args.users, args.window_payers
        ),
        "salewatch, RocksDB store": lambda: in_child(
            measure_store, "rocksdb", args.users, args.window_payers
        ),
        "naive: dict of every paid order per user": lambda: in_child(
            measure_naive, args.users, args.window_payers
        ),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for run in range(args.runs):
        for name, measure in variants.items():
            result = measure()
            assert result["new"] == args.users, (name, result)  # every buyer new, once
            results[name].append(result)
            print(f"run {run + 1}: {name}: {_row(result, args.users)}", flush=True)
    print(f"\n{args.users:,} users, {args.runs} runs (RSS growth min / median / max)")
    print("| representation | RSS MiB | bytes / user | build s | on disk MiB |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in results.items():
        rss = sorted(r["rss"] / MIB for r in runs)
        seconds = statistics.median(r["seconds"] for r in runs)
        disk = [r["disk"] / MIB for r in runs if "disk" in r]
        disk_text = f"{statistics.median(disk):,.0f}" if disk else "-"
        median = statistics.median(rss)
        print(
            f"| {name} | {rss[0]:,.0f} / {median:,.0f} / {rss[-1]:,.0f} | "
            f"{median * MIB / args.users:,.0f} | {seconds:,.1f} | {disk_text} |"
        )


def _row(result: dict[str, float], users: int) -> str:
    disk = f", {result['disk'] / MIB:,.0f} MiB on disk" if "disk" in result else ""
    return (
        f"RSS +{result['rss'] / MIB:,.0f} MiB ({result['rss'] / users:,.0f} B/user), "
        f"{result['seconds']:,.1f} s{disk}"
    )


if __name__ == "__main__":
    main()
