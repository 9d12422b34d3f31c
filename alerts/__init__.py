"""Alerting: stream detectors, the Alertmanager notifier, Prometheus rules and the runbook.

The YAML lives next to the code: ``rules/`` (Prometheus recording and platform alerting
rules), ``tests/`` (``promtool test rules``), ``alertmanager.yml`` and ``runbook.md``.
Shared URLs and dashboard uids are in :mod:`alerts.links`.
"""

__all__: list[str] = []
