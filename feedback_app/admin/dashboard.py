"""The conversion dashboard in the admin: tiles, charts, breakdowns, alerts and CSV downloads.

Every number comes from ``reports`` (and ``alerts``, built on it); this module only picks the
filters from the query string and draws. It reads the reports database
(``FEEDBACK_APP["REPORTS_DATABASE"]``, maybe a replica) only, and says how current that is.
The page reads the rollup state once and the rollups three times: once for its tiles, charts
and tables (``conversion_reports``), twice for the alerts. Charts are inline SVG drawn here,
so the page works offline; each has a text alternative (a title and a description, and a
table of the same numbers).

In the query string an empty value means "any"; ``NONE`` selects the messages without a value
(chat messages have no country, many messages no sender).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta
from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import conditional_escape, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext_lazy as _

from ..alerts import Alert, conversion_alerts
from ..conf import app_settings
from ..csv_cells import csv_cell
from ..models import ConversionDashboard
from ..reports import (
    HOUR,
    NONE,
    HistogramBucket,
    ReportFilters,
    ReportRow,
    Totals,
    conversion_report,
    conversion_reports,
    data_as_of,
    floor_quarter_hour,
    same_rollup_state,
)
from ..states import Channel
from . import formats
from .guard import dashboard_summary

#: Breakdown tables, in page order, each downloadable as CSV.
TABLES: tuple[str, ...] = ("country", "provider", "purpose", "sender", "channel")
#: Preset time ranges: query value -> (label, length).
RANGES: dict[str, tuple[str, timedelta]] = {
    "24h": (_("Last 24 hours"), timedelta(hours=24)),
    "48h": (_("Last 2 days"), timedelta(days=2)),
    "7d": (_("Last 7 days"), timedelta(days=7)),
    "30d": (_("Last 30 days"), timedelta(days=30)),
    "90d": (_("Last 90 days"), timedelta(days=90)),
}
DEFAULT_RANGE = "30d"
#: The filters besides time, in form order.
DIMENSIONS: tuple[str, ...] = ("provider", "purpose", "channel", "country", "sender")
#: Ranges up to this long are charted per hour, longer ones per day.
HOURLY_UP_TO = timedelta(days=2)
#: How a missing value is shown.
NONE_LABEL = _("(none)")
#: ``Message.provider``'s length.
PROVIDER_MAX_LENGTH = 32


def dimension_value(value: str | None) -> str | None:
    """A filter's value in the query string -> the report filter: "" any, ``NONE`` none."""
    if value in (None, ""):
        return None
    return "" if value == NONE else value


def query_value(key: object) -> str:
    """A report row's key -> the query value selecting it (the inverse of ``dimension_value``)."""
    return NONE if key == "" else str(key)


def key_label(key: object) -> str:
    return str(NONE_LABEL) if key in ("", None) else str(key)


def _any(label: str, max_length: int) -> forms.CharField:
    return forms.CharField(
        label=label,
        required=False,
        max_length=max_length,
        widget=forms.TextInput({"placeholder": _("any"), "title": _("Empty: any; __none__: none")}),
    )


