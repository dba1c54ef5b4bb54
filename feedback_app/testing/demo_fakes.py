"""All three provider fakes behind one local port, for running the app end to end without a
provider (``manage.py feedback_fakes``, started by ``make demo``).

Requests are routed the way the SDKs address the real services: AWS JSON calls carry an
``X-Amz-Target`` header, Twilio's paths start with ``/2010-04-01/``, Chime's with ``/channels``.
The Twilio fake also plays the carrier: it posts signed status callbacks (``sent``, then
``delivered`` or ``undelivered``) to the callback URL each message was created with, so the
webhook path runs too.
"""

from __future__ import annotations

import logging
import random
import threading
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from .aws_sms_fake import AwsSmsFake
from .chime_fake import ChimeFake
from .twilio_fake import API_VERSION, AUTH_TOKEN, TwilioFake

logger = logging.getLogger(__name__)


class CarrierTwilioFake(TwilioFake):
    """A ``TwilioFake`` whose messages move on by themselves and call back, signed."""

    def __init__(
        self,
        *,
        auth_token: str = AUTH_TOKEN,
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(auth_token=auth_token, **kwargs)
        self.auth_token = auth_token
        self.delays = delays
        self.undelivered_rate = undelivered_rate

    def _create(self, form: dict[str, list[str]]) -> dict[str, Any]:
        payload = super()._create(form)
        callback = form.get("StatusCallback", [None])[-1]
        if callback:
            final = "undelivered" if random.random() < self.undelivered_rate else "delivered"  # noqa: S311
            for delay, status in zip(self.delays, ("sent", final), strict=True):
                timer = threading.Timer(delay, self._call_back, (payload, callback, status))
                timer.daemon = True
                timer.start()
        return payload

    def _call_back(self, payload: dict[str, Any], url: str, status: str) -> None:
        from twilio.request_validator import RequestValidator

        error_code = 30003 if status == "undelivered" else None
        self.set_status(payload["sid"], status, error_code)
        params = {
            "AccountSid": payload["account_sid"],
            "ApiVersion": API_VERSION,
            "From": payload.get("from") or "",
            "MessageSid": payload["sid"],
            "MessageStatus": status,
            "SmsSid": payload["sid"],
            "SmsStatus": status,
            "To": payload["to"],
        }
        if error_code:
            params["ErrorCode"] = str(error_code)
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        request = urllib.request.Request(  # noqa: S310 (the URL the app itself gave us)
            url,
            data=urlencode(params).encode(),
            headers={"X-Twilio-Signature": signature},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                response.read()
        except OSError as exc:
            logger.warning("status callback to %s failed: %s", url, exc)


class ProviderFakes:
    """WSGI app routing each request to the fake of the service it addresses."""

    def __init__(self) -> None:
        self.twilio = CarrierTwilioFake()
        self.aws_sms = AwsSmsFake()
        self.chime = ChimeFake()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("HTTP_X_AMZ_TARGET"):
            return self.aws_sms(environ, start_response)
        if path.startswith(f"/{API_VERSION}/"):
            return self.twilio(environ, start_response)
        if path.startswith("/channels"):
            return self.chime(environ, start_response)
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"no fake serves this path\n"]
