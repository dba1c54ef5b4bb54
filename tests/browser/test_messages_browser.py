"""The Messages changelist in a real browser at 1400 px: the watched columns come first and the
table fits beside the navigation and the filters, without sideways scrolling."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.urls import reverse
from django.utils import timezone

from feedback_app import demo, services
from feedback_app.states import Delivery

from ..factories import NUMBERS, make_message

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = Path(__file__).resolve().parents[2] / "build" / "messages.png"


def widest_rows() -> None:
    """On top of the list: the longest value of each column at once."""
    now = timezone.now()
    whatsapp = make_message(
        provider="locmem",
        channel="whatsapp",
        purpose="password_reset",
        to=NUMBERS["GB"],
        sent_at=now - timedelta(minutes=20),
        provider_message_id="SM" + "9f2c4e1a7b3d5f60" * 2,
    )
    services.record_delivery(whatsapp, Delivery.UNDELIVERED)
    services.fail(whatsapp)
    services.confirm(whatsapp)  # after a failure: confirmed, late
    make_message(
        channel="chat",
        to="arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a/user/member-7",
        purpose="password_reset",
        sent_at=now - timedelta(minutes=10),
        provider_message_id="f" * 64,
    )


def assert_fits(page) -> None:
    """No sideways scrolling, and the watched columns are on screen."""
    sizes = page.evaluate(
        """() => {
            const table = document.getElementById('result_list');
            return {table: table.scrollWidth, box: table.parentElement.clientWidth,
                    page: document.documentElement.scrollWidth,
                    viewport: document.documentElement.clientWidth};
        }"""
    )
    assert sizes["table"] <= sizes["box"], sizes
    assert sizes["page"] <= sizes["viewport"], sizes
    box = page.locator("#result_list").bounding_box()
    for column in ("column-delivery", "column-conversion", "column-provider_id"):
        header = page.locator(f"#result_list thead th.{column}")
        assert header.is_visible()
        cell = header.bounding_box()
        assert cell["x"] + cell["width"] <= box["x"] + box["width"] <= 1400


def test_the_watched_columns_come_first_and_fit_at_1400_px(live_server, admin_page):
    demo.seed(days=2, messages=300)
    page = admin_page(1400, 1000)
    changelist = f"{live_server.url}{reverse('admin:feedback_app_message_changelist')}"
    page.goto(changelist)
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert [text.strip().lower() for text in headers[1:5]] == [
        "sent",
        "delivery",
        "feedback",
        "recipient",
    ]
    assert_fits(page)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))  # docs/images/messages.png is a copy

    widest_rows()
    page.goto(changelist)
    full_id = "SM" + "9f2c4e1a7b3d5f60" * 2
    row = page.locator(f'#result_list tbody tr:has(span[title="{full_id}"])')
    assert row.locator(".field-conversion").inner_text() == "confirmed, late"
    assert row.locator(".field-delivery").inner_text() == "undelivered"
    assert row.locator(".field-provider_id").inner_text() == "SM9f2…5f60"
    assert_fits(page)
    assert page.errors == []