class DashboardForm(forms.Form):
    """The dashboard's filters, all in the query string so a view can be shared.

    Bound to the query string with the default time range filled in, so the form always shows
    the range the page shows.
    """

    range = forms.ChoiceField(
        label=_("Time range"),
        choices=[
            *((key, label) for key, (label, _length) in RANGES.items()),
            ("custom", _("Custom")),
        ],
        required=False,
        initial=DEFAULT_RANGE,
    )
    start = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput({"type": "date"})
    )
    end = forms.DateField(label=_("To"), required=False, widget=forms.DateInput({"type": "date"}))
    provider = forms.ChoiceField(label=_("Provider"), required=False)
    purpose = _any(_("Purpose"), 64)
    channel = forms.ChoiceField(
        label=_("Channel"), required=False, choices=[("", _("Any")), *Channel.choices]
    )
    country = _any(_("Country"), len(NONE))
    sender = _any(_("Sender"), 256)

    def __init__(self, query: QueryDict | None = None) -> None:
        data = (query or QueryDict()).copy()
        if not data.get("range"):
            # Dates alone (a shared link, or a form without JavaScript) mean a custom range.
            has_dates = data.get("start") or data.get("end")
            data["range"] = "custom" if has_dates else DEFAULT_RANGE
        if data["range"] != "custom":
            # A preset ignores the dates: the form must not show dates the page does not use.
            data["start"] = data["end"] = ""
        super().__init__(data)
        self.add_providers(())

    def add_providers(self, present: Iterable[str]) -> None:
        """Offer the configured providers, those in ``present`` (the page's data) and the one
        asked for, if it could be a provider key: a provider removed from the settings still
        names its old messages."""
        asked = self.data.get("provider") or ""
        field = self.fields["provider"]
        known = {key for key, _label in field.choices if key}
        names = known | set(app_settings.PROVIDERS) | {key for key in present if key}
        if 0 < len(asked) <= PROVIDER_MAX_LENGTH:
            names.add(asked)
        field.choices = [("", _("Any")), *((name, name) for name in sorted(names))]

    def clean_country(self) -> str:
        country = self.cleaned_data["country"]
        if country != NONE and len(country) > 2:
            raise ValidationError(
                _("A two-letter country code, or %(none)s for none."), params={"none": NONE}
            )
        return country if country == NONE else country.upper()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("range") == "custom" and not (data.get("start") or data.get("end")):
            self.add_error("start", _("Give a start or an end date for a custom range."))
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            self.add_error("end", _("The end is before the start."))
        if start and start > timezone.localdate():
            self.add_error("start", _("The start is in the future."))
        return data

    def report_filters(self, now: datetime) -> tuple[ReportFilters, timedelta]:
        """The report filters and the length of the time range (for the chart's resolution).

        An invalid form (its errors are shown) gives the default view.
        """
        data = self.cleaned_data if self.is_valid() else {}
        choice = data.get("range") or DEFAULT_RANGE
        if choice == "custom":
            start, end = data.get("start"), data.get("end")
            before = _local_midnight(end + timedelta(days=1)) if end else None
            # An end alone: the default length up to it, as feedback_report --until does.
            after = _local_midnight(start) if start else (before or now) - RANGES[DEFAULT_RANGE][1]
            span = (before or now) - after
        else:
            span = RANGES[choice][1]
            # From a quarter hour: the range's start is then read from the rollups alone, not
            # from the messages of its first minutes.
            after, before = floor_quarter_hour(now - span), None
        dimensions = {name: dimension_value(data.get(name)) for name in DIMENSIONS}
        filters = ReportFilters(**dimensions, sent_after=after, sent_before=before)
        return filters, span


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _query(request: HttpRequest, **changes: str | None) -> str:
    """The current query string with ``changes`` (None removes a key)."""
    query: QueryDict = request.GET.copy()
    for key, value in changes.items():
        query.pop(key, None)
        if value is not None:
            query[key] = value
    return query.urlencode()


# -- charts ------------------------------------------------------------------------------------


def _html(template: str, *args: Any, **kwargs: Any) -> SafeString:
    """``format_html`` that keeps numbers as numbers, so the template may format them."""

    def prepared(value: Any) -> Any:
        return value if isinstance(value, int | float) else conditional_escape(value)

    named = {key: prepared(value) for key, value in kwargs.items()}
    # Every argument that is not a number is escaped.
    return mark_safe(template.format(*map(prepared, args), **named))  # noqa: S308


def _svg(
    chart_id: str,
    title: str,
    description: str,
    width: int,
    height: int,
    body: str,
    role: str = "img",
) -> SafeString:
    # The viewBox is about as wide as the chart is drawn at 1280 px (the full content width,
    # or half of it for the charts side by side), so the text keeps its CSS size.
    return _html(
        '<svg class="fa-chart" id="{}" viewBox="0 0 {} {}" role="{}" aria-labelledby="{}-t {}-d">'
        '<title id="{}-t">{}</title><desc id="{}-d">{}</desc>{}</svg>',
        chart_id, width, height, role, chart_id, chart_id,
        chart_id, title, chart_id, description, SafeString(body),
    )  # fmt: skip


