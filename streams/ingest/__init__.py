"""Stage 1: read the input topics, validate whole batches, dead-letter the bad, and route
the good by content to the stage-2 partitions.

`ingestor` is the pure logic, `process` the reader process beside each worker,
`supervisor` starts and restarts it from the worker, `http_api` is `POST /ingest/<topic>`.
"""
