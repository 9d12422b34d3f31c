"""Prometheus rules as code: the recording rules and the platform alerts of salewatch.

``python -m alerts.prometheus_rules`` writes ``alerts/rules/<name>.yml``; with ``--check`` it
writes nothing and exits 1 naming each file that is missing, stale or unexpected (CI runs the
check through ``tests/alerts/test_prometheus_rules.py``).

As in a monitoring mixin's ``config.libsonnet``, every threshold, ``for:`` duration and
selector of the platform alerts is one field of :class:`PlatformConfig` below; the rules are
built from it by small functions, and each alert's ``runbook_url`` is
:func:`alerts.links.runbook_url` of its name. The windows of the recording rules are part of
the recorded series' names (``rate5m``), which dashboards and promtool tests read, so they are
constants of the rules rather than settings.

Output is deterministic and meant to be read: a header comment per file, the comment of each
rule (why it is as it is), ``|`` blocks for multi-line PromQL and folded ``>-`` descriptions.
:func:`render` checks that the YAML parses back to exactly the rules.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]

from alerts.as_code import generate_main
from alerts.links import runbook_url

__all__ = [
    "CONFIG",
    "OUTPUT_DIR",
    "AlertingRule",
    "PlatformConfig",
    "RecordingRule",
    "RuleFile",
    "RuleGroup",
    "build_rule_files",
    "main",
    "render",
]


@dataclass(frozen=True)
class PlatformConfig:
    """Every threshold, ``for:`` duration and selector of the rules. Durations: whole minutes."""

    # The workers' scrape job; every raw metric is read through it.
    job_selector: str = 'job="salewatch"'
    # SalewatchWorkerDown: a worker not scraped (or no target at all) for this long.
    worker_down_for: timedelta = timedelta(minutes=1)
    # SalewatchConsumerLagHigh: lag summed over a topic above this many messages, and not
    # shrinking (deriv >= 0 over the trend window), for `lag_for`. A big backlog that drains
    # (the midnight surge being worked off) does not fire.
    lag_messages: int = 10_000
    lag_trend_window: timedelta = timedelta(minutes=10)
    lag_for: timedelta = timedelta(minutes=5)
    # SalewatchDeadLetterRateHigh: share (0-1) of a topic's input dead-lettered, on a topic
    # with at least this much input (events/s): a trickle of bad input is not worth an alert.
    deadletter_ratio: float = 0.01
    deadletter_min_input_rate: float = 0.1
    deadletter_for: timedelta = timedelta(minutes=5)
    # SalewatchProduceErrors: new send errors within the window, for `produce_errors_for`.
    # Stage 1 retries with pauses of up to 30 s, so a lasting failure errs again within it.
    produce_errors_window: timedelta = timedelta(minutes=2)
    produce_errors_for: timedelta = timedelta(minutes=2)
    # SalewatchNoEvents: no valid event within the window while some worker is up.
    no_events_window: timedelta = timedelta(minutes=5)
    no_events_for: timedelta = timedelta(minutes=5)
    # SalewatchEventsUnaccounted: on a topic, events read minus their outcomes over the
    # window above ratio x events read + a slack of events ...
    unaccounted_window: timedelta = timedelta(minutes=15)
    unaccounted_ratio: float = 0.01
    unaccounted_slack_events: int = 100
    # ... or a stage's runtime check found events counted nowhere within this window.
    unaccounted_check_window: timedelta = timedelta(minutes=10)
    unaccounted_for: timedelta = timedelta(minutes=5)


CONFIG = PlatformConfig()
OUTPUT_DIR = Path(__file__).resolve().parent / "rules"
LINE_WIDTH = 92  # rule comments and folded descriptions wrap here

Severity = Literal["critical", "warning", "info", "none"]


# -- the rule model -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RecordingRule:
    record: str
    expr: str
    labels: tuple[tuple[str, str], ...] = ()
    comment: str = ""  # written above the rule

    def as_dict(self) -> dict[str, Any]:
        """The rule as Prometheus reads it."""
        labels = {"labels": dict(self.labels)} if self.labels else {}
        return {"record": self.record, **labels, "expr": self.expr}


@dataclass(frozen=True)
class AlertingRule:
    alert: str
    expr: str
    for_: timedelta | None  # None: fires from the first evaluation
    severity: Severity
    summary: str
    description: str
    comment: str = ""  # written above the rule

    def as_dict(self) -> dict[str, Any]:
        """The rule as Prometheus reads it; ``runbook_url`` from :func:`runbook_url`."""
        pending = {} if self.for_ is None else {"for": promql_duration(self.for_)}
        return {
            "alert": self.alert,
            "expr": self.expr,
            **pending,
            "labels": {"severity": self.severity},
            "annotations": {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": runbook_url(self.alert),
            },
        }


Rule = RecordingRule | AlertingRule


@dataclass(frozen=True)
class RuleGroup:
    name: str
    rules: tuple[Rule, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [rule.as_dict() for rule in self.rules]}


@dataclass(frozen=True)
class RuleFile:
    name: str
    header: str  # the comment at the top of the file, lines as written
    groups: tuple[RuleGroup, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"groups": [group.as_dict() for group in self.groups]}


# -- PromQL and wording helpers -------------------------------------------------------------------


def _minutes(duration: timedelta) -> int:
    minutes, rest = divmod(duration, timedelta(minutes=1))
    if rest:
        raise ValueError(f"{duration} is not a whole number of minutes")
    return int(minutes)


def promql_duration(duration: timedelta) -> str:
    """``5m``: a range or ``for:`` duration as Prometheus writes it."""
    return f"{_minutes(duration)}m"


def spoken(duration: timedelta) -> str:
    """``5 minutes``: a duration in a description."""
    minutes = _minutes(duration)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def selected(metric: str, config: PlatformConfig) -> str:
    """A raw metric of the workers: ``metric{job="salewatch"}``."""
    return f"{metric}{{{config.job_selector}}}"


def sum_by(
    labels: Sequence[str], function: str, metric: str, window: timedelta, config: PlatformConfig
) -> str:
    """``sum by (labels) (function(metric{job}[window]))``, ``function`` being rate or increase."""
    ranged = f"{selected(metric, config)}[{promql_duration(window)}]"
    return f"sum by ({', '.join(labels)}) ({function}({ranged}))"


def block(*lines: str) -> str:
    """A multi-line expression, written as a ``|`` block."""
    return "".join(f"{line}\n" for line in lines)


# -- recording rules ----------------------------------------------------------------------------

FUNNEL_STAGES = ("impression", "click", "cart", "order", "pay")
FUNNEL_LEVEL = ("store", "channel", "stage")
FUNNEL_WINDOWS = (timedelta(minutes=1), timedelta(minutes=5))
CONVERSION_WINDOW = timedelta(minutes=5)  # step conversion, over the funnel rates of this window
MONEY_WINDOW = timedelta(minutes=1)
PIPELINE_WINDOW = timedelta(minutes=5)  # dead-letter and input rates


def recorded(labels: Sequence[str], metric: str, operation: str) -> str:
    """A recorded series' name, ``level:metric:operation``; the level names the labels kept."""
    return f"{'_'.join(labels)}:{metric}:{operation}"


