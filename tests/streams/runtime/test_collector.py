from __future__ import annotations

import gc

from streams.runtime.collector import freeze_startup_objects


def test_objects_alive_at_start_are_left_out_of_collections() -> None:
    kept = [[i] for i in range(1_000)]  # lists: tracked by the collector whatever they hold
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(kept)
        gc.collect()  # a full collection after the start walks generation 2, not them
        collected = {id(o) for o in gc.get_objects(2)}
        assert not any(id(d) in collected for d in kept)
    finally:
        gc.unfreeze()
