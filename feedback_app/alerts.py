"""Conversion alerts: countries or senders converting far below their own recent baseline.

A sudden drop with enough volume is the sign of SMS pumping (fake requests that never convert)
or of a broken route. Thresholds come from ``FEEDBACK_APP["ALERTS"]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from .conf import DEFAULTS, app_settings
from .reports import ReportFilters, conversion_reports, floor_quarter_hour, with_time_range

#: The dimensions alerts watch.
ALERT_DIMENSIONS: tuple[str, ...] = ("country", "sender")
RECENT = timedelta(hours=24)
BASELINE = timedelta(days=30)


@dataclass(frozen=True)
class Alert:
    """One group whose last-24-hours conversion fell below its baseline."""

    dimension: str
    key: str
    recent_attempted: int
    recent_confirmed: int
    recent_rate: float
    baseline_attempted: int
    baseline_rate: float

    @property
    def drop(self) -> float:
        """How far the rate fell, as a fraction of the baseline rate."""
        return 1 - self.recent_rate / self.baseline_rate


def below_baseline(
    recent_attempted: int,
    recent_rate: float | None,
    baseline_attempted: int,
    baseline_rate: float | None,
    *,
    min_volume: int,
    drop: float,
) -> bool:
    """Whether a recent rate is below its baseline by more than ``drop`` (a fraction of the
    baseline), both periods with at least ``min_volume`` messages. Alerts and the guard's
    automatic blocks decide with it."""
    return (
        recent_attempted >= min_volume
        and baseline_attempted >= min_volume
        and bool(baseline_rate)
        and recent_rate is not None
        and recent_rate < baseline_rate * (1 - drop)
    )


def conversion_alerts(
    filters: ReportFilters | None = None, *, now: datetime | None = None
) -> list[Alert]:
    """Groups of ``ALERT_DIMENSIONS`` whose conversion over the last 24 hours is below their
    rate over the 30 days before by more than ``DROP``, both periods with at least
    ``MIN_VOLUME`` messages. ``filters`` narrow them (their time range is ignored). Worst first.
    """
    settings = {**DEFAULTS["ALERTS"], **(app_settings.ALERTS or {})}
    min_volume, drop = int(settings["MIN_VOLUME"]), float(settings["DROP"])
    now = now or timezone.now()
    filters = filters or ReportFilters()
    # The periods meet at a quarter hour, which the rollups give whole (no message read there).
    since = floor_quarter_hour(now - RECENT)
    recent_filters = with_time_range(filters, since, now)
    baseline_filters = with_time_range(filters, since - BASELINE, since)
    # Two grouped reads: every dimension of each period at once.
    recent_reports = conversion_reports(recent_filters, ALERT_DIMENSIONS).reports
    baseline_reports = conversion_reports(baseline_filters, ALERT_DIMENSIONS).reports
    alerts = []
    for dimension in ALERT_DIMENSIONS:
        baseline = {row.key: row.totals for row in baseline_reports[dimension].rows}
        for row in recent_reports[dimension].rows:
            before = baseline.get(row.key)
            recent = row.totals
            if before is None or not below_baseline(
                recent.attempted,
                recent.conversion_rate,
                before.attempted,
                before.conversion_rate,
                min_volume=min_volume,
                drop=drop,
            ):
                continue
            alerts.append(
                Alert(
                    dimension=dimension,
                    key=str(row.key),
                    recent_attempted=recent.attempted,
                    recent_confirmed=recent.confirmed,
                    recent_rate=recent.conversion_rate,
                    baseline_attempted=before.attempted,
                    baseline_rate=before.conversion_rate,
                )
            )
    return sorted(alerts, key=lambda alert: -alert.drop)