def ticks(peak: int, intervals: int = 4) -> list[int]:
    """Round axis values from 0 to at least ``peak``: about ``intervals`` steps of 1, 2 or 5
    times a power of ten (133 -> 0, 50, 100, 150)."""
    rough = max(peak, 1) / intervals
    power = 10 ** math.floor(math.log10(rough))
    step = next(power * factor for factor in (1, 2, 5, 10) if power * factor >= rough)
    step = max(1, int(step))
    return list(range(0, math.ceil(max(peak, 1) / step) * step + 1, step))


def _y_axis(values: list[int], x: float, top: float, plot_h: float, x2: float) -> str:
    """Labels and grid lines of a count axis from 0 (bottom) to ``values[-1]`` (top)."""
    parts = []
    for value in values:
        y = top + plot_h * (1 - value / values[-1])
        parts.append(_html(
            '<line class="fa-grid" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"/>'
            '<text class="fa-axis" x="{:.1f}" y="{:.1f}" text-anchor="end">{}</text>',
            x + 4, y, x2, y, x - 2, y + 4, formats.count(value),
        ))  # fmt: skip
    return "".join(parts)


def _legend(x: float, y: float, entries: list[tuple[str, str]]) -> str:
    """A swatch (``bar`` or ``line``) then its text in the body colour, for each entry."""
    parts = []
    for kind, text in entries:
        if kind == "bar":
            parts.append(_html(
                '<rect class="fa-bar" x="{:.1f}" y="{:.1f}" width="12" height="10"/>', x, y - 9
            ))  # fmt: skip
        else:
            parts.append(_html(
                '<line class="fa-rate" x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}"/>',
                x, y - 4, x + 14, y - 4,
            ))  # fmt: skip
        parts.append(
            _html('<text class="fa-axis fa-legend" x="{:.1f}" y="{}">{}</text>', x + 18, y, text)
        )
        x += 18 + 7.2 * len(text) + 24  # about 7.2 units a character at 12 px, then a gap
    return "".join(parts)


def _time_label(key: date | datetime, hourly: bool) -> str:
    if hourly and isinstance(key, datetime):
        return date_format(timezone.localtime(key), "d M H:00")
    return date_format(key, "d M")


