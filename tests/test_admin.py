"""The admin reads messages and calls; its actions go through services and the outbox."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth.models import Permission
from django.urls import reverse

from feedback_app import services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, locmem
from feedback_app.states import CallState, Delivery, Feedback, Source

from .factories import NUMBERS, make_message

pytestmark = pytest.mark.django_db

MESSAGES = reverse("admin:feedback_app_message_changelist")
CALLS = reverse("admin:feedback_app_providercall_changelist")
MESSAGE_ACTIONS = {"confirm_selected", "fail_selected", "retry_calls"}


def change_url(message: Message) -> str:
    return reverse("admin:feedback_app_message_change", args=[message.pk])


def staff_user(django_user_model, username: str, *codenames: str):
    user = django_user_model.objects.create_user(username=username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label="feedback_app", codename__in=codenames)
    )
    return user


@pytest.fixture
def viewer_client(client, django_user_model):
    """A staff user who may look at messages and calls but not confirm, fail or retry."""
    client.force_login(staff_user(django_user_model, "viewer", "view_message", "view_providercall"))
    return client


@pytest.fixture
def operator_client(client, django_user_model):
    """A staff user (not a superuser) with the confirm permission."""
    client.force_login(
        staff_user(
            django_user_model,
            "operator",
            "view_message",
            "view_providercall",
            "confirm_message",
        )
    )
    return client


def listed(response) -> set:
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def action_names(response) -> set[str]:
    form = response.context["action_form"]  # None when the user has no action at all
    return {name for name, _label in form.fields["action"].choices} if form else set()


def run_action(client, url: str, action: str, objects) -> object:
    return client.post(
        url, {"action": action, ACTION_CHECKBOX_NAME: [str(obj.pk) for obj in objects]}
    )


@pytest.fixture
def assorted():
    """Messages that differ in one filtered field each from the ``plain`` one."""
    plain = make_message()
    other_provider = make_message(provider="silent")
    login = make_message(purpose="login")
    british = make_message(to=NUMBERS["GB"])
    confirmed = make_message()
    services.confirm(confirmed)
    delivered = make_message()
    services.record_delivery(delivered, Delivery.DELIVERED)
    return {
        "plain": plain,
        "other_provider": other_provider,
        "login": login,
        "british": british,
        "confirmed": confirmed,
        "delivered": delivered,
    }


# Changelist ------------------------------------------------------------------------------------


def test_message_changelist_renders_with_the_filters(admin_client, assorted):
    response = admin_client.get(MESSAGES)
    assert listed(response) == {m.pk for m in assorted.values()}
    titles = {str(spec.title) for spec in response.context["cl"].filter_specs}
    assert {"provider", "purpose", "country", "feedback", "delivery status"} <= titles
    assert assorted["british"].recipient_masked in response.content.decode()
    assert NUMBERS["GB"] not in response.content.decode()


def test_changelist_cells_are_compact_with_the_full_value_in_a_title(admin_client, settings):
    settings.TIME_ZONE = "UTC"
    message = make_message(
        sent_at=datetime(2025, 4, 1, 9, 5, 30, tzinfo=UTC),
        purpose="password_reset",
        provider_message_id="SM" + "0123456789abcdef" * 2,
    )
    services.fail(message)
    services.confirm(message)
    chat = make_message(channel="chat", to="member-0123456789-abcdef")
    body = admin_client.get(MESSAGES).content.decode()
    columns = re.findall(r'<th scope="col" class="sortable column-(\w+)', body)
    watched_first = ["sent", "delivery", "conversion", "recipient", "purpose_label", "route"]
    assert columns == [*watched_first, "provider_id"]
    assert '<time datetime="2025-04-01T09:05:30+00:00" title="' in body
    assert ">01 Apr 09:05</time>" in body
    assert f'<span title="SM{"0123456789abcdef" * 2}">SM012…cdef</span>' in body
    assert '<td class="field-conversion">confirmed, late</td>' in body
    assert "password_<wbr>reset" in body
    assert "locmem · chat" in body
    # A long run of stars is written as three; the stored mask stays in the title.
    assert chat.recipient_masked.count("*") > 3
    assert f'<span title="{chat.recipient_masked}">***{chat.recipient_masked[-4:]}</span>' in body
    assert "feedback_app/messages.css" in body


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("provider__exact=silent", "other_provider"),
        ("purpose__exact=login", "login"),
        ("country__exact=GB", "british"),
        ("feedback__exact=confirmed", "confirmed"),
        ("delivery_status__exact=delivered", "delivered"),
    ],
)
def test_each_filter_narrows_the_changelist(admin_client, assorted, query, expected):
    assert listed(admin_client.get(f"{MESSAGES}?{query}")) == {assorted[expected].pk}


def test_search_by_provider_message_id_finds_exactly_that_message(admin_client, assorted):
    wanted = assorted["login"]
    response = admin_client.get(MESSAGES, {"q": wanted.provider_message_id})
    assert listed(response) == {wanted.pk}
    assert listed(admin_client.get(MESSAGES, {"q": str(wanted.pk)})) == {wanted.pk}
    assert listed(admin_client.get(MESSAGES, {"q": "LM-nothing-like-it"})) == set()


# Detail page -----------------------------------------------------------------------------------


def test_detail_page_shows_events_and_calls_read_only(admin_client):
    message = make_message()
    services.confirm(message, source=Source.API, actor="client-app")
    response = admin_client.get(change_url(message))
    assert response.status_code == 200
    page = response.content.decode()
    formsets = {fs.formset.prefix: fs for fs in response.context["inline_admin_formsets"]}
    assert set(formsets) == {"events", "calls"}
    assert len(formsets["events"].formset.forms) == 2  # tracked (delivery), confirmed
    assert len(formsets["calls"].formset.forms) == 1
    for inline in formsets.values():
        assert not inline.has_add_permission
        assert not inline.has_change_permission
        assert not inline.formset.can_delete
    assert "client-app" in page
    assert "report_feedback" in page or "report feedback" in page
    # Nothing on the page is an editable field of the message, an event or a call.
    for field in ("feedback", "events-0-to_value", "events-0-actor", "calls-0-state"):
        assert f'name="{field}"' not in page
    assert "DELETE" not in page


def test_posting_the_detail_page_changes_nothing(admin_client):
    message = make_message()
    before = Message.objects.filter(pk=message.pk).values().get()
    response = admin_client.post(
        change_url(message),
        {"feedback": Feedback.CONFIRMED, "provider": "silent", "country": "FR", "_save": "Save"},
    )
    assert response.status_code == 403
    assert Message.objects.filter(pk=message.pk).values().get() == before
    assert not ProviderCall.objects.exists()
    assert MessageEvent.objects.filter(message=message).count() == 1


def test_messages_cannot_be_added_in_the_admin(admin_client):
    response = admin_client.get(reverse("admin:feedback_app_message_add"))
    assert response.status_code == 403


# Actions -----------------------------------------------------------------------------------------


def test_confirm_action_goes_through_services_as_the_admin_user(
    admin_client, django_capture_on_commit_callbacks
):
    chosen = [make_message(), make_message()]
    untouched = make_message()
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, MESSAGES, "confirm_selected", chosen)
    assert response.status_code == 302
    feedback = dict(Message.objects.values_list("pk", "feedback"))
    assert [feedback[m.pk] for m in chosen] == [Feedback.CONFIRMED] * 2
    assert feedback[untouched.pk] == Feedback.PENDING
    events = MessageEvent.objects.filter(to_value=Feedback.CONFIRMED)
    assert sorted(e.message_id for e in events) == sorted(m.pk for m in chosen)
    assert {(e.source, e.actor) for e in events} == {(Source.ADMIN, "admin")}
    # ... and the conversion reached the provider through the outbox.
    assert sorted(r["provider_message_id"] for r in locmem.reports) == sorted(
        m.provider_message_id for m in chosen
    )


def test_fail_action_goes_through_services_and_confirmed_messages_stay_confirmed(admin_client):
    pending, confirmed = make_message(), make_message()
    services.confirm(confirmed)
    response = run_action(admin_client, MESSAGES, "fail_selected", [pending, confirmed])
    assert response.status_code == 302
    feedback = dict(Message.objects.values_list("pk", "feedback"))
    assert feedback == {pending.pk: Feedback.FAILED, confirmed.pk: Feedback.CONFIRMED}
    event = MessageEvent.objects.get(to_value=Feedback.FAILED)
    assert (event.message_id, event.source, event.actor) == (pending.pk, Source.ADMIN, "admin")


def test_retry_action_requeues_the_failed_calls_of_the_selected_messages(
    admin_client, django_capture_on_commit_callbacks
):
    refused, other = make_message(), make_message()
    for message in (refused, other):
        locmem.fail_next(1, PermanentError("Authentication Error", code=20003))
        with django_capture_on_commit_callbacks(execute=True):
            services.confirm(message)
    assert set(ProviderCall.objects.values_list("state", flat=True)) == {CallState.FAILED}

    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, MESSAGES, "retry_calls", [refused])
    assert response.status_code == 302
    states = dict(ProviderCall.objects.values_list("message_id", "state"))
    assert states == {refused.pk: CallState.SUCCEEDED, other.pk: CallState.FAILED}
    assert [r["provider_message_id"] for r in locmem.reports] == [refused.provider_message_id]


def test_staff_without_the_confirm_permission_gets_no_actions(viewer_client):
    message = make_message()
    response = viewer_client.get(MESSAGES)
    assert listed(response) == {message.pk}
    assert not (action_names(response) & MESSAGE_ACTIONS)

    for action in sorted(MESSAGE_ACTIONS):
        run_action(viewer_client, MESSAGES, action, [message])
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING
    assert not MessageEvent.objects.filter(source=Source.ADMIN).exists()
    assert not ProviderCall.objects.exists()


def test_staff_without_the_confirm_permission_may_open_but_not_post_the_detail_page(
    viewer_client,
):
    message = make_message()
    assert viewer_client.get(change_url(message)).status_code == 200
    response = viewer_client.post(change_url(message), {"feedback": Feedback.CONFIRMED})
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING


def test_staff_with_the_confirm_permission_gets_the_actions(operator_client):
    message = make_message()
    response = operator_client.get(MESSAGES)
    assert action_names(response) >= MESSAGE_ACTIONS
    run_action(operator_client, MESSAGES, "confirm_selected", [message])
    event = MessageEvent.objects.get(to_value=Feedback.CONFIRMED)
    assert (event.source, event.actor) == (Source.ADMIN, "operator")


# ProviderCall admin ------------------------------------------------------------------------------


@pytest.fixture
def calls(django_capture_on_commit_callbacks):
    """One failed call and one succeeded call."""
    refused, fine = make_message(), make_message()
    locmem.fail_next(1, PermanentError("Invalid parameter", code=21211))
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(refused)
        services.confirm(fine)
    locmem.reset()
    return {
        "failed": ProviderCall.objects.get(message=refused),
        "succeeded": ProviderCall.objects.get(message=fine),
    }


def test_provider_call_changelist_lists_the_calls(admin_client, calls):
    response = admin_client.get(CALLS)
    assert listed(response) == {c.pk for c in calls.values()}
    assert "21211" in response.content.decode()
    assert listed(admin_client.get(CALLS, {"state__exact": "failed"})) == {calls["failed"].pk}
    search = admin_client.get(CALLS, {"q": calls["failed"].message.provider_message_id})
    assert listed(search) == {calls["failed"].pk}


def test_provider_call_admin_retries_failed_calls_only(
    admin_client, calls, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = run_action(admin_client, CALLS, "retry_selected", calls.values())
    assert response.status_code == 302
    states = dict(ProviderCall.objects.values_list("pk", "state"))
    assert set(states.values()) == {CallState.SUCCEEDED}
    # Only the failed one was sent again.
    assert [r["provider_message_id"] for r in locmem.reports] == [
        calls["failed"].message.provider_message_id
    ]


def test_staff_without_the_confirm_permission_cannot_retry_calls(viewer_client, calls):
    response = viewer_client.get(CALLS)
    assert listed(response) == {c.pk for c in calls.values()}
    assert "retry_selected" not in action_names(response)
    run_action(viewer_client, CALLS, "retry_selected", [calls["failed"]])
    assert ProviderCall.objects.get(pk=calls["failed"].pk).state == CallState.FAILED


def test_provider_call_detail_page_is_read_only(admin_client, calls):
    call = calls["failed"]
    url = reverse("admin:feedback_app_providercall_change", args=[call.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"state": CallState.SUCCEEDED, "_save": "Save"})
    assert response.status_code == 403
    assert ProviderCall.objects.get(pk=call.pk).state == CallState.FAILED


def test_even_a_superuser_cannot_delete_history_from_the_admin(admin_client):
    message = make_message()
    services.confirm(message)
    url = reverse("admin:feedback_app_message_delete", args=[message.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    changelist = admin_client.get(reverse("admin:feedback_app_message_changelist"))
    assert "delete_selected" not in changelist.content.decode()
    assert Message.objects.filter(pk=message.pk).exists()