def rate(window: timedelta) -> str:
    """The operation part of a recorded per-second rate, e.g. ``rate5m``."""
    return f"rate{promql_duration(window)}"


FUNNEL_RATE = recorded(FUNNEL_LEVEL, "salewatch_funnel_events", rate(CONVERSION_WINDOW))
STEP_CONVERSION = recorded(
    FUNNEL_LEVEL, "salewatch_funnel_step_conversion", f"ratio_{rate(CONVERSION_WINDOW)}"
)
DEADLETTER_RATE = recorded(("topic",), "salewatch_deadletter", rate(PIPELINE_WINDOW))
INPUT_RATE = recorded(("topic",), "salewatch_input_events", rate(PIPELINE_WINDOW))
DEADLETTER_RATIO = recorded(("topic",), "salewatch_deadletter", f"ratio_{rate(PIPELINE_WINDOW)}")
CONSUMER_LAG = recorded(("topic",), "salewatch_consumer_lag_messages", "sum")


def sum_rate(
    labels: Sequence[str], metric: str, window: timedelta, config: PlatformConfig, comment: str = ""
) -> RecordingRule:
    """Records the per-second rate of the counter ``<metric>_total``, summed by ``labels``."""
    return RecordingRule(
        record=recorded(labels, metric, rate(window)),
        expr=sum_by(labels, "rate", f"{metric}_total", window, config),
        comment=comment,
    )


