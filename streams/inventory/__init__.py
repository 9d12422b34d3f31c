"""Inventory: available stock per store x SKU in event time, sales velocity and time to
stock-out, fed by the stock changes stage 2 sends (`changes`); `stock` is the pure logic,
`agent` its Faust agent, `api` answers `GET /api/stock/...`.
"""
