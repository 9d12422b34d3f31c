"""A panel's queries as Grafana sends them to Prometheus, without Grafana.

Grafana substitutes the dashboard's variables (`$store`, `${sale_seconds}`, ...) and its
macros (`$__rate_interval`, ...) into each target's `expr` before querying. `PanelQueries`
does the same, with fixed values for the macros and `All` for the label variables, and
resolves the `query_result(...)` variables that feed panels a number (`sale_seconds`) with
their own query. Queries can be narrowed to one scrape target (`run` label), so other
workers on a shared Prometheus do not count (Prometheus's own `ALERTS` too: those whose
rule keeps the label). Used by the dashboards' integration test and
by `make pictures`, which draws the war room's panels from real query results.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["MACROS", "PanelQueries", "prometheus_get"]

Json = dict[str, Any]
# Grafana's macros, as Grafana computes them for a one-hour range on a 1 s scrape interval
MACROS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h", "topn": "10"}


def prometheus_get(base_url: str, path: str, params: dict[str, str]) -> list[Json]:
    """The `result` of one Prometheus API query; a rejected query raises, saying which."""
    url = f"{base_url}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body: Json = json.loads(response.read())
    except urllib.error.HTTPError as error:  # a bad query: Prometheus says why
        body = json.loads(error.read())
    if body.get("status") != "success":
        raise ValueError(f"Prometheus refused {params.get('query')!r}: {body}")
    result: list[Json] = body["data"]["result"]
    return result


class PanelQueries:
    """Expands and runs dashboard queries against one Prometheus."""

    def __init__(
        self,
        prometheus_url: str,
        *,
        run: str | None = None,
        store: str = ".*",
        macros: dict[str, str] | None = None,
    ) -> None:
        self.prometheus_url = prometheus_url
        # `job="salewatch"` and ALERTS narrowed to the scrape target labelled `run`
        self.narrowing = {'job="salewatch"': 'job="salewatch"'}
        if run:
            self.narrowing = {'job="salewatch"': f'job="salewatch", run="{run}"',
                              "ALERTS{": f'ALERTS{{run="{run}", '}  # fmt: skip
        self.values = {**(macros or MACROS), "store": store, "channel": ".*", "instance": ".*"}

    def expand(self, expr: str) -> str:
        narrowed = expr
        for selector, narrower in self.narrowing.items():
            narrowed = narrowed.replace(selector, narrower)

        def value(match: re.Match[str]) -> str:
            return self.values[match.group(1) or match.group(2)]

        return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, narrowed)

    def resolve(self, board: Json) -> None:
        """Query variables that feed panels a number (query_result + regex)."""
        for variable in board["templating"]["list"]:
            found = re.fullmatch(r"query_result\((.+)\)", str(variable.get("query", "")))
            if found:
                (sample,) = self.instant(found.group(1))
                self.values[variable["name"]] = str(int(float(sample["value"][1])))

    def instant(self, expr: str, at: float | None = None) -> list[Json]:
        params = {"query": self.expand(expr)}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return prometheus_get(self.prometheus_url, "/api/v1/query", params)

    def range(self, expr: str, start: float, end: float, step_s: float) -> list[Json]:
        params = {
            "query": self.expand(expr),
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step_s:g}",
        }
        return prometheus_get(self.prometheus_url, "/api/v1/query_range", params)
