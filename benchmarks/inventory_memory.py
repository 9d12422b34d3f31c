"""Memory and restore time of the inventory table with 1,000,000 store x SKU keys.

    python -m benchmarks.inventory_memory [--keys 1000000] [--skip-broker] [--skip-in-process]

In-process (each measurement in a fresh child process; RSS from /proc, Linux):
- salewatch: the table as Faust's memory store holds it (str key -> encoded StockState
  bytes), built through `apply_changes` like the agent does, for keys with a snapshot only,
  with a snapshot plus 4 order changes still kept (inside the dedup horizon), and with 4
  order changes 10 minutes apart (the older two kept without ids, for late snapshots);
- naive baseline: a dict of pydantic models, one per key;
- restore: the changelog records re-applied through Faust's memory store
  (`apply_changelog_batch`, the code path of recovery) and the stage's load scan (the
  index of keys not OK, and the quiet due time of the OK ones for slow-moving stock from
  each value's header), next to the scan before slow-moving (status byte only).
With the broker (`make stack-up`): one worker consumes one snapshot per key from the
stock topic (changes/s), then a fresh worker restores the table from the changelog; the
RSS of both and the restore time. With rocksdict installed, the same with
SALEWATCH_STORE=rocksdb://, restarting on the same data directory. Prints tables.
"""

from __future__ import annotations

import argparse
import multiprocessing
import re
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson

MIB = 1024 * 1024
BATCH = 2_000  # changes per agent batch
MESSAGE_CHANGES = 500  # changes per stock-topic message (a busy stage-2 batch sends ~this)
T0 = 1_794_326_400_000


def rss_bytes(pid: int | str = "self") -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match.group(1)) * 1024


def keys(n: int) -> Iterator[tuple[str, str]]:
    """n store x SKU pairs: 1,000 SKUs per store."""
    for i in range(n):
        yield f"store-{i // 1000:04d}", f"sku-{i % 1000:06d}"


def changes_of(store_id: str, sku: str, per_key: int, step_ms: int = 1000) -> list[dict[str, Any]]:
    """A snapshot, then holds of distinct orders every `step_ms` (what stage 2 sends)."""
    out: list[dict[str, Any]] = [
        {"id": f"e-{store_id}-{sku}", "store_id": store_id, "sku": sku, "ts": T0,
         "kind": "snapshot", "qty": 500}
    ]  # fmt: skip
    for j in range(1, per_key):
        out.append({"id": f"hold:o-{store_id}-{sku}-{j}:{sku}", "store_id": store_id, "sku": sku,
                    "ts": T0 + j * step_ms, "kind": "hold", "qty": -1})  # fmt: skip
    return out


# --- in-process measurements (run in child processes) -----------------------------


def build_salewatch(n: int, per_key: int, step_ms: int = 1000) -> dict[str, Any]:
    from streams.inventory.stock import InventoryRules, apply_changes

    rules = InventoryRules()
    table: dict[str, bytes] = {}
    before = rss_bytes()
    started = time.perf_counter()
    batch: list[Any] = []
    for store_id, sku in keys(n):
        batch.extend(changes_of(store_id, sku, per_key, step_ms))
        if len(batch) >= BATCH:
            table.update(apply_changes(table, batch, rules).encoded)  # type: ignore[arg-type]
            batch = []
    if batch:
        table.update(apply_changes(table, batch, rules).encoded)  # type: ignore[arg-type]
    seconds = time.perf_counter() - started
    value_bytes = sum(len(v) for v in table.values())
    return {"rss": rss_bytes(), "delta": rss_bytes() - before, "seconds": seconds,
            "keys": len(table), "value_bytes": value_bytes}  # fmt: skip


def build_naive(n: int, per_key: int) -> dict[str, Any]:
    from pydantic import BaseModel

    class Change(BaseModel):
        id: str
        ts: int
        kind: str
        qty: int

    class StockModel(BaseModel):
        store_id: str
        sku: str
        available: int
        snapshot_ts: int | None
        velocity_per_min: float
        changes: list[Change]

    table: dict[tuple[str, str], StockModel] = {}
    before = rss_bytes()
    started = time.perf_counter()
    for store_id, sku in keys(n):
        changes = changes_of(store_id, sku, per_key)
        table[store_id, sku] = StockModel(
            store_id=store_id,
            sku=sku,
            available=sum(c["qty"] for c in changes),
            snapshot_ts=T0,
            velocity_per_min=0.0,
            changes=[Change(**c) for c in changes[1:]],
        )
    seconds = time.perf_counter() - started
    return {"rss": rss_bytes(), "delta": rss_bytes() - before, "seconds": seconds,
            "keys": len(table), "value_bytes": 0}  # fmt: skip


