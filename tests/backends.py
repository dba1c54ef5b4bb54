"""Provider backends used only by the tests."""

from feedback_app.providers.base import Provider, SendResult


class SilentProvider(Provider):
    """Accepts no feedback reports (like Chime): conversions are recorded locally only."""

    def send(self, *, to, body, sender, channel, message_id, **options):
        return SendResult(provider_message_id=f"silent-{message_id}")
