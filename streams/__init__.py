"""salewatch's Faust app, a package per stage in the order data flows.

contract (events, decoding, dead letters, routing) → eventtime → ingest (stage 1) →
funnel (stage 2) → merge (stage 3), with inventory beside them; runtime runs them
(settings, metrics, tables, web) and its `app` wires them with the alerts.
See docs/architecture.md for the folder map.
"""

__all__: list[str] = []
