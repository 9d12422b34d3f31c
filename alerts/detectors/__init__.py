"""The business detectors: from closed windows and stock statuses to alert signals.

Pure logic; the Faust wiring is alerts/stage.py, the per-partition bookkeeping (empty
windows, store totals) alerts/evaluation.py. `base` holds what they share (the window
view, the signal, the track of one series, the `WindowDetector` ABC); one module per
window detector (`conversion`, `payment`, `refund`, `complaint` (these two share
`surge`), `traffic`), `series` runs them per
store x channel or store, `stock` follows the inventory status.
"""

from alerts.detectors.base import (
    FUNNEL,
    Context,
    Judgement,
    Sample,
    Signal,
    Track,
    TrackKey,
    WindowDetector,
    WindowView,
)
from alerts.detectors.complaint import ComplaintSurge
from alerts.detectors.conversion import ConversionDrop
from alerts.detectors.payment import PaymentFailureSpike
from alerts.detectors.refund import RefundSurge
from alerts.detectors.series import ChannelDetector, KeyDetectors, StoreDetector
from alerts.detectors.stock import stock_signals
from alerts.detectors.traffic import TrafficDrop

__all__ = [
    "FUNNEL",
    "ChannelDetector",
    "ComplaintSurge",
    "Context",
    "ConversionDrop",
    "Judgement",
    "KeyDetectors",
    "PaymentFailureSpike",
    "RefundSurge",
    "Sample",
    "Signal",
    "StoreDetector",
    "Track",
    "TrackKey",
    "TrafficDrop",
    "WindowDetector",
    "WindowView",
    "stock_signals",
]
