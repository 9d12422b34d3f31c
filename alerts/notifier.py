"""Delivery to Alertmanager (`POST /api/v2/alerts`), with retries and nothing lost.

The worker's queue holds the LATEST state of each alert (by fingerprint) not delivered yet;
a newer state of the same alert replaces an older one (Alertmanager keeps state, not
history; the history is on `salewatch.alerts`). A failed POST (connection refused, timeout,
5xx, 429) leaves the alerts queued and is retried with exponential backoff (with jitter)
until Alertmanager answers; `endsAt` of firing alerts is computed when a POST is made, so
alerts queued through an outage arrive firing, not expired. A 4xx other than 429 means the
alerts themselves are wrong: they are dropped and logged (retrying cannot help).

A worker that restarts re-sends every firing alert from its state table (alerts/stage.py),
and every resolution Alertmanager had not accepted yet (the table keeps one until
`on_resolved_delivered` says so), so neither a dead Alertmanager nor a dead worker loses an
alert or leaves one firing in Alertmanager.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterable

import aiohttp

from alerts.clock import wall_ms
from alerts.lifecycle import Alert
from streams.runtime.metrics import Metrics

__all__ = ["AlertmanagerNotifier"]

log = logging.getLogger(__name__)

RESULT_SENT = "sent"  # alerts accepted by Alertmanager
RESULT_FAILED = "failed"  # alerts of a failed attempt, kept for the retry
RESULT_REJECTED = "rejected"  # alerts Alertmanager refused (4xx), dropped
FIRING_HORIZON_RESENDS = 4  # a firing alert's endsAt is this many re-send intervals ahead


class AlertmanagerNotifier:
    def __init__(
        self,
        url: str,
        metrics: Metrics,
        *,
        resend_s: float = 60.0,
        timeout_s: float = 5.0,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 30.0,
        max_batch: int = 500,
        clock: Callable[[], int] = wall_ms,
    ) -> None:
        self.endpoint = url.rstrip("/") + "/api/v2/alerts"
        self.metrics = metrics
        self.resend_ms = round(resend_s * 1000)
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_batch = max_batch
        self.clock = clock
        self.last_error: str | None = None
        self._pending: dict[str, Alert] = {}
        self._delivered_ms: dict[str, int] = {}  # fingerprint -> last accepted POST
        self._wake = asyncio.Event()
        # told the resolutions Alertmanager answered (accepted or refused): none to retry
        self.on_resolved_delivered: Callable[[list[Alert]], Awaitable[None]] | None = None

    # --- queueing -------------------------------------------------------------------------
    def submit(self, alerts: Iterable[Alert]) -> None:
        for alert in alerts:
            fingerprint = alert.fingerprint
            self._pending.pop(fingerprint, None)  # the newest state goes last
            self._pending[fingerprint] = alert
        if self._pending:
            self._wake.set()

    def resend(self, firing: Iterable[Alert], now_ms: int) -> None:
        """Queue firing alerts not delivered for a re-send interval (or never)."""
        due = [
            alert
            for alert in firing
            if alert.fingerprint not in self._pending
            and now_ms - self._delivered_ms.get(alert.fingerprint, 0) >= self.resend_ms
        ]
        self.submit(due)

    def drop_firing(self) -> None:
        """After a rebalance: firing alerts are re-sent by whichever worker owns them now;
        resolutions already decided here are still delivered."""
        self._pending = {fp: a for fp, a in self._pending.items() if not a.firing}
        self._delivered_ms.clear()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    # --- delivery -------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until cancelled."""
        async with aiohttp.ClientSession(timeout=self.timeout) as session:
            backoff = self.backoff_initial_s
            while True:
                if not self._pending:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                if await self.deliver_once(session):
                    backoff = self.backoff_initial_s
                    continue
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(backoff * 2, self.backoff_max_s)

    async def deliver_once(self, session: aiohttp.ClientSession) -> bool:
        """POST one batch; False if it must be retried later."""
        fingerprints = list(self._pending)[: self.max_batch]
        batch = [self._pending[fp] for fp in fingerprints]
        now_ms = self.clock()
        horizon_ms = FIRING_HORIZON_RESENDS * self.resend_ms
        body = [alert.payload(now_ms, horizon_ms) for alert in batch]
        try:
            async with session.post(self.endpoint, json=body) as response:
                status = response.status
                text = "" if status < 300 else (await response.text())[:500]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self._failed(batch, f"{type(exc).__name__}: {exc}")
        if status >= 500 or status == 429:
            return self._failed(batch, f"HTTP {status}: {text}")
        for fp, alert in zip(fingerprints, batch, strict=True):
            if self._pending.get(fp) is alert:  # not replaced by a newer state meanwhile
                del self._pending[fp]
        resolved = [alert for alert in batch if not alert.firing]
        if resolved and self.on_resolved_delivered is not None:
            await self.on_resolved_delivered(resolved)
        if status >= 300:
            self.metrics.alert_notifications.labels(RESULT_REJECTED).inc(len(batch))
            log.error("alertmanager rejected %d alerts: HTTP %s %s", len(batch), status, text)
            return True
        for fp, alert in zip(fingerprints, batch, strict=True):
            if alert.firing:
                self._delivered_ms[fp] = now_ms
            else:
                self._delivered_ms.pop(fp, None)
        self.metrics.alert_notifications.labels(RESULT_SENT).inc(len(batch))
        if self.last_error is not None:
            log.info("alertmanager reachable again at %s", self.endpoint)
            self.last_error = None
        return True

    def _failed(self, batch: list[Alert], error: str) -> bool:
        self.metrics.alert_notifications.labels(RESULT_FAILED).inc(len(batch))
        if error != self.last_error:
            log.warning(
                "alertmanager at %s: %s; %d alerts queued, retrying",
                self.endpoint, error, len(self._pending),
            )  # fmt: skip
        self.last_error = error
        return False
