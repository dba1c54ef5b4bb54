"""The dashboard in a real browser (Debian's headless Chromium through Playwright).

Logs in (a session cookie), opens the dashboard, checks the chart text size at 1280 px, sorts
a table, applies the filter form (7 days), filters by clicking a country in the chart (and the
chart's bar of messages without a country), checks the tiles each time, that the console
stayed clean, and saves build/dashboard.png (kept by CI; docs/images/dashboard.png, which the
README shows, is a copy). Then what a newcomer reads: one number format, round axis ticks, a
legend in the text colour, bucket labels apart, long ARNs shortened, providers to choose from.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest
from django.urls import reverse

from feedback_app import demo, rollups

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "dashboard.png"


def tile_values(page) -> dict[str, str]:
    labels = page.locator(".fa-tile-label").all_inner_texts()
    values = page.locator(".fa-tile-value").all_inner_texts()
    return dict(zip(labels, values, strict=True))


def number(text: str) -> int:
    return int(text.replace(",", ""))


def assert_consistent(tiles: dict[str, str]) -> None:
    """The tiles are non-zero and agree with one another."""
    attempted, confirmed = number(tiles["Attempted"]), number(tiles["Confirmed"])
    delivered = number(tiles["Delivered OK"])
    assert 0 < confirmed <= attempted and 0 < delivered <= attempted
    assert number(tiles["Late conversions"]) <= confirmed
    assert 0 < number(tiles["Expired"]) <= attempted - confirmed + number(tiles["Late conversions"])
    assert tiles["Conversion rate"] == f"{confirmed / attempted * 100:.1f} %"
    assert tiles["Delivery rate"] == f"{delivered / attempted * 100:.1f} %"
    assert tiles["Median time to confirm"] != "–" and tiles["p90 time to confirm"] != "–"


def test_filter_by_clicking_a_country(live_server, admin_page):
    demo.seed(days=30, messages=3000)
    rollups.refresh()
    page = admin_page(1280, 1600)
    dashboard = f"{live_server.url}{reverse('admin:feedback_app_conversiondashboard_changelist')}"

    page.goto(dashboard)
    assert page.locator("select[name=range]").input_value() == "30d"
    before = tile_values(page)
    assert number(before["Attempted"]) == 3000
    assert_consistent(before)

    # Every chart's text is drawn at 11 px or more at 1280 px wide (the viewport).
    sizes = page.evaluate(
        """() => [...document.querySelectorAll('svg.fa-chart text')].map(
            (text) => parseFloat(getComputedStyle(text).fontSize) * text.getScreenCTM().a)"""
    )
    assert len(sizes) > 20 and min(sizes) >= 11, min(sizes)

    # The time series as a table, folded away until asked for.
    assert not page.locator("#fa-series-rows").is_visible()
    page.locator(".fa-series-table summary").click()
    series = page.locator("#fa-series-rows tbody tr")
    assert series.count() == 31  # 30 days up to now touch 31 dates
    assert (
        sum(
            number(cell)
            for cell in page.locator("#fa-series-rows tbody td:nth-child(2)").all_inner_texts()
        )
        == 3000
    )

    # The tables sort by a click on a heading, each way.
    attempted = "#fa-by-country td:nth-child(2)"
    page.locator("#fa-by-country thead th:nth-child(2) button").click()
    ascending = [number(text) for text in page.locator(attempted).all_inner_texts()]
    assert ascending == sorted(ascending) and ascending[0] < ascending[-1]
    page.locator("#fa-by-country thead th:nth-child(2) button").click()
    descending = [number(text) for text in page.locator(attempted).all_inner_texts()]
    assert descending == sorted(ascending, reverse=True)
    assert page.locator("#fa-by-country thead th:nth-child(2)").get_attribute("aria-sort") == (
        "descending"
    )

    # "Apply" with the form as it stands: 7 days, nothing else typed in.
    page.select_option("select[name=range]", "7d")
    page.click("input[type=submit]")
    page.wait_for_url("**range=7d**")
    week = tile_values(page)
    assert_consistent(week)
    assert 0 < number(week["Attempted"]) < 3000
    assert page.locator("select[name=range]").input_value() == "7d"
    assert page.locator(".fa-chip").count() == 0

    # A typed date selects the custom range (it used to stay on the preset and be ignored).
    page.goto(dashboard)
    today = page.locator("input[name=end]").evaluate("() => new Date().toISOString().slice(0, 10)")
    page.fill("input[name=end]", today)
    assert page.locator("select[name=range]").input_value() == "custom"
    page.click("input[type=submit]")
    page.wait_for_url("**range=custom**")
    assert page.locator("input[name=end]").input_value() == today
    assert_consistent(tile_values(page))

    # Click a country in the chart: the page is filtered by it.
    page.goto(dashboard)
    country = page.locator('svg a.fa-country:not([data-country="__none__"])').nth(1)
    code = country.get_attribute("data-country")
    country.click()
    page.wait_for_url(f"**country={code}**")
    after = tile_values(page)
    assert after != before and 0 < number(after["Attempted"]) < 3000
    assert_consistent(after)
    assert page.locator(".fa-chip").first.inner_text().startswith(f"country: {code}")

    # Chat messages have no country: their bar filters on exactly those.
    page.goto(dashboard)
    blank = page.locator('svg a.fa-country[data-country="__none__"]')
    expected = page.locator('#fa-by-country tr:has(a[data-value="__none__"]) td').first.inner_text()
    blank.click()
    page.wait_for_url("**country=__none__**")
    assert tile_values(page)["Attempted"] == expected
    assert page.locator(".fa-chip").first.inner_text().startswith("country: (none)")

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.goto(dashboard)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert page.errors == []
    assert os.path.getsize(SCREENSHOT) > 10_000


def overlapping(boxes: list[dict]) -> list[tuple[dict, dict]]:
    ordered = sorted(boxes, key=lambda box: box["x"])
    return [(a, b) for a, b in itertools.pairwise(ordered) if a["x"] + a["width"] > b["x"]]


def test_what_a_newcomer_reads(live_server, admin_page):
    demo.seed(days=30, messages=3000)
    rollups.refresh()
    page = admin_page(1280, 1600)
    page.goto(f"{live_server.url}{reverse('admin:feedback_app_conversiondashboard_changelist')}")

    # The Attempted tile says it counts every purpose, as it does.
    attempted = page.locator(".fa-tile").first
    assert attempted.locator(".fa-tile-detail").inner_text() == "messages sent, every purpose"
    purposes = page.locator("#fa-by-purpose tbody td:nth-child(2)").all_inner_texts()
    assert sum(number(text) for text in purposes) == 3000 and len(purposes) > 1

    # One number format: counts with separators, rates as in the tiles, durations as in them.
    provider = page.locator("#fa-by-provider tbody tr").first
    texts = provider.locator("td").all_inner_texts()
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", texts[0]), texts
    assert all(re.fullmatch(r"\d+\.\d %", text) for text in texts[3:5]), texts
    assert all(re.fullmatch(r"\d+ s|\d+\.\d (min|h)", text) for text in texts[5:7]), texts

    # The y axes have a few round ticks; the legend is drawn in the text colour.
    for chart in ("#fa-series", "#fa-histogram"):
        labels = page.locator(f'{chart} text.fa-axis[text-anchor="end"]').all_text_contents()
        values = [number(label) for label in labels]
        assert 3 <= len(values) <= 6 and values[0] == 0 and values == sorted(values), labels
    colours = page.evaluate(
        """() => [...document.querySelectorAll('.fa-legend')].map(
            (text) => getComputedStyle(text).fill)"""
    )
    body = page.evaluate("() => getComputedStyle(document.body).color")
    assert colours and set(colours) == {body}
    line = "() => getComputedStyle(document.querySelector('polyline.fa-rate')).stroke"
    assert page.evaluate(line) == "rgb(180, 83, 9)"  # dark amber, on white
    page.emulate_media(color_scheme="dark")
    assert page.evaluate(line) == "rgb(251, 191, 36)"  # light amber, on the dark theme
    page.emulate_media(color_scheme="light")

    # The time-to-confirm labels do not run together, nor do the day labels.
    for chart in ("#fa-histogram", "#fa-series"):
        boxes = [
            text.bounding_box()
            for text in page.locator(f'{chart} text[text-anchor="middle"]').all()
        ]
        assert len(boxes) > 5 and overlapping(boxes) == [], chart

    # A Chime ARN is shortened; its full value is its title and what the link filters by.
    arn = page.locator('#fa-by-sender a[title^="arn:aws:chime:"]').first
    assert arn.inner_text().startswith("…/") and len(arn.inner_text()) <= 24
    assert arn.get_attribute("data-value") == arn.get_attribute("title")
    width = page.evaluate(
        "() => [document.querySelector('#fa-by-sender').scrollWidth,"
        " document.querySelector('#fa-by-sender').parentElement.clientWidth]"
    )
    assert width[0] <= width[1], width

    # The provider filter is a choice of the configured providers and those in the data.
    options = page.locator("select[name=provider] option").all_inner_texts()
    assert {"Any", "aws_sms", "chime", "twilio"} <= set(options)
    page.select_option("select[name=provider]", "chime")
    page.click("input[type=submit]")
    page.wait_for_url("**provider=chime**")
    assert page.locator("select[name=provider]").input_value() == "chime"
    assert page.locator("#fa-by-provider tbody tr").count() == 1
    assert page.errors == []
