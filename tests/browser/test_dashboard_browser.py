"""The dashboard in a real browser (Debian's headless Chromium through Playwright).

Logs in (a session cookie), opens the dashboard, filters by clicking a country in the chart,
checks that the tiles
change and that the console stayed clean, and saves build/dashboard.png (kept by CI).
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

    page.goto(f"{live_server.url}{reverse('admin:feedback_app_conversiondashboard_changelist')}")
    attempted = page.locator(".fa-tile-value").first
    before = attempted.inner_text()
    assert int(before.replace(",", "")) == 3000

    country = page.locator('svg a.fa-country:not([data-country=""])').nth(1)
    code = country.get_attribute("data-country")
    country.click()
    page.wait_for_url(f"**country={code}**")
    after = attempted.inner_text()
    assert after != before and 0 < int(after.replace(",", "")) < 3000
    assert page.locator(".fa-chip").first.inner_text().startswith(f"country: {code}")

    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.goto(f"{live_server.url}{reverse('admin:feedback_app_conversiondashboard_changelist')}")
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert errors == []
    assert os.path.getsize(SCREENSHOT) > 10_000
