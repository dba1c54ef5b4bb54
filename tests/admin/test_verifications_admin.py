"""The Verification admin: a read-only list of attempts, and the verification on a message."""

from __future__ import annotations

import pytest
from django.urls import reverse

from feedback_app import services
from feedback_app.models import Verification
from feedback_app.verifications import key_hash

from ..factories import NUMBERS, make_message

pytestmark = pytest.mark.django_db

VERIFICATIONS = reverse("admin:feedback_app_verification_changelist")


@pytest.fixture
def attempt():
    first = make_message(to=NUMBERS["GB"], verification="login-42")
    resend = make_message(to=NUMBERS["GB"], verification="login-42")
    services.confirm(resend)
    return first, resend


def test_the_list_shows_each_verification_with_masked_recipient_and_message_count(
    admin_client, attempt
):
    first, _resend = attempt
    verification = Verification.objects.get()
    body = admin_client.get(VERIFICATIONS).content.decode()
    assert str(verification.pk) in body
    assert first.recipient_masked[-4:] in body and NUMBERS["GB"] not in body
    assert '<td class="field-message_count">2</td>' in body
    assert "login-42" not in body and key_hash("login-42") not in body


def test_the_verification_page_lists_its_messages_and_is_read_only(admin_client, attempt):
    first, resend = attempt
    verification = Verification.objects.get()
    url = reverse("admin:feedback_app_verification_change", args=[verification.pk])
    body = admin_client.get(url).content.decode()
    assert str(first.pk) in body and str(resend.pk) in body
    assert key_hash("login-42") not in body and first.recipient_hash not in body
    assert admin_client.post(url, {}).status_code == 403
    add = reverse("admin:feedback_app_verification_add")
    assert admin_client.get(add).status_code == 403


def test_the_message_page_shows_its_verification(admin_client, attempt):
    first, _resend = attempt
    url = reverse("admin:feedback_app_message_change", args=[first.pk])
    body = admin_client.get(url).content.decode()
    verification_url = reverse(
        "admin:feedback_app_verification_change", args=[first.verification_id]
    )
    assert verification_url in body
    assert "superseded" in body