def replay_changelog(n: int, per_key: int) -> dict[str, Any]:
    """Faust's recovery path for a memory store, then the stage's index scan."""
    from faust.stores.memory import Store

    from streams.inventory.stock import (
        InventoryRules,
        Status,
        StockState,
        StockStatus,
        apply_changes,
        quiet_due,
        quiet_since_of,
        status_of,
    )

    rules = InventoryRules()
    records: dict[str, bytes] = {}
    batch: list[Any] = []
    for store_id, sku in keys(n):
        batch.extend(changes_of(store_id, sku, per_key))
        if len(batch) >= BATCH:
            records.update(apply_changes(records, batch, rules).encoded)  # type: ignore[arg-type]
            batch = []
    if batch:
        records.update(apply_changes(records, batch, rules).encoded)  # type: ignore[arg-type]
    events = [
        SimpleNamespace(key=key, value=value,
                        message=SimpleNamespace(value=value, partition=0, offset=offset))
        for offset, (key, value) in enumerate(records.items())
    ]  # fmt: skip
    del records
    store = Store.__new__(Store)  # only the dict part: no app, no service
    store.data, store._key_partition = {}, {}
    before = rss_bytes()
    started = time.perf_counter()
    for start in range(0, len(events), 10_000):  # Faust's recovery buffer size
        chunk = events[start : start + 10_000]
        store.apply_changelog_batch(chunk, lambda k: k, lambda v: v)  # type: ignore[arg-type]
    applied = time.perf_counter() - started
    found = []
    quiet = {}
    for key, raw in store.data.items():  # InventoryStage._load
        quiet_since = quiet_since_of(raw)
        if quiet_since is not None:
            quiet[key] = quiet_due(quiet_since, rules)
            continue
        state = StockState.decode(raw)
        if state.status is Status.OK:
            quiet[key] = state.quiet_due_ms(rules)
            continue
        found.append(StockStatus.of(key, state, state.max_ts or 0, rules, None))
    scanned = time.perf_counter() - started - applied
    status_only = time.perf_counter()
    for key, raw in store.data.items():  # the scan before slow-moving stock
        if status_of(raw) is not Status.OK:
            state = StockState.decode(raw)
            found.append(StockStatus.of(key, state, state.max_ts or 0, rules, None))
    status_only = time.perf_counter() - status_only
    return {"keys": len(store.data), "apply_s": applied, "scan_s": scanned,
            "status_only_s": status_only, "delta": rss_bytes() - before}  # fmt: skip


def in_child(function: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function, args)  # type: ignore[no-any-return]


# --- with the broker: a real worker consumes, a fresh one restores ------------------


def produce_changes(bootstrap: str, topic: str, n: int, partitions: int) -> None:
    from kafka import KafkaProducer  # type: ignore[import-untyped]

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20,
                             max_request_size=4 * MIB, batch_size=MIB)  # fmt: skip
    by_partition: dict[int, list[dict[str, Any]]] = {p: [] for p in range(partitions)}
    for store_id, sku in keys(n):
        p = zlib.crc32(f"{store_id}|{sku}".encode()) % partitions
        by_partition[p].extend(changes_of(store_id, sku, 1))
        if len(by_partition[p]) >= MESSAGE_CHANGES:
            producer.send(topic, value=orjson.dumps(by_partition[p]), partition=p)
            by_partition[p] = []
    for p, rest in by_partition.items():
        if rest:
            producer.send(topic, value=orjson.dumps(rest), partition=p)
    producer.flush()
    producer.close()


def inventory_processed(worker: Any) -> float:
    match = re.search(r'^salewatch_processed_events_total\{step="inventory"\} (\S+)$',
                      worker.metrics(), re.M)  # fmt: skip
    return float(match.group(1)) if match else 0.0


