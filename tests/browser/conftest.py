"""Headless Chromium (Debian's) through Playwright, logged in to the admin as a superuser."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client

CHROMIUM = "/usr/bin/chromium"
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
def browser(monkeypatch) -> Iterator[object]:
    sync_api = pytest.importorskip("playwright.sync_api")
    # Playwright's sync API runs an event loop in this thread; the ORM is only used before it
    # starts and by the live server's own thread.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        # The test's ORM calls ran while Playwright's event loop was current, so Django kept
        # their connection per context, not per thread: the database teardown would not close
        # it, and PostgreSQL would refuse to drop a database still "accessed by other users".
        connections.close_all()
        browser.close()


@pytest.fixture
def page(browser) -> object:
    """A plain page (not logged in), for pages a visitor sees first."""
    return browser.new_page(viewport={"width": 1280, "height": 1600})


@pytest.fixture
def admin_page(browser, live_server, django_user_model) -> Callable[[int, int], object]:
    """A page of the given viewport, logged in as a superuser, whose console errors are kept.

    The session is made by Django's test client: the admin's login form belongs to the project
    (two-factor in the example project); the pages under test are the app's.
    """
    user = django_user_model.objects.create_superuser("admin", password="admin-pw")
    client = Client()
    client.force_login(user)
    cookie = {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": live_server.url,
    }

    def open_page(width: int, height: int) -> object:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.context.add_cookies([cookie])
        page.errors = []

        def console(message) -> None:
            # The browser asks every site for /favicon.ico; the project serves none.
            if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
                page.errors.append(f"{message.text} ({message.location['url']})")

        page.on("console", console)
        page.on("pageerror", lambda error: page.errors.append(str(error)))
        return page

    return open_page