def step_conversion(previous: str, stage: str) -> RecordingRule:
    """Conversion into ``stage`` from the stage before it, per store x channel."""
    return RecordingRule(
        record=STEP_CONVERSION,
        labels=(("stage", stage),),
        expr=block(
            f'{FUNNEL_RATE}{{stage="{stage}"}}',
            "  / on (store, channel) group_left ()",
            f'({FUNNEL_RATE}{{stage="{previous}"}} > 0)',
        ),
    )


def commented(comment: str, rules: Sequence[RecordingRule]) -> tuple[RecordingRule, ...]:
    """``rules`` under one comment, written above the first of them."""
    first, *rest = rules
    return (replace(first, comment=comment), *rest)


def funnel_group(config: PlatformConfig) -> RuleGroup:
    rates = [
        sum_rate(FUNNEL_LEVEL, "salewatch_funnel_events", window, config)
        for window in FUNNEL_WINDOWS
    ]
    steps = [step_conversion(previous, stage) for previous, stage in pairwise(FUNNEL_STAGES)]
    rates_comment = (
        f"Funnel events per second by store x channel x stage (stage: {', '.join(FUNNEL_STAGES)})."
    )
    steps_comment = (
        "Step conversion into `stage` = rate of stage / rate of the previous stage, same store x"
        f" channel, over {spoken(CONVERSION_WINDOW)}. No series while the previous stage has no"
        " traffic. One rule per stage; the `stage` label (already on the result) keeps them"
        " distinct."
    )
    return RuleGroup(
        "salewatch.funnel", commented(rates_comment, rates) + commented(steps_comment, steps)
    )


def money_group(config: PlatformConfig) -> RuleGroup:
    gmv = sum_rate(
        ("store", "channel", "currency"),
        "salewatch_gmv",
        MONEY_WINDOW,
        config,
        comment="GMV (currency units) per second, by store x channel x currency.",
    )
    paid = sum_rate(
        ("store", "channel"),
        "salewatch_paid_orders",
        MONEY_WINDOW,
        config,
        comment="Paid orders per second, by store x channel.",
    )
    return RuleGroup("salewatch.money", (gmv, paid))


def pipeline_group(config: PlatformConfig) -> RuleGroup:
    window = promql_duration(PIPELINE_WINDOW)
    deadletter = sum_rate(
        ("topic",),
        "salewatch_deadletter",
        PIPELINE_WINDOW,
        config,
        comment=(
            "Dead-lettered input per second, by topic (all reasons). The counter counts rejected"
            " batch elements (a whole rejected message counts once), so it is compared with"
            " events, not with Kafka messages: one message may carry thousands of events."
        ),
    )
    input_events = RecordingRule(
        record=INPUT_RATE,
        expr=block(
            "sum by (topic) (",
            f"  rate({selected('salewatch_events_total', config)}[{window}])",
            "  or",
            f"  rate({selected('salewatch_deadletter_total', config)}[{window}])",
            ")",
        ),
        comment=(
            "Input per second, by topic: valid events plus dead-lettered ones. `or` keeps a topic"
            " whose input is all bad (no salewatch_events_total series at all)."
        ),
    )
    ratio = RecordingRule(
        record=DEADLETTER_RATIO,
        expr=f"{DEADLETTER_RATE} / ({INPUT_RATE} > 0)",
        comment=(
            "Share of the input that was dead-lettered (0-1), by topic; no series for an idle"
            " topic."
        ),
    )
    lag = RecordingRule(
        record=CONSUMER_LAG,
        expr=f"sum by (topic) ({selected('salewatch_consumer_lag_messages', config)})",
        comment="Consumer lag summed over the workers (each reports its own partitions), by topic.",
    )
    return RuleGroup("salewatch.pipeline", (deadletter, input_events, ratio, lag))


