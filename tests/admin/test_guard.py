"""The guard in the admin: blocks listed and lifted, refused sends listed, both on the dashboard."""

import pytest
from django.urls import reverse

from feedback_app import blocks, services
from feedback_app.errors import SendBlocked
from feedback_app.models import GuardBlock
from tests.factories import NUMBERS

pytestmark = pytest.mark.django_db

BLOCKS = reverse("admin:feedback_app_guardblock_changelist")
REFUSED = reverse("admin:feedback_app_blockedsend_changelist")
DASHBOARD = reverse("admin:feedback_app_conversiondashboard_changelist")


def refused_send():
    with pytest.raises(SendBlocked):
        services.send(provider="locmem", to=NUMBERS["US"], body="code 1")


def test_blocks_are_listed_and_the_action_lifts_them(admin_client):
    block, _ = blocks.block("prefix", "+120", reason="pumping: 0 of 300 converted")
    response = admin_client.get(BLOCKS, {"in_force": "yes"})
    assert "pumping: 0 of 300 converted" in response.text
    response = admin_client.post(
        BLOCKS, {"action": "lift_selected", "_selected_action": [block.pk]}, follow=True
    )
    assert "1 of 1 blocks lifted" in response.text
    block.refresh_from_db()
    assert block.unblocked_at is not None and block.unblocked_by == "admin"
    services.send(provider="locmem", to=NUMBERS["US"], body="code 1")
    assert admin_client.get(BLOCKS, {"in_force": "yes"}).context["cl"].result_count == 0


def test_refused_sends_are_listed_without_the_number(admin_client):
    blocks.block("prefix", "+120", reason="pumping")
    refused_send()
    response = admin_client.get(REFUSED)
    assert "prefix_blocked" in response.text
    assert NUMBERS["US"] not in response.text


def test_the_dashboard_shows_blocks_in_force_and_refused_sends_by_code(admin_client):
    block, _ = blocks.block("prefix", "+120", reason="pumping: 0 of 300 converted")
    refused_send()
    refused_send()
    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    guard = response.context["guard"]
    assert [b.pk for b in guard["blocks"]] == [block.pk]
    assert guard["refused"] == [{"code": "prefix_blocked", "count": 2}]
    assert "+120" in response.text and "prefix_blocked" in response.text


def test_a_dashboard_without_blocks_or_refusals_says_nothing_of_the_guard(admin_client):
    response = admin_client.get(DASHBOARD)
    assert response.context["guard"] == {"blocks": [], "refused": [], "total": 0}
    assert GuardBlock.objects.count() == 0
