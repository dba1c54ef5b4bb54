"""``manage.py feedback_fakes``: serve local fakes of Twilio, AWS End User Messaging SMS and
Chime SDK Messaging on one port, so the real backends can run without a provider."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import CommandError, CommandParser

from feedback_app.testing.demo_fakes import ProviderFakes
from feedback_app.testing.server import FakeServer

from ..arguments import parse_positive_int
from ..base import FeedbackCommand


class Command(FeedbackCommand):
    help = (
        "Serve local fakes of the Twilio, AWS SMS and Chime APIs on one port until Ctrl-C. "
        "Point the providers' BASE_URL / ENDPOINT_URL at it (the example project does when "
        "FEEDBACK_FAKES_URL is set). The Twilio fake posts signed status callbacks to the "
        "callback URL of each message, as the carrier would; the AWS fake publishes signed SNS "
        "notifications to the aws_sms webhook; some Chime sends stay PENDING for a while. "
        "Nothing leaves this machine."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
        parser.add_argument("--port", default=8765, help="port to bind (8765)")

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        return {**options, "port": parse_positive_int(options["port"], "--port", 65535)}

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        try:
            server = FakeServer(ProviderFakes(), host=host, port=port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        self.stdout.write(f"Provider fakes on {server.url} (Ctrl-C stops them)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
