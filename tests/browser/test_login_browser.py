"""The example project's two-factor login page in a real browser (headless Chromium through
Playwright): every request stays on the site (no CDN), the admin's stylesheets apply (the login
box of the admin's own login page), the console stays clean, a login ends in the admin; saves
build/two_factor_login.png (docs/otp.md shows it).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "two_factor_login.png"


def test_the_login_page_looks_like_the_admin_and_loads_nothing_from_elsewhere(
    live_server,
    django_user_model,
    page,
):
    django_user_model.objects.create_superuser("demo", password="demo")
    site = urlsplit(live_server.url).netloc
    requested: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("requestfailed", lambda request: failed.append(request.url))

    def console(message) -> None:
        # The browser asks every site for /favicon.ico; the project serves none.
        if message.type == "error" and not message.location["url"].endswith("/favicon.ico"):
            errors.append(f"{message.text} ({message.location['url']})")

    page.on("console", console)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_viewport_size({"width": 1000, "height": 620})

    page.goto(f"{live_server.url}{reverse('two_factor:login')}")
    assert [url for url in requested if urlsplit(url).netloc != site] == []
    assert any(url.endswith("/static/admin/css/login.css") for url in requested)
    # The admin login's box: a bordered container 28em wide, centred.
    box = page.locator("#container").bounding_box()
    assert 350 < box["width"] < 450
    assert abs(box["x"] + box["width"] / 2 - 500) < 2
    assert page.locator("#site-name").inner_text() == "Django administration"
    assert page.locator("h1").inner_text() == "Login"
    submit = page.locator(".submit-row input[type=submit]")
    # The admin's default button, not the browser's grey one.
    assert submit.evaluate("e => getComputedStyle(e).color") == "rgb(255, 255, 255)"
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    page.fill("#id_auth-username", "demo")
    page.fill("#id_auth-password", "demo")
    submit.click()
    page.wait_for_url(f"{live_server.url}/admin/")
    assert failed == [] and errors == []
