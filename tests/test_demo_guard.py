"""The demo's pumping episode, and the guard on the demo's ordinary history: what it blocks
there is the episode's prefix and nothing else."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from feedback_app import blocks, demo
from feedback_app.models import BlockedSend, GuardBlock, Message
from feedback_app.states import Feedback

pytestmark = pytest.mark.django_db

PUMPED_PREFIX = "+9967"


def test_the_seeded_history_holds_a_pumping_episode_that_the_guard_blocked(admin_client):
    demo.seed(days=30, messages=3000, rng_seed=7)
    pumped = Message.objects.filter(recipient_prefix=PUMPED_PREFIX)
    assert pumped.count() == demo.PUMPING.sent
    assert set(pumped.values_list("country", flat=True)) == {"KG"}
    assert not pumped.filter(feedback=Feedback.CONFIRMED).exists()
    block = GuardBlock.objects.get()
    assert (block.kind, block.value, block.automatic) == ("prefix", PUMPED_PREFIX, True)
    assert block.until > timezone.now()  # still in force
    assert block.detail["attempted"] == demo.PUMPING.sent and block.detail["confirmed"] == 0
    refused = BlockedSend.objects.filter(block=block, code="prefix_blocked")
    assert 200 <= refused.count() <= demo.PUMPING.refused
    assert refused.earliest("at").at > pumped.latest("sent_at").sent_at
    # Ordinary traffic has prefixes too, so reports can group by them.
    assert Message.objects.exclude(channel="chat").filter(recipient_prefix="").count() == 0

    dashboard = admin_client.get(reverse("admin:feedback_app_conversiondashboard_changelist"))
    assert [b.pk for b in dashboard.context["guard"]["blocks"]] == [block.pk]
    assert dashboard.context["guard"]["total"] == refused.count()
    listing = admin_client.get(reverse("admin:feedback_app_guardblock_changelist"))
    assert PUMPED_PREFIX in listing.text


def test_the_guard_would_have_made_the_demos_block():
    demo.seed(days=30, messages=3000, rng_seed=7)
    recorded = GuardBlock.objects.get()
    GuardBlock.objects.all().delete()
    blocks.forget()
    end = Message.objects.filter(recipient_prefix=PUMPED_PREFIX).latest("sent_at").sent_at
    (made,) = blocks.block_pumped_prefixes(now=end + timedelta(minutes=2))
    assert (made.value, made.detail["confirmed"]) == (recorded.value, 0)


@override_settings(
    FEEDBACK_APP={**settings.FEEDBACK_APP, "GUARD": {"MIN_ATTEMPTS": 20, "WINDOW": 3600}}
)
def test_ordinary_demo_history_is_never_blocked():
    """Dense traffic (tens of sends per prefix per hour, so the floor is met) evaluated every
    half hour over two days: the only prefix ever blocked is the pumping episode's."""
    now = timezone.now()
    demo.seed(days=2, messages=30000, rng_seed=5, now=now)
    GuardBlock.objects.all().delete()
    blocks.forget()
    hourly = (
        Message.objects.filter(
            sent_at__gte=now - timedelta(hours=25), sent_at__lt=now - timedelta(hours=24)
        )
        .exclude(recipient_prefix="")
        .values_list("recipient_prefix", flat=True)
    )
    assert max(list(hourly).count(prefix) for prefix in set(hourly)) >= 20  # the floor is met
    made = []
    for half_hours in range(1, 96):
        made += blocks.block_pumped_prefixes(now=now - timedelta(minutes=30 * half_hours))
    made += blocks.block_pumped_prefixes(now=now)
    assert {block.value for block in made} == {PUMPED_PREFIX}