def start_worker(factory: Any, name: str, data_dir: Path, store: str) -> Any:
    from tests.support.worker import Worker, free_port

    port = free_port()
    log_path = factory.tmp / f"{name}.log"
    env = factory.env(web_port=port, data_dir=data_dir, store=store, partitions=4)
    with log_path.open("wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "streams", "worker", "-l", "info"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    return Worker(name, port, process, log_path, factory.tmp / f"{name}.target.json")


def wait_for(what: str, check: Callable[[], bool], timeout_s: float) -> float:
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(what)
        time.sleep(0.1)
    return time.monotonic() - started


def broker_run(n: int, store: str, tmp: Path) -> dict[str, Any]:
    from tests.support.stack import ensure_stack
    from tests.support.worker import WorkerFactory

    stack = ensure_stack()
    factory = WorkerFactory(stack, tmp / store.split(":")[0])
    factory.tmp.mkdir(parents=True)
    data_dir = factory.tmp / "data"
    started = time.monotonic()
    first = start_worker(factory, "first", data_dir, store)
    startup_s = wait_for(
        "started",
        lambda: "inventory: loaded partitions" in first.log() and _status(first, "/health") == 200,
        300,
    )
    startup_s = time.monotonic() - started
    idle_rss = rss_bytes(first.process.pid)
    started = time.monotonic()  # produced while the worker consumes
    produce_changes(stack.kafka_bootstrap, factory.output_topic("stock"), n, 4)
    wait_for("consumed", lambda: inventory_processed(first) >= n, 1800)
    consumed_s = time.monotonic() - started
    time.sleep(3)  # the changelog producer flushes
    full_rss = rss_bytes(first.process.pid)
    first.stop(signal.SIGTERM, timeout=120)
    # memory: a fresh worker replays the whole changelog; RocksDB: the same directory,
    # read from its persisted offsets on
    restored_dir = factory.tmp / "data2" if store == "memory://" else data_dir
    started = time.monotonic()
    second = start_worker(factory, "second", restored_dir, store)
    try:
        last_store, last_sku = f"store-{(n - 1) // 1000:04d}", f"sku-{(n - 1) % 1000:06d}"
        restore_s = wait_for(
            "restored",
            lambda: (
                second.process.poll() is None
                and "inventory: loaded partitions" in second.log()
                and _status(second, f"/api/stock/{last_store}/{last_sku}") == 200
            ),
            1800,
        )
        restore_s = time.monotonic() - started
        restored_rss = rss_bytes(second.process.pid)
    finally:
        second.stop(signal.SIGTERM, timeout=120)
    return {"startup_s": startup_s, "idle_rss": idle_rss, "full_rss": full_rss,
            "consume_s": consumed_s, "restore_s": restore_s,
            "restored_rss": restored_rss}  # fmt: skip


def _status(worker: Any, path: str) -> int:
    try:
        return int(worker.get(path)[0])
    except OSError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--skip-broker", action="store_true")
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    if not args.skip_in_process:
        in_process(args.keys)
    if not args.skip_broker:
        with_broker(args.keys)


def in_process(n: int) -> None:
    mib = MIB
    print(f"{n:,} store x SKU keys, in-process (child processes):")
    print("\n| representation | order changes per key | RSS MiB | RSS growth MiB | build s |")
    print("|---|---:|---:|---:|---:|")
    salewatch = "salewatch (memory store: str -> bytes)"
    for name, function, args in (
        (salewatch, build_salewatch, (1,)),
        (salewatch, build_salewatch, (5,)),
        (f"{salewatch}, changes 10 min apart", build_salewatch, (5, 10 * 60_000)),
        ("naive: dict of pydantic models", build_naive, (1,)),
        ("naive: dict of pydantic models", build_naive, (5,)),
    ):
        r = in_child(function, n, *args)
        print(f"| {name} | {args[0] - 1} | {r['rss'] / mib:,.0f} | {r['delta'] / mib:,.0f} | "
              f"{r['seconds']:.1f} |")  # fmt: skip
    r = in_child(replay_changelog, n, 1)
    print(f"\nrestore in-process: {r['keys']:,} changelog records through Faust's memory store "
          f"in {r['apply_s']:.2f} s (+{r['delta'] / mib:,.0f} MiB with its key -> partition "
          f"map and the quiet index), load scan {r['scan_s']:.2f} s (status byte only, as "
          f"before slow-moving stock: {r['status_only_s']:.2f} s)")  # fmt: skip


def with_broker(n: int) -> None:
    mib = MIB
    stores = ["memory://"]
    try:
        import rocksdict  # noqa: F401

        stores.append("rocksdb://")
    except ImportError:
        print("\n(rocksdict not installed: RocksDB skipped)")
    print("\nwith the broker, one worker (4 partitions), one snapshot per key:")
    print(
        "\n| store | start s (empty) | idle RSS MiB | RSS with keys MiB | consume s | "
        "changes/s | start s (restore) | RSS after restore MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for store in stores:
            r = broker_run(n, store, Path(tmp))
            print(f"| {store} | {r['startup_s']:.1f} | {r['idle_rss'] / mib:,.0f} | "
                  f"{r['full_rss'] / mib:,.0f} | "
                  f"{r['consume_s']:.1f} | {n / r['consume_s']:,.0f} | {r['restore_s']:.1f} | "
                  f"{r['restored_rss'] / mib:,.0f} |")  # fmt: skip


if __name__ == "__main__":
    main()
