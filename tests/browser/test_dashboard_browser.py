"""The dashboard in a real browser (Debian's headless Chromium through Playwright).

Logs in (a session cookie), opens the dashboard, checks the chart text size at 1280 px, sorts
a table, applies the filter form (7 days), filters by clicking a country in the chart (and the
chart's bar of messages without a country), checks the tiles each time, that the console
stayed clean, and saves build/dashboard.png (kept by CI; the README shows it).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client
from django.urls import reverse

from feedback_app import demo, rollups

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "dashboard.png"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page(monkeypatch):
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM is only used before it
    # starts and by the live server's own thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        yield page
        # The test's ORM calls ran while Playwright's event loop was current, so Django kept
        # their connection per context, not per thread: the database teardown would not close
        # it, and PostgreSQL would refuse to drop a database still "accessed by other users".
        connections.close_all()
        browser.close()


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


def test_filter_by_clicking_a_country(live_server, django_user_model, page):
    demo.seed(days=30, messages=3000)
    rollups.refresh()
    user = django_user_model.objects.create_superuser("admin", password="admin-pw")
    # A session made by Django's test client: the admin's login form belongs to the project
    # (two-factor in the example project), the dashboard is what is tested here.
    client = Client()
    client.force_login(user)
    page.context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                "url": live_server.url,
            }
        ]
    )
    errors: list[str] = []

    def console(message) -> None:
        # The browser asks every site for /favicon.ico; the project serves none.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location['url']})")

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
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
    assert errors == []
    assert os.path.getsize(SCREENSHOT) > 10_000
