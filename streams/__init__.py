"""salewatch's Faust app: ingest, funnel and inventory tables, metrics, HTTP API."""

__all__: list[str] = []
