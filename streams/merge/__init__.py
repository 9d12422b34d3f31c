"""Stage 3: merge the partial windows of every stage-2 partition into final store x channel
windows (phase 2) and emit each once; `api` answers `GET /api/windows/...`.
"""
