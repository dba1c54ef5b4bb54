"""One number format on every page of the admin, and long values shortened for display."""

from __future__ import annotations

import re

import pytest

from feedback_app.admin import formats
from feedback_app.admin.dashboard import COLUMNS, Tile, _tiles, cells, ticks
from feedback_app.reports import ReportFilters, Totals

TOTALS = Totals(
    attempted=12345,
    delivered_ok=11000,
    confirmed=5638,
    confirmed_late=1234,
    failed=0,
    expired=4567,
    pending=0,
    conversion_rate=0.4567,
    delivery_rate=0.891,
    median_seconds_to_confirm=38.2,
    p90_seconds_to_confirm=522.0,
    superseded=17,
    verifications=10000,
    verifications_converted=5500,
    verification_conversion_rate=0.55,
    resends=2345,
    verifications_resent=1500,
    mean_resends=0.2345,
    resent_share=0.15,
)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0, "0"), (999, "999"), (12345, "12,345"), (1234567, "1,234,567"), (None, "–")],
)
def test_count(value, text):
    assert formats.count(value) == text


@pytest.mark.parametrize(
    ("rate", "text"),
    [(0.4567, "45.7 %"), (1.0, "100.0 %"), (0.0, "0.0 %"), (0.00049, "0.0 %"), (None, "–")],
)
def test_percent(rate, text):
    assert formats.percent(rate) == text


@pytest.mark.parametrize(("value", "text"), [(0.2345, "0.23"), (2.0, "2.00"), (None, "–")])
def test_mean(value, text):
    assert formats.mean(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(38.2, "38 s"), (119, "119 s"), (522, "8.7 min"), (7200, "2.0 h"), (None, "–")],
)
def test_duration(seconds, text):
    assert formats.duration(seconds) == text


def test_tables_and_tiles_write_numbers_alike():
    tiles = {tile.label: tile.value for tile in _tiles(TOTALS, ReportFilters())}
    # Each cell: <td data-value="(the number)">(its text)</td>.
    found = re.findall(r'<td data-value="([^"]*)">([^<]*)</td>', cells(TOTALS, sortable=True))
    row = {column.label: text for column, (_value, text) in zip(COLUMNS, found, strict=True)}
    assert tiles["Attempted"] == row["Attempted"] == "12,345"
    assert tiles["Conversion rate"] == row["Conversion"] == "45.7 %"
    assert tiles["Delivery rate"] == row["Delivery"] == "89.1 %"
    assert tiles["Median time to confirm"] == row["Median"] == "38 s"
    assert tiles["p90 time to confirm"] == row["p90"] == "8.7 min"
    assert tiles["Late conversions"] == row["Late"] == "1,234"
    assert tiles["Conversion per verification"] == row["Verif."] == "55.0 %"
    assert tiles["Resends per verification"] == "0.23"
    assert tiles["Superseded"] == "17"
    # The tables sort by the number itself, not by its text.
    sort_values = {
        column.field: value for column, (value, _text) in zip(COLUMNS, found, strict=True)
    }
    assert sort_values == {
        "attempted": "12345",
        "delivered_ok": "11000",
        "confirmed": "5638",
        "conversion_rate": "0.4567",
        "delivery_rate": "0.891",
        "median_seconds_to_confirm": "38.2",
        "p90_seconds_to_confirm": "522.0",
        "confirmed_late": "1234",
        "expired": "4567",
        "verification_conversion_rate": "0.55",
    }
    empty = re.findall(
        r'<td data-value="([^"]*)">([^<]*)</td>',
        cells(Totals(0, 0, 0, 0, 0, 0, 0, None, None, None, None), sortable=True),
    )
    assert empty[3] == ("", "–") and empty[5] == ("", "–")
    # The time series' table does not sort: its cells are the texts alone.
    assert re.findall(r"<td>([^<]*)</td>", cells(TOTALS)) == [text for _value, text in found]


@pytest.mark.parametrize(
    ("purpose", "detail"),
    [
        (None, "messages sent, every purpose"),
        ("login", "messages sent for “login”"),
        ("", "messages sent without a purpose"),
    ],
)
def test_attempted_says_which_messages_it_counts(purpose, detail):
    (attempted, *_rest) = _tiles(TOTALS, ReportFilters(purpose=purpose))
    assert attempted == Tile("Attempted", "12,345", detail)


@pytest.mark.parametrize(
    ("peak", "values"),
    [
        (0, [0, 1]),
        (1, [0, 1]),
        (3, [0, 1, 2, 3]),
        (7, [0, 2, 4, 6, 8]),
        (133, [0, 50, 100, 150]),
        (553, [0, 200, 400, 600]),
        (1000, [0, 500, 1000]),
        (12345, [0, 5000, 10000, 15000]),
    ],
)
def test_axes_have_a_few_round_ticks(peak, values):
    assert ticks(peak) == values
    assert values[-1] >= peak and 2 <= len(values) <= 6


@pytest.mark.parametrize(
    ("value", "short"),
    [
        ("ACME", "ACME"),
        ("+14155550100", "+14155550100"),
        (
            "arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a-9d3b-4a8e-b6c1-0f2d4e6a8b9c"
            "/bot/verify-bot",
            "…/bot/verify-bot",
        ),
        (
            "arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a-9d3b-4a8e-b6c1-0f2d4e6a8b9c"
            "/channel/7d4e2b1c-3a5f-4e6d-8c9b-a1b2c3d4e5f6",
            "…/channel/7d4e2b1…d4e5f6",
        ),
        ("x" * 40, "x" * 17 + "…" + "x" * 6),
    ],
)
def test_long_values_are_shortened(value, short):
    assert formats.shorten(value) == short
    assert len(formats.shorten(value)) <= formats.SHORT


def test_a_shortened_value_keeps_the_full_one_in_its_title():
    arn = "arn:aws:chime:us-east-1:111122223333:app-instance/abc/bot/verify-bot"
    assert str(formats.short_with_title(arn)) == f'<span title="{arn}">…/bot/verify-bot</span>'
    assert str(formats.short_with_title("<ACME>")) == "&lt;ACME&gt;"


def test_masked_recipients_lose_long_runs_of_stars_only():
    assert formats.masked("+63******0399") == "+63***0399"
    assert formats.masked("****************5d84") == "***5d84"
    assert formats.masked("+1***9883") == "+1***9883"
