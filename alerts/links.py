"""The one place for links that alerts and dashboards share.

Prometheus rules (``rules/*.yml``) cannot import Python, so their ``runbook_url``
annotations are literal strings; ``tests/alerts/test_rules.py`` checks each one equals
:func:`runbook_url` of its alert. Stream detectors build ``runbook_url`` and the
Alertmanager ``generatorURL`` with the functions below; ``grafana/dashboards.py`` takes
its dashboard uids from here.
"""

from typing import Final
from urllib.parse import urlencode

__all__ = [
    "PLATFORM_DASHBOARD_UID",
    "RUNBOOK_BASE_URL",
    "WARROOM_DASHBOARD_UID",
    "dashboard_url",
    "runbook_anchor",
    "runbook_url",
]

RUNBOOK_BASE_URL: Final = "https://github.com/salewatch/salewatch/blob/main/alerts/runbook.md"
"""Where ``alerts/runbook.md`` is published; forks replace this one line (and the rules)."""

WARROOM_DASHBOARD_UID: Final = "salewatch-warroom"
PLATFORM_DASHBOARD_UID: Final = "salewatch-platform"


def runbook_anchor(alertname: str) -> str:
    """The runbook anchor of an alert: its ``## <AlertName>`` heading as GitHub slugs it."""
    return alertname.lower()


def runbook_url(alertname: str) -> str:
    """The ``runbook_url`` annotation of an alert."""
    return f"{RUNBOOK_BASE_URL}#{runbook_anchor(alertname)}"


def dashboard_url(grafana_url: str, uid: str, **variables: str) -> str:
    """A link to a Grafana dashboard with template variables set, e.g. for ``generatorURL``.

    >>> dashboard_url("http://grafana:3000/", WARROOM_DASHBOARD_UID, store="s1")
    'http://grafana:3000/d/salewatch-warroom?var-store=s1'
    """
    url = f"{grafana_url.rstrip('/')}/d/{uid}"
    if not variables:
        return url
    query = urlencode({f"var-{name}": value for name, value in sorted(variables.items())})
    return f"{url}?{query}"
