"""Grafana: dashboards as code (``grafana.dashboards``), generated JSON and provisioning."""

__all__: list[str] = []
