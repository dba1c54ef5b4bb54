"""``manage.py feedback_fakes``: serve local fakes of Twilio, AWS End User Messaging SMS and
Chime SDK Messaging on one port, so the real backends can run without a provider."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from feedback_app.testing.demo_fakes import ProviderFakes
from feedback_app.testing.server import FakeServer


class Command(BaseCommand):
    help = (
        "Serve local fakes of the Twilio, AWS SMS and Chime APIs on one port until Ctrl-C. "
        "Point the providers' BASE_URL / ENDPOINT_URL at it (the example project does when "
        "FEEDBACK_FAKES_URL is set). The Twilio fake posts signed status callbacks to the "
        "callback URL of each message, as the carrier would. Nothing leaves this machine."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
        parser.add_argument("--port", type=int, default=8765, help="port to bind (8765)")

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        if not 0 < port < 65536:
            raise CommandError(f"--port must be between 1 and 65535, not {port}")
        try:
            server = FakeServer(ProviderFakes(), host=host, port=port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {host}:{port}: {exc}") from exc
        self.stdout.write(f"Provider fakes on {server.url} (Ctrl-C stops them)")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