# -- platform alerts ----------------------------------------------------------------------------


def worker_down(config: PlatformConfig) -> AlertingRule:
    up = selected("up", config)
    down = spoken(config.worker_down_for)
    return AlertingRule(
        alert="SalewatchWorkerDown",
        expr=f"{up} == 0 or absent({up})",
        for_=config.worker_down_for,
        severity="critical",
        summary="A salewatch worker is down or not scraped.",
        description=(
            "{{ if $labels.instance }}Prometheus has failed to scrape the salewatch worker"
            f" {{{{ $labels.instance }}}} for more than {down}.{{{{ else }}}}Prometheus has had"
            f" no salewatch scrape target ({config.job_selector}) for more than {down}."
            "{{ end }} Its partitions are rebalanced to the other workers, or not processed at"
            " all."
        ),
    )


def consumer_lag_high(config: PlatformConfig) -> AlertingRule:
    return AlertingRule(
        alert="SalewatchConsumerLagHigh",
        expr=block(
            f"{CONSUMER_LAG} > {config.lag_messages}",
            "and on (topic)",
            f"deriv({CONSUMER_LAG}[{promql_duration(config.lag_trend_window)}]) >= 0",
        ),
        for_=config.lag_for,
        severity="warning",
        summary="Salewatch workers are falling behind on {{ $labels.topic }}.",
        description=(
            "Consumer lag on {{ $labels.topic }} is {{ $value | humanize }} messages and has not"
            f" been shrinking for {spoken(config.lag_for)}. Dashboards and business alerts are"
            " late by that backlog."
        ),
    )


def deadletter_rate_high(config: PlatformConfig) -> AlertingRule:
    return AlertingRule(
        alert="SalewatchDeadLetterRateHigh",
        expr=block(
            f"{DEADLETTER_RATIO} > {config.deadletter_ratio}",
            "and on (topic)",
            f"{INPUT_RATE} > {config.deadletter_min_input_rate}",
        ),
        for_=config.deadletter_for,
        severity="warning",
        summary="Bad input on {{ $labels.topic }} goes to the dead-letter topic.",
        description=(
            "{{ $value | humanizePercentage }} of the input on {{ $labels.topic }} was"
            f" dead-lettered over the last {spoken(PIPELINE_WINDOW)} (threshold"
            f" {config.deadletter_ratio * 100:g}%). A producer is sending events that break the"
            " contract; they are not counted until fixed and replayed."
        ),
    )


def produce_errors(config: PlatformConfig) -> AlertingRule:
    errors = sum_by(
        ("topic",),
        "increase",
        "salewatch_produce_errors_total",
        config.produce_errors_window,
        config,
    )
    return AlertingRule(
        alert="SalewatchProduceErrors",
        expr=f"{errors} > 0",
        for_=config.produce_errors_for,
        severity="critical",
        summary="Salewatch cannot write to {{ $labels.topic }}.",
        description=(
            "Sends to {{ $labels.topic }} have been refused or unanswered by Kafka for at"
            f" least {spoken(config.produce_errors_for)}. Stage 1 commits no input past them and"
            " reads it again, so nothing is lost, but nothing moves on: counts, windows and"
            " business alerts stall and the workers' /health answers 503. A refused partial,"
            " stock change or final window of a worker is lost: its log names the topic."
        ),
        comment=(
            "Stage 1 retries a failed send from its last commit with pauses of up to 30 s, so a"
            " failure that lasts has new errors every"
            f" {spoken(config.produce_errors_window)}; one that passed does not fire."
        ),
    )


