from __future__ import annotations

import gc

from streams.runtime.collector import freeze_startup_objects


def test_objects_alive_at_start_are_left_out_of_collections() -> None:
    kept = [{"alive": i} for i in range(1_000)]
    try:
        freeze_startup_objects()
        assert gc.get_freeze_count() >= len(kept)
        assert all(not any(o is d for o in gc.get_objects(2)) for d in kept[:3])
    finally:
        gc.unfreeze()
