"""The contract every provider backend passes: a pytest base class a test module subclasses.

A provider (built in, or a host's own backend) gets the whole suite by subclassing
``ProviderContract`` in a test module whose name pytest collects, and filling in the adapter: the
class attributes and the few methods marked "adapter" below. Everything runs through the
provider's real SDK against its local fake, served over HTTP by ``FakeServer``::

    # tests/test_acme_contract.py (needs pytest-django)
    from feedback_app.testing.contract import ProviderContract

    class TestAcmeContract(ProviderContract, WebhookContract):
        key = "acme"
        backend = "myproject.acme.AcmeProvider"
        reported_as = {"confirmed": "CONVERTED"}
        ...

        def make_fake(self): return AcmeFake()
        def provider_config(self, url, settings): return {"BASE_URL": url, "API_KEY": "k"}
        ...

pytest collects ``TestAcmeContract`` (its name starts with ``Test``); the base classes are not
collected. ``WebhookContract`` adds the webhook checks (signed, forged, replayed, out of order);
a provider without delivery webhooks leaves it out and says why in ``no_webhook``, one without a
conversion API says so in ``no_conversion_api``: the suite checks those declarations instead.
See docs/providers/adding.md.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from django.urls import reverse

from ..models import Message, MessageEvent, ProviderCall
from ..providers import PermanentError, Provider, RetryableError, SendResult, get_provider
from ..states import CallState, Channel, Delivery, EventKind, Feedback
from .server import FakeServer

#: Error kinds the adapter's ``fail_next`` makes the fake answer, and the side each lands on.
RETRYABLE_KINDS = ("throttling", "server_error")
PERMANENT_KINDS = ("validation", "auth", "not_found")

#: A clear phone number every faked error message quotes: no error may repeat it.
QUOTED_NUMBER = "+12025550143"

BODY = "Your verification code is 482913"


class ProviderContract:
    """Subclass (as ``Test...``) and fill in the adapter; every ``test_`` method is the contract."""

    pytestmark = pytest.mark.django_db

    # -- adapter: what the provider is ------------------------------------------------------

    #: The provider key the suite configures.
    key: ClassVar[str]
    #: The backend's dotted path (``FEEDBACK_APP['PROVIDERS'][key]['BACKEND']``); empty: built in.
    backend: ClassVar[str] = ""
    #: The channel and recipient a send uses.
    channel: ClassVar[str] = Channel.SMS
    recipient: ClassVar[str] = "+12015550123"
    #: Outcome -> the value the provider's conversion call carries, for each outcome in the
    #: backend's ``reports`` (the suite checks both name the same outcomes).
    reported_as: ClassVar[dict[str, str]] = {}
    #: Why the provider takes no conversion report (a provider with empty ``reports`` must say).
    no_conversion_api: ClassVar[str] = ""
    #: Setting -> the system-check id ``check_config`` gives when that credential is missing.
    credential_checks: ClassVar[dict[str, str]] = {}
    #: Environment variables set (a value) or removed (None) for every test: no credential of
    #: the machine running the tests leaks in.
    environment: ClassVar[dict[str, str | None]] = {}
    #: Two raw provider statuses a webhook reports, the first earlier in a message's life than
    #: the second (e.g. ``("sent", "delivered")``).
    webhook_statuses: ClassVar[tuple[str, str]] = ("", "")
    #: The delivery status the later of ``webhook_statuses`` maps to.
    webhook_delivery_status: ClassVar[str] = Delivery.DELIVERED
    #: Why the provider has no delivery webhook and how its statuses arrive instead (e.g.
    #: "polled"); a provider with a webhook leaves it empty.
    no_webhook: ClassVar[str] = ""

    # -- adapter: the fake ------------------------------------------------------------------

    def make_fake(self) -> Any:
        """The provider's fake, a WSGI app (served once per class, reset before each test)."""
        raise NotImplementedError

    def reset_fake(self, fake: Any) -> None:
        fake.reset()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        """The provider's settings pointing its SDK at the fake served at ``url``, with every
        credential set. May adjust other ``settings`` the webhook needs."""
        raise NotImplementedError

    def timeout_config(self) -> dict[str, Any]:
        """Settings (merged over ``provider_config``) with a read timeout well under a second."""
        raise NotImplementedError

    def slow_down(self, fake: Any, seconds: float) -> None:
        """Make the fake answer ``seconds`` late."""
        fake.latency = seconds

    def fail_next(self, fake: Any, kind: str, message: str) -> str:
        """Make the fake answer the next request with an error of ``kind`` (one of
        ``RETRYABLE_KINDS + PERMANENT_KINDS``) saying ``message``; return the provider's code
        the backend's error must carry."""
        raise NotImplementedError

    def request_count(self, fake: Any) -> int:
        """How many requests the fake received."""
        return len(fake.requests)

    def feedback_requested(self, fake: Any, result: SendResult) -> bool:
        """Whether the fake's record of the message sent says conversion tracking is on."""
        raise NotImplementedError

    def reported(self, fake: Any) -> list[tuple[str, str]]:
        """Every conversion report the fake received: (provider message id, value), oldest first."""
        return []

    def webhook_request(
        self, fake: Any, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        """Keyword arguments of ``django.test.Client.post`` delivering ``provider_status`` for
        ``message`` to the webhook, signed as the provider signs; ``forged``: with the
        signature or credentials wrong (the body otherwise the same)."""
        raise NotImplementedError

    # -- fixtures ---------------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def contract_server(cls) -> Iterator[tuple[Any, FakeServer]]:
        fake = cls().make_fake()
        with FakeServer(fake) as server:
            yield fake, server

    @pytest.fixture
    def fake(self, contract_server: tuple[Any, FakeServer]) -> Any:
        fake = contract_server[0]
        self.reset_fake(fake)
        return fake

    @pytest.fixture
    def configure(self, settings: Any, contract_server: Any, fake: Any, monkeypatch: Any) -> Any:
        """Call with setting overrides (None removes one) to (re)configure the provider."""
        for name, value in self.environment.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        base = self.provider_config(contract_server[1].url, settings)

        def configure(**overrides: Any) -> Provider:
            config = {**base, **overrides}
            if self.backend:
                config["BACKEND"] = self.backend
            config = {name: value for name, value in config.items() if value is not None}
            settings.FEEDBACK_APP = {
                **settings.FEEDBACK_APP,
                "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], self.key: config},
            }
            return get_provider(self.key)

        return configure

    @pytest.fixture
    def provider(self, configure: Any) -> Provider:
        return configure()

    # -- helpers ----------------------------------------------------------------------------

    def send(self, provider: Provider) -> SendResult:
        return provider.send(
            to=self.recipient,
            body=BODY,
            sender=None,
            channel=self.channel,
            message_id=str(uuid.uuid4()),
        )

    def track(self, **options: Any) -> Message:
        """A message sent through the fake and tracked, as ``feedback_app.send`` does."""
        from .. import services

        return services.send(
            provider=self.key, channel=self.channel, to=self.recipient, body=BODY, **options
        )

    # -- sending ----------------------------------------------------------------------------

    def test_send_returns_a_send_result_with_feedback_requested(self, provider, fake):
        result = self.send(provider)

        assert isinstance(result, SendResult)
        assert result.provider_message_id
        assert result.delivery_status in Delivery.values
        if provider.reports:
            assert self.feedback_requested(fake, result)
        # Never the body or a clear phone number (a chat recipient is no number).
        assert BODY not in repr(result.metadata)
        if self.recipient.startswith("+"):
            assert self.recipient not in repr(result.metadata)

    # -- reporting conversions --------------------------------------------------------------

    def test_the_outcomes_reported_are_declared_and_a_provider_without_any_says_why(self, provider):
        assert set(self.reported_as) == set(provider.reports)
        assert provider.reports <= {"confirmed", "failed", "superseded"}
        if not provider.reports:
            assert self.no_conversion_api, "a provider that reports nothing says why"

    @pytest.mark.parametrize("outcome", ["confirmed", "failed"])
    def test_an_outcome_is_reported_with_exactly_the_providers_call(
        self, provider, fake, outcome, django_capture_on_commit_callbacks
    ):
        from .. import services

        message = self.track()
        before = self.request_count(fake)

        with django_capture_on_commit_callbacks(execute=True):
            (services.confirm if outcome == "confirmed" else services.fail)(message)
        with django_capture_on_commit_callbacks(execute=True):
            (services.confirm if outcome == "confirmed" else services.fail)(message)

        message.refresh_from_db()
        assert message.feedback == outcome
        if outcome in provider.reports:
            expected = [(message.provider_message_id, self.reported_as[outcome])]
            assert self.reported(fake) == expected
            [call] = ProviderCall.objects.filter(message=message)
            assert call.state == CallState.SUCCEEDED
        else:
            # Recorded locally only: nothing is sent to the provider.
            assert self.reported(fake) == []
            assert self.request_count(fake) == before
            assert not ProviderCall.objects.filter(message=message).exists()

    def test_a_superseded_message_is_reported_as_the_provider_advises(
        self, provider, fake, django_capture_on_commit_callbacks
    ):
        from .. import services

        first = self.track(verification="contract")
        resend = self.track(verification="contract")
        with django_capture_on_commit_callbacks(execute=True):
            services.confirm(resend)

        first.refresh_from_db()
        assert first.feedback == Feedback.SUPERSEDED
        outcome = provider.superseded_outcome(first)
        assert outcome is None or outcome in provider.reports, "advise an outcome it reports"
        expected = []
        if "confirmed" in provider.reports:
            expected.append((resend.provider_message_id, self.reported_as["confirmed"]))
        if outcome is not None:
            expected.append((first.provider_message_id, self.reported_as[outcome]))
        assert sorted(self.reported(fake)) == sorted(expected)

    def test_an_outcome_the_provider_does_not_take_is_refused_without_a_request(
        self, provider, fake
    ):
        result = self.send(provider)
        before = self.request_count(fake)

        for outcome in {"confirmed", "failed", "expired"} - provider.reports:
            with pytest.raises(PermanentError):
                provider.report_feedback(
                    provider_message_id=result.provider_message_id,
                    outcome=outcome,
                    idempotency_key="contract",
                )

        assert self.request_count(fake) == before
        assert self.reported(fake) == []

    # -- errors -----------------------------------------------------------------------------

    @pytest.mark.parametrize("kind", RETRYABLE_KINDS + PERMANENT_KINDS)
    def test_an_error_lands_on_its_side_with_the_providers_code_and_no_clear_number(
        self, provider, fake, kind
    ):
        code = self.fail_next(fake, kind, f"The number {QUOTED_NUMBER} said no")

        side = RetryableError if kind in RETRYABLE_KINDS else PermanentError
        with pytest.raises(side) as raised:
            self.send(provider)

        assert raised.value.code == code
        assert QUOTED_NUMBER not in str(raised.value)
        assert QUOTED_NUMBER not in raised.value.message
        assert "said no" in raised.value.message

    def test_a_timeout_is_retryable(self, configure, fake):
        provider = configure(**self.timeout_config())
        self.slow_down(fake, 1.5)

        with pytest.raises(RetryableError):
            self.send(provider)

    # -- settings ---------------------------------------------------------------------------

    def test_check_config_catches_each_missing_credential(self, configure):
        assert self.credential_checks, "name at least one credential check_config looks for"
        provider = configure()
        full = {**provider.config}
        assert not _check_ids(provider, full) & set(self.credential_checks.values())
        for setting, check_id in self.credential_checks.items():
            missing = {name: value for name, value in full.items() if name != setting}
            assert check_id in _check_ids(provider, missing), setting

    # -- webhooks ---------------------------------------------------------------------------

    def test_a_provider_without_a_webhook_says_how_its_statuses_arrive(self, provider):
        if isinstance(self, WebhookContract):
            assert not self.no_webhook
            assert all(self.webhook_statuses), "name two statuses the webhook reports"
        else:
            assert self.no_webhook, "subclass WebhookContract too, or say why there is no webhook"
            # Statuses must still arrive some way: polling, or a sync of stale messages.
            assert provider.poll_statuses or provider.sync_statuses


class WebhookContract:
    """The webhook half of the contract: mix in beside ``ProviderContract`` for a provider with
    delivery webhooks (``class TestAcmeContract(ProviderContract, WebhookContract)``), and fill
    in ``webhook_statuses``, ``webhook_delivery_status`` and ``webhook_request``."""

    def _webhook(self, client: Any, fake: Any, message: Message, status: str, **kw: Any) -> Any:
        return client.post(**self.webhook_request(fake, message, status, **kw))

    def test_a_signed_webhook_is_applied(self, provider, fake, client):
        message = self.track()

        response = self._webhook(client, fake, message, self.webhook_statuses[1])

        assert 200 <= response.status_code < 300
        message.refresh_from_db()
        assert message.delivery_status == self.webhook_delivery_status
        assert message.provider_status == self.webhook_statuses[1]

    def test_a_forged_webhook_is_refused_and_changes_nothing(self, provider, fake, client):
        message = self.track()
        before = _delivery(message)

        response = self._webhook(client, fake, message, self.webhook_statuses[1], forged=True)

        assert 400 <= response.status_code < 500
        assert _delivery(message) == before

    def test_a_replayed_webhook_is_recorded_once(self, provider, fake, client):
        message = self.track()
        request = self.webhook_request(fake, message, self.webhook_statuses[1])

        first, second = client.post(**request), client.post(**request)

        assert 200 <= first.status_code < 300
        assert second.status_code < 500  # acknowledged or refused, never "try again"
        events = MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY)
        assert events.filter(to_value=self.webhook_delivery_status).count() == 1

    def test_out_of_order_webhooks_never_move_the_status_back(self, provider, fake, client):
        message = self.track()
        earlier, later = self.webhook_statuses

        assert 200 <= self._webhook(client, fake, message, later).status_code < 300
        self._webhook(client, fake, message, earlier)

        message.refresh_from_db()
        assert message.delivery_status == self.webhook_delivery_status
        assert message.provider_status == later


def _check_ids(provider: Provider, config: dict[str, Any]) -> set[str]:
    return {message.id for message in type(provider).check_config(provider.key, config)}


def _delivery(message: Message) -> tuple[str, str, list[tuple[str, str]]]:
    message.refresh_from_db()
    events = MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY).order_by("pk")
    return (
        message.delivery_status,
        message.provider_status,
        list(events.values_list("from_value", "to_value")),
    )


def webhook_path(name: str, key: str, builtin: str) -> str:
    """The webhook URL path of provider ``key``, whose built-in key is ``builtin``."""
    if key == builtin:
        return reverse(f"feedback_app:{name}")
    return reverse(f"feedback_app:{name}-key", kwargs={"provider": key})