def no_events(config: PlatformConfig) -> AlertingRule:
    events = selected("salewatch_events_total", config)
    silent = config.no_events_window + config.no_events_for
    return AlertingRule(
        alert="SalewatchNoEvents",
        expr=block(
            "(",
            f"  sum(rate({events}[{promql_duration(config.no_events_window)}])) == 0",
            "  or",
            f"  absent({events})",
            ")",
            "and on ()",
            f"(sum({selected('up', config)}) > 0)",
        ),
        for_=config.no_events_for,
        severity="critical",
        summary="Salewatch workers are up but receive no events.",
        description=(
            f"No valid event has reached any salewatch worker for about {spoken(silent)} although"
            " workers are up. Either the stores stopped sending, the input topics are wrong, or"
            " everything goes to the dead-letter topic. Business alerts are blind."
        ),
    )


def events_unaccounted(config: PlatformConfig) -> AlertingRule:
    def increase(labels: str, metric: str, window: timedelta) -> str:
        return sum_by((labels,), "increase", metric, window, config)

    read = increase("topic", "salewatch_events_total", config.unaccounted_window)
    ended = increase("topic", "salewatch_event_outcomes_total", config.unaccounted_window)
    lost = increase("stage", "salewatch_unaccounted_events_total", config.unaccounted_check_window)
    allowed = f"{config.unaccounted_ratio} * {read} + {config.unaccounted_slack_events}"
    return AlertingRule(
        alert="SalewatchEventsUnaccounted",
        expr=block("(", f"  {read}", f"  - {ended}", ")", f"> {allowed}", "or", f"{lost} > 0"),
        for_=config.unaccounted_for,
        severity="critical",
        summary=(
            "Salewatch events are not accounted for{{ if $labels.topic }} on {{ $labels.topic }}"
            "{{ end }}{{ if $labels.stage }} in stage {{ $labels.stage }}{{ end }}."
        ),
        description=(
            "{{ $value | humanize }} events{{ if $labels.topic }} of {{ $labels.topic }} were"
            f" read over the last {spoken(config.unaccounted_window)} but ended in no outcome"
            " (counted, late, duplicate or ignored){{ else }} were found counted nowhere by the"
            " {{ $labels.stage }} stage's runtime check over the last"
            f" {spoken(config.unaccounted_check_window)}{{{{ end }}}}. Funnel, GMV and conversion"
            " figures are short by them."
        ),
        comment=(
            "Every valid event read ends in one outcome (counted, late, duplicate, ignored): a"
            " topic whose outcomes fall short of what was read, or a stage's runtime check that"
            " found events counted nowhere, means numbers are being lost."
        ),
    )


def watchdog() -> AlertingRule:
    return AlertingRule(
        alert="Watchdog",
        expr="vector(1)",
        for_=None,
        severity="none",
        summary="Alerting pipeline heartbeat; always firing.",
        description=(
            "This alert fires all the time so that the path Prometheus -> Alertmanager ->"
            " receiver can be checked end to end. Alertmanager routes it every minute to the"
            " `deadmans-switch` receiver, a webhook to a heartbeat service that pages when it"
            " stops arriving."
        ),
    )


def platform_group(config: PlatformConfig) -> RuleGroup:
    return RuleGroup(
        "salewatch.platform",
        (
            worker_down(config),
            consumer_lag_high(config),
            deadletter_rate_high(config),
            produce_errors(config),
            no_events(config),
            events_unaccounted(config),
            watchdog(),
        ),
    )


# -- the files ----------------------------------------------------------------------------------

GENERATED = """\
GENERATED by alerts/prometheus_rules.py, do not edit: change the module, then run
`python -m alerts.prometheus_rules` (with `--check`: is this file current?).
"""

RECORDING_HEADER = """\
Recording rules for salewatch: funnel, money and pipeline rates, named level:metric:operation.
Metrics: docs/architecture.md ("Metric names"). Dashboards (grafana/) and the platform
alerts (platform.yml) read these series; unit tests: alerts/tests/recording_test.yml.
"""

