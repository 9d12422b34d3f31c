"""Stage 2: per routed partition, dedup, the order state machine and the partial windows
(phase 1 of the two-phase aggregation), closed on the watermark.

`partition` is the pure logic with `dedup`, `orders` and `aggregates`; `agent` is its Faust
agent, tables and clock tick.
"""