def series_chart(rows: list[ReportRow], hourly: bool) -> SafeString:
    """Volume (bars, left axis) and conversion rate (line, right axis) over time.

    A picture only (role="img"): the table below it (``series_table``) holds its numbers.
    """
    width, height, left, right, top, bottom = 900, 260, 60, 56, 14, 54
    plot_w, plot_h = width - left - right, height - top - bottom
    if not rows:
        return _svg(
            "fa-series", _("Conversion over time"), _("No messages in this range."), width, 60, ""
        )
    peak = max(row.totals.attempted for row in rows)
    scale = ticks(peak)
    step = plot_w / len(rows)
    parts, points = [], []
    label_every = max(1, len(rows) // 8)
    for index, row in enumerate(rows):
        totals = row.totals
        x = left + index * step
        bar_h = plot_h * totals.attempted / scale[-1]
        label = _time_label(row.key, hourly)
        parts.append(_html(
            '<rect class="fa-bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}">'
            "<title>{}: {} attempted, {} confirmed ({})</title></rect>",
            x + step * 0.1, top + plot_h - bar_h, step * 0.8, bar_h,
            label, formats.count(totals.attempted), formats.count(totals.confirmed),
            formats.percent(totals.conversion_rate),
        ))  # fmt: skip
        if totals.conversion_rate is not None:
            points.append(f"{x + step / 2:.1f},{top + plot_h * (1 - totals.conversion_rate):.1f}")
        if index % label_every == 0:
            parts.append(_html(
                '<text class="fa-axis" x="{:.1f}" y="{}" text-anchor="middle">{}</text>',
                x + step / 2, top + plot_h + 17, label,
            ))  # fmt: skip
    rate_axis = "".join(
        _html(
            '<text class="fa-axis" x="{}" y="{:.1f}">{} %</text>',
            width - right + 6,
            top + plot_h * (1 - share / 100) + 4,
            share,
        )
        for share in (0, 25, 50, 75, 100)
    )
    legend = _legend(
        left,
        height - 6,
        [("bar", str(_("messages attempted (left)"))), ("line", str(_("conversion rate (right)")))],
    )
    line = _html('<polyline class="fa-rate" points="{}"/>', " ".join(points)) if points else ""
    total = sum(row.totals.attempted for row in rows)
    description = _(
        "%(count)s %(unit)s from %(first)s to %(last)s; %(total)s messages attempted, at most "
        "%(peak)s in one %(one)s. The table below the chart lists each of them."
    ) % {
        "count": len(rows),
        "unit": _("hours") if hourly else _("days"),
        "one": _("hour") if hourly else _("day"),
        "first": _time_label(rows[0].key, hourly),
        "last": _time_label(rows[-1].key, hourly),
        "total": formats.count(total),
        "peak": formats.count(peak),
    }
    axes = _y_axis(scale, left, top, plot_h, width - right) + rate_axis
    body = axes + "".join(parts) + line + legend
    title = _("Volume and conversion rate over time")
    return _svg("fa-series", title, description, width, height, body)


def country_chart(rows: list[ReportRow], request: HttpRequest) -> SafeString:
    """One bar per country (volume), its conversion rate beside it; a click filters the page.

    The bars are links, so the chart is a group of links (role="group"), not an image: each
    link is named by its country and numbers.
    """
    rows = rows[:20]
    width, left, row_h = 440, 58, 24
    height = row_h * len(rows) + 10
    if not rows:
        return _svg("fa-countries", _("Countries"), _("No messages in this range."), width, 40, "")
    peak = max(row.totals.attempted for row in rows) or 1
    plot_w = width - left - 118
    parts = []
    for index, row in enumerate(rows):
        totals, y = row.totals, 5 + index * row_h
        name = key_label(row.key)
        attempted, rate = formats.count(totals.attempted), formats.percent(totals.conversion_rate)
        parts.append(_html(
            '<a href="?{}" class="fa-country" data-country="{}" aria-label="{}">'
            '<text class="fa-axis" x="{}" y="{:.1f}" text-anchor="end">{}</text>'
            '<rect class="fa-bar" x="{}" y="{}" width="{:.1f}" height="{}"></rect>'
            '<text class="fa-axis" x="{:.1f}" y="{:.1f}">{} · {}</text>'
            "<title>{}: {} attempted, {} confirmed ({}). Click to filter.</title></a>",
            _query(request, country=query_value(row.key)), query_value(row.key),
            f"{name}: {attempted} attempted, {rate}",
            left - 8, y + row_h * 0.65, name,
            left, y + 2, max(1.0, plot_w * totals.attempted / peak), row_h - 6,
            left + plot_w * totals.attempted / peak + 6, y + row_h * 0.65, attempted, rate,
            name, attempted, formats.count(totals.confirmed), rate,
        ))  # fmt: skip
    description = _(
        "Volume per country, largest first, with the conversion rate; %(count)s countries. "
        "Each is a link that filters the page by it."
    ) % {"count": len(rows)}
    return _svg(
        "fa-countries",
        _("Volume and conversion per country"),
        description,
        width,
        height,
        "".join(parts),
        role="group",
    )


def histogram_chart(buckets: list[HistogramBucket]) -> SafeString:
    """Confirmed messages per time-to-confirm bucket, the bucket edges under the bars."""
    width, height, left, bottom, top = 440, 214, 44, 44, 12
    plot_w, plot_h = width - left - 14, height - top - bottom
    scale = ticks(max((bucket.count for bucket in buckets), default=0))
    step = plot_w / len(buckets)
    parts = []
    for index, bucket in enumerate(buckets):
        bar_h = plot_h * bucket.count / scale[-1]
        x = left + index * step
        parts.append(_html(
            '<rect class="fa-bar" x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}"'
            ' data-count="{}"><title>{}: {} confirmed</title></rect>'
            '<line class="fa-grid" x1="{:.1f}" y1="{}" x2="{:.1f}" y2="{}"/>'
            '<text class="fa-axis" x="{:.1f}" y="{}" text-anchor="middle">{}</text>',
            x + step * 0.1, top + plot_h - bar_h, step * 0.8, bar_h, bucket.count,
            bucket_label(bucket), formats.count(bucket.count),
            x, top + plot_h, x, top + plot_h + 4,
            x, top + plot_h + 16, _duration_label(bucket.lower),
        ))  # fmt: skip
    legend = _legend(left, height - 4, [("bar", str(_("messages confirmed, by time to confirm")))])
    description = "; ".join(
        f"{bucket_label(bucket)}: {formats.count(bucket.count)}" for bucket in buckets
    )
    body = _y_axis(scale, left, top, plot_h, width - 14) + "".join(parts) + legend
    return _svg("fa-histogram", _("Time to confirm"), description, width, height, body)


def _duration_label(seconds: float) -> str:
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def bucket_label(bucket: HistogramBucket) -> str:
    """[10, 20) -> "10s to 20s"; the first and the open last bucket in words."""
    if bucket.upper is None:
        return _("%(lower)s or more") % {"lower": _duration_label(bucket.lower)}
    if not bucket.lower:
        return _("under %(upper)s") % {"upper": _duration_label(bucket.upper)}
    return _("%(lower)s to %(upper)s") % {
        "lower": _duration_label(bucket.lower),
        "upper": _duration_label(bucket.upper),
    }


def _filled(
    rows: list[ReportRow], filters: ReportFilters, now: datetime, hourly: bool
) -> list[ReportRow]:
    """The time series with a zero row for each hour or day without messages."""
    if not rows:
        return rows
    found = {row.key: row for row in rows}
    empty = Totals(0, 0, 0, 0, 0, 0, 0, None, None, None, None)
    end = filters.sent_before or now
    if hourly:
        zone = timezone.get_current_timezone()
        start = filters.sent_after or rows[0].key
        current = timezone.localtime(start).replace(minute=0, second=0, microsecond=0)
        keys = []
        while current < end:
            keys.append(current)
            current = (current + timedelta(hours=1)).astimezone(zone)
    else:
        first = timezone.localdate(filters.sent_after) if filters.sent_after else rows[0].key
        last = timezone.localdate(end - timedelta(microseconds=1))
        keys = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    return [found.get(key, ReportRow(key=key, totals=empty)) for key in keys]


# -- the admin ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    detail: str = ""


def attempted_detail(filters: ReportFilters) -> str:
    """What "Attempted" counts: every message the filters select, whatever its purpose."""
    if filters.purpose is None:
        return _("messages sent, every purpose")
    if filters.purpose == "":
        return _("messages sent without a purpose")
    return _("messages sent for “%(purpose)s”") % {"purpose": filters.purpose}


#: What each count means, for the tiles' small print and the tables' headings (their title).
DELIVERED_OK = _("status delivered, sent or unknown")
CONFIRMED = _("late ones included")


def _tiles(totals: Totals, filters: ReportFilters) -> list[Tile]:
    return [
        Tile(_("Attempted"), formats.count(totals.attempted), attempted_detail(filters)),
        Tile(_("Delivered OK"), formats.count(totals.delivered_ok), DELIVERED_OK),
        Tile(_("Confirmed"), formats.count(totals.confirmed), CONFIRMED),
        Tile(
            _("Conversion rate"),
            formats.percent(totals.conversion_rate),
            _("confirmed / attempted"),
        ),
        Tile(
            _("Delivery rate"), formats.percent(totals.delivery_rate), _("delivered OK / attempted")
        ),
        Tile(_("Median time to confirm"), formats.duration(totals.median_seconds_to_confirm)),
        Tile(_("p90 time to confirm"), formats.duration(totals.p90_seconds_to_confirm)),
        Tile(_("Late conversions"), formats.count(totals.confirmed_late), _("after the deadline")),
        Tile(_("Expired"), formats.count(totals.expired), _("never confirmed in time")),
        Tile(
            _("Conversion per verification"),
            formats.percent(totals.verification_conversion_rate),
            _("%(converted)s of %(verifications)s verifications converted")
            % {
                "converted": formats.count(totals.verifications_converted),
                "verifications": formats.count(totals.verifications),
            },
        ),
        Tile(
            _("Resends per verification"),
            formats.mean(totals.mean_resends),
            _("%(share)s of verifications resent")
            % {"share": formats.percent(totals.resent_share)},
        ),
        Tile(
            _("Superseded"),
            formats.count(totals.superseded),
            _("another message of the verification converted"),
        ),
    ]


@dataclass(frozen=True)
class Column:
    """A column of the time series table and of the breakdowns: one field of ``Totals``."""

    label: str
    field: str
    format: Callable[[Any], str]
    #: What it counts, shown on hover over the heading.
    title: str = ""


COLUMNS: tuple[Column, ...] = (
    Column(_("Attempted"), "attempted", formats.count, _("messages sent")),
    Column(_("Delivered OK"), "delivered_ok", formats.count, DELIVERED_OK),
    Column(_("Confirmed"), "confirmed", formats.count, CONFIRMED),
    Column(_("Conversion"), "conversion_rate", formats.percent, _("confirmed / attempted")),
    Column(_("Delivery"), "delivery_rate", formats.percent, _("delivered OK / attempted")),
    Column(_("Median"), "median_seconds_to_confirm", formats.duration, _("time to confirm")),
    Column(_("p90"), "p90_seconds_to_confirm", formats.duration, _("time to confirm")),
    Column(_("Late"), "confirmed_late", formats.count, _("confirmed after the deadline")),
    Column(_("Expired"), "expired", formats.count, _("never confirmed in time")),
    # Conversion counted per attempt: beside the per-message one, without widening the tables
    # much (the other verification numbers are in the tiles and the CSV).
    Column(
        _("Verif."),
        "verification_conversion_rate",
        formats.percent,
        _("conversion per verification: verifications converted / verifications"),
    ),
)


def cells(totals: Totals, *, sortable: bool = False) -> SafeString:
    """One row's ``<td>`` cells, a column each; with ``sortable`` each has its raw number as
    ``data-value`` (the table sorts by it, the text reads). Joined here rather than in a template
    loop: a page has a thousand cells, and the template engine takes far longer per cell."""
    values = [getattr(totals, column.field) for column in COLUMNS]
    texts = [column.format(value) for column, value in zip(COLUMNS, values, strict=True)]
    if not sortable:
        return format_html_join("", "<td>{}</td>", ((text,) for text in texts))
    return format_html_join(
        "",
        '<td data-value="{}">{}</td>',
        (("" if value is None else value, text) for value, text in zip(values, texts, strict=True)),
    )


def _period(filters: ReportFilters, now: datetime) -> str:
    """The time range the page shows, in words, in the current time zone."""

    def moment(value: datetime) -> str:
        return date_format(timezone.localtime(value), "DATETIME_FORMAT")

    return _("Messages sent from %(start)s to %(end)s (%(zone)s)") % {
        "start": moment(filters.sent_after) if filters.sent_after else _("the first"),
        "end": moment(filters.sent_before) if filters.sent_before else _("now"),
        "zone": timezone.get_current_timezone_name(),
    }


#: A reports database further behind than this is said to be behind, with by how much.
BEHIND_AFTER = timedelta(minutes=2)


def as_of_text(as_of: datetime | None, now: datetime) -> str:
    """ "Data as of <time>": how current the reports database is (a replica may lag)."""
    if as_of is None:
        return _("Data as of: unknown (the reports database has replayed nothing yet)")
    text = _("Data as of %(time)s") % {
        "time": date_format(timezone.localtime(as_of), "DATETIME_FORMAT")
    }
    if now - as_of > BEHIND_AFTER:
        behind = formats.duration((now - as_of).total_seconds())
        text += " " + _("(%(behind)s behind: the reports database is catching up)") % {
            "behind": behind
        }
    return text


def _alert(alert: Alert) -> dict[str, Any]:
    return {
        "alert": alert,
        "label": key_label(alert.key),
        "short": formats.shorten(key_label(alert.key)),
        "rate": formats.percent(alert.recent_rate),
        "confirmed": formats.count(alert.recent_confirmed),
        "attempted": formats.count(alert.recent_attempted),
        "baseline": formats.percent(alert.baseline_rate),
        "volume": formats.count(alert.baseline_attempted),
    }


CSV_FIELDS: tuple[str, ...] = tuple(field.name for field in fields(Totals))


@admin.register(ConversionDashboard)
class ConversionDashboardAdmin(admin.ModelAdmin):
    """The dashboard as the proxy model's changelist, so the admin index links to it."""

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("feedback_app.view_report")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "csv/<str:by>/",
                self.admin_site.admin_view(self.csv_view),
                name="{}_{}_csv".format(*info),
            ),
            path(
                "",
                self.admin_site.admin_view(self.changelist_view),
                name="{}_{}_changelist".format(*info),
            ),
        ]

    def _csv_url(self, request: HttpRequest, by: str) -> str:
        url = reverse("admin:feedback_app_conversiondashboard_csv", args=[by])
        return f"{url}?{request.GET.urlencode()}"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict | None = None
    ) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        form = DashboardForm(request.GET)
        filters, span = form.report_filters(now)
        hourly = span <= HOURLY_UP_TO
        time_key = HOUR if hourly else "day"
        # One rollup state for the page's three reads, so the alerts and the tiles agree.
        with same_rollup_state():
            # The time series, every breakdown and the histogram: one read of the rollups.
            reports = conversion_reports(filters, [time_key, *TABLES])
            alerts = conversion_alerts(filters, now=now)
        as_of = data_as_of()
        series = reports.reports[time_key]
        series_rows = _filled(series.rows, filters, now, hourly)
        tables = {by: reports.reports[by] for by in TABLES}
        form.add_providers(str(row.key) for row in tables["provider"].rows)
        context = {
            **self.admin_site.each_context(request),
            **(extra_context or {}),
            "opts": self.opts,
            "title": _("Conversion dashboard"),
            "form": form,
            "filters": filters,
            "period": _period(filters, now),
            "data_as_of": as_of,
            "as_of": as_of_text(as_of, now),
            "tiles": _tiles(series.totals, filters),
            "totals": series.totals,
            "series_chart": series_chart(series_rows, hourly),
            "series_table": {
                "title": _("Per hour") if hourly else _("Per day"),
                "rows": [
                    {
                        "key": row.key,
                        "label": _time_label(row.key, hourly),
                        "totals": row.totals,
                        "cells": cells(row.totals),
                    }
                    for row in series_rows
                ],
                "csv": self._csv_url(request, time_key),
            },
            "country_chart": country_chart(tables["country"].rows, request),
            "histogram_chart": histogram_chart(reports.histogram),
            "histogram": reports.histogram,
            "tables": [
                {
                    "by": by,
                    "title": _(by.capitalize()),
                    "rows": [
                        {
                            "row": row,
                            "label": key_label(row.key),
                            "short": formats.shorten(key_label(row.key)),
                            "value": query_value(row.key),
                            "query": _query(request, **{by: query_value(row.key)}),
                            "cells": cells(row.totals, sortable=True),
                        }
                        for row in report.rows
                    ],
                    "csv": self._csv_url(request, by),
                }
                for by, report in tables.items()
            ],
            "columns": COLUMNS,
            "alerts": [_alert(alert) for alert in alerts],
            "guard": dashboard_summary(filters, now),
            "active": [
                {
                    "name": name,
                    "label": key_label(getattr(filters, name)),
                    "short": formats.shorten(key_label(getattr(filters, name))),
                    "query": _query(request, **{name: None}),
                }
                for name in DIMENSIONS
                if getattr(filters, name) is not None
            ],
        }
        return TemplateResponse(request, "admin/feedback_app/dashboard.html", context)

    def csv_view(self, request: HttpRequest, by: str) -> HttpResponse:
        """One breakdown (or the time series, ``day`` or ``hour``) as CSV, with a total line."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if by not in (*TABLES, "day", HOUR):
            return HttpResponse(status=404)
        form = DashboardForm(request.GET)
        filters, _span = form.report_filters(timezone.now())
        report = conversion_report(filters, by)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="conversion-by-{by}.csv"'
        writer = csv.writer(response)
        writer.writerow([by, *CSV_FIELDS])
        for row in report.rows:
            writer.writerow(
                [csv_cell(row.key), *(getattr(row.totals, name) for name in CSV_FIELDS)]
            )
        writer.writerow(["total", *(getattr(report.totals, name) for name in CSV_FIELDS)])
        return response