PLATFORM_HEADER = """\
Platform alerts for salewatch: is the pipeline itself healthy?
Business alerts (StockOut, ConversionDrop, ...) are detected in the stream, not here.
Every alert: CamelCase name, `severity` label, annotations summary / description /
runbook_url. runbook_url = alerts.links.runbook_url(alertname), i.e.
RUNBOOK_BASE_URL + "#" + lowercased alert name. Thresholds, `for:` durations and the
job selector: PlatformConfig at the top of alerts/prometheus_rules.py.
Unit tests: alerts/tests/platform_test.yml.
"""


def build_rule_files(config: PlatformConfig = CONFIG) -> dict[str, RuleFile]:
    """Every rule file, keyed by its file name."""
    files = (
        RuleFile(
            "recording.yml",
            RECORDING_HEADER,
            (funnel_group(config), money_group(config), pipeline_group(config)),
        ),
        RuleFile("platform.yml", PLATFORM_HEADER, (platform_group(config),)),
    )
    return {rule_file.name: rule_file for rule_file in files}


# -- rendering ----------------------------------------------------------------------------------


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width``, never breaking inside a ``{{ ... }}`` action."""
    glued = re.sub(r"\{\{.*?\}\}", lambda action: action.group().replace(" ", "\0"), text)
    lines = textwrap.wrap(glued, width, break_long_words=False, break_on_hyphens=False)
    return [line.replace("\0", " ") for line in lines]


def _comment(text: str, indent: int) -> list[str]:
    return [f"{' ' * indent}# {line}" for line in _wrap(text, LINE_WIDTH - indent - 2)]


def _entry(key: str, value: str | dict[str, Any], indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, dict):
        return [f"{pad}{key}:", *_mapping(value, indent + 2)]
    if "\n" in value:  # PromQL over several lines (see block), kept as written
        return [f"{pad}{key}: |", *(f"{pad}  {line}" for line in value.splitlines())]
    if key == "description":
        return [
            f"{pad}{key}: >-",
            *(f"{pad}  {line}" for line in _wrap(value, LINE_WIDTH - indent - 2)),
        ]
    scalar = yaml.safe_dump({key: value}, width=sys.maxsize, allow_unicode=True)
    return [f"{pad}{scalar.rstrip()}"]


def _mapping(mapping: dict[str, Any], indent: int) -> list[str]:
    return [line for key, value in mapping.items() for line in _entry(key, value, indent)]


def _rule(rule: Rule, indent: int) -> list[str]:
    """A rule as an item of the ``rules:`` list, its comment above it."""
    first, *rest = _mapping(rule.as_dict(), indent + 2)
    return [*_comment(rule.comment, indent), f"{' ' * indent}- {first.lstrip()}", *rest]


def render(rule_file: RuleFile) -> str:
    """The file's YAML; raises ValueError unless it parses back to exactly ``rule_file``'s rules."""
    header = f"{GENERATED}\n{rule_file.header}".splitlines()
    lines = [*(f"# {line}".rstrip() for line in header), "groups:"]
    for index, group in enumerate(rule_file.groups):
        lines += [""] * (index > 0) + [f"  - name: {group.name}", "    rules:"]
        for position, rule in enumerate(group.rules):
            # A blank line before each alert and each comment, except at the top of the list.
            if position and (rule.comment or isinstance(rule, AlertingRule)):
                lines.append("")
            lines += _rule(rule, 6)
    text = "\n".join(lines) + "\n"
    if yaml.safe_load(text) != rule_file.as_dict():
        raise ValueError(f"{rule_file.name}: the YAML does not parse back to the rules")
    return text


# -- command line -------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    return generate_main(
        "alerts.prometheus_rules",
        __doc__.splitlines()[0],
        OUTPUT_DIR,
        ".yml",
        lambda: {name: render(rule_file) for name, rule_file in build_rule_files().items()},
        argv,
    )


if __name__ == "__main__":
    raise SystemExit(main())
